"""How an HTTP request proves who sends it: a bearer token, a login session, or an SSO proxy.

* ``Authorization: Bearer das_…``: a personal token (``das user add``), checked against its hash.
* The ``das_session`` cookie set by the login page (HttpOnly, SameSite=Strict, Secure over
  HTTPS). Unsafe requests on a session also need its CSRF token (form field or
  ``X-CSRF-Token`` header), so another site cannot post with the reviewer's cookie.
  A session is bound to the token that opened it: revoking (or re-issuing) the token ends it.
* Behind an SSO proxy (``--trust-proxy-header``): the user header counts only when the request
  also carries the proxy's shared secret. A user header without the secret is 401, never a
  fallback to anything else. The proxy's own cookie is ambient too, so unsafe requests need a
  CSRF token here as well (an HMAC of the user name under a per-server key).
A name in a request body is never an identity.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request

from das.identity import NotAuthenticated, Principal, Users

SESSION_COOKIE = "das_session"
SESSION_TTL_S = 8 * 3600


@dataclass
class Session:
    user: str
    token_id: str
    csrf: str
    expires: float


@dataclass
class AuthSettings:
    proxy_header: str | None = None
    proxy_secret: str | None = None
    proxy_secret_header: str = "X-Proxy-Secret"


@dataclass
class Sessions:
    """Login sessions in memory: a restart logs everyone out, which is the safe direction."""

    _items: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, user: str, token_id: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(user, token_id, secrets.token_urlsafe(24), time.time() + SESSION_TTL_S)
        with self._lock:
            now = time.time()
            for key in [k for k, s in self._items.items() if s.expires < now]:
                del self._items[key]
            self._items[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._items.get(sid)
            if session and session.expires < time.time():
                del self._items[sid]
                return None
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)


class Authenticator:
    def __init__(self, users: Users, settings: AuthSettings, sessions: Sessions) -> None:
        self.users = users
        self.settings = settings
        self.sessions = sessions
        self._key = secrets.token_bytes(32)

    def csrf_for(self, request: Request, who: Principal) -> str:
        """The CSRF token a page embeds for this caller (empty for bearer-token callers)."""
        if who.proof == "session":
            session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
            return session.csrf if session else ""
        if who.proof == "proxy":
            return hmac.new(self._key, f"proxy:{who.name}".encode(), "sha256").hexdigest()
        return ""

    def _check_csrf(self, request: Request, who: Principal) -> None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        expected = self.csrf_for(request, who)
        sent = request.headers.get("x-csrf-token") or getattr(request.state, "form_csrf", "") or ""
        if not expected or not hmac.compare_digest(str(sent).encode(), expected.encode()):
            raise CsrfMismatch(
                "the form is stale or was not sent by this page (CSRF token mismatch); reload it"
            )

    def principal(self, request: Request) -> Principal:
        """The proven caller, or ``NotAuthenticated``."""
        s = self.settings
        if s.proxy_header:
            proxied = request.headers.get(s.proxy_header)
            secret = request.headers.get(s.proxy_secret_header)
            if proxied is not None or secret is not None:
                if not (
                    proxied
                    and secret
                    and s.proxy_secret
                    and hmac.compare_digest(secret.encode(), s.proxy_secret.encode())
                ):
                    raise NotAuthenticated(
                        f"{s.proxy_header} is honoured only together with the proxy's shared secret"
                    )
                who = self.users.active(proxied, "proxy", credential=f"proxy:{s.proxy_header}")
                self._check_csrf(request, who)
                return who
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthenticated("use 'Authorization: Bearer <token>' (see `das user add`)")
            return self.users.authenticate(token.strip(), "token")
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            try:
                who = self.users.active(session.user, "session", session.token_id)
            except NotAuthenticated:
                self.sessions.close(request.cookies.get(SESSION_COOKIE))
                raise NotAuthenticated(
                    "your session ended (token revoked or replaced); sign in again"
                ) from None
            self._check_csrf(request, who)
            return who
        raise NotAuthenticated("authentication required: 'Authorization: Bearer <token>' or log in at /login")


class CsrfMismatch(NotAuthenticated):
    """A session-authenticated write without the session's CSRF token."""


__all__ = ["AuthSettings", "Authenticator", "CsrfMismatch", "SESSION_COOKIE", "Session", "Sessions"]
