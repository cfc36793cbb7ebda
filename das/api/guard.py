"""Transport policy in front of every route: allowed ``Host`` values and a request-body cap.

Kept as one small ASGI middleware so no route can forget it. A foreign ``Host`` (a
DNS-rebinding page that resolves its own name to 127.0.0.1) gets 421 before any route runs;
a missing, repeated or malformed one 400; a body over the cap 413 whether or not it declared
its length. Writes to ``/api/`` must be ``application/json``: a cross-site page can only send
that after a CORS preflight, which DAS never answers.

Identity headers (``Authorization``, ``Cookie``, ``X-CSRF-Token``, the SSO proxy's user and
secret headers, ``X-Forwarded-Proto``) must come at most once, and the session cookie at most
once in them: with two, one layer may read the first and another the last, so a request that
repeats one gets 400 instead of a guess. ``X-Forwarded-Proto`` is believed only from the
operator's TLS proxies (``trusted_proxies``: addresses or networks of the peers allowed to
say the client spoke HTTPS; ``DAS_TRUSTED_PROXIES`` for ``das api serve``); from them it sets
the request's scheme, so the session cookie is ``Secure``. From anyone else it is ignored.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+|[0-9a-f:]+))(?::\d{1,5})?")


def host_name(value: str) -> str:
    """``Host`` header without its port; IPv6 literals lose their brackets; "" if malformed."""
    value = value.strip().lower()
    match = _HOST.fullmatch(value)
    if not match:
        return ""
    if match.group("v6"):
        return match.group("v6")
    name = match.group("name")
    if name.count(":") >= 2:  # a bare IPv6 literal in the allowlist (no port possible)
        return value
    return name


IDENTITY_HEADERS = ("authorization", "cookie", "x-csrf-token", "x-forwarded-proto")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(values: Iterable[str]) -> list[Network]:
    """``127.0.0.1``, ``10.0.0.0/8``, ``::1`` ... as networks; ``ValueError`` names a bad one."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted proxy {value!r} is not an IP address or network: {exc}") from exc
    return out


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: list[str],
        max_body: int,
        *,
        single_headers: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        session_cookie: str = "das_session",
    ) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}
        self.max_body = max_body
        self.single = frozenset(IDENTITY_HEADERS) | {h.lower() for h in single_headers}
        self.proxies = proxy_networks(trusted_proxies)
        self.session_cookie = session_cookie

    def _trusted_peer(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not self.proxies or not client:
            return False
        try:
            peer = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        return any(peer in net for net in self.proxies)

    def _identity_problem(self, raw: list[tuple[str, str]]) -> str | None:
        """Why the identity headers are ambiguous (None: they are not)."""
        seen: dict[str, int] = {}
        for name, _ in raw:
            seen[name] = seen.get(name, 0) + 1
        repeated = sorted(k for k, n in seen.items() if n > 1 and k in self.single)
        if repeated:
            return f"header {repeated[0]} was sent more than once; send each identity header once"
        cookies = [v for k, v in raw if k == "cookie"]
        names = [part.split("=", 1)[0].strip() for part in (cookies[0].split(";") if cookies else [])]
        if names.count(self.session_cookie) > 1:
            return f"cookie {self.session_cookie} was sent more than once"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        headers = dict(raw)
        hosts = [v for k, v in raw if k == "host"]
        if len(hosts) != 1 or not host_name(hosts[0]):
            await _error(send, 400, "exactly one well-formed Host header is required")
            return
        host = host_name(hosts[0])
        problem = self._identity_problem(raw)
        if problem:
            await _error(send, 400, problem)
            return
        forwarded = headers.get("x-forwarded-proto")
        if forwarded is not None and self._trusted_peer(scope):
            proto = forwarded.strip().lower()
            if proto not in ("http", "https"):
                await _error(send, 400, "X-Forwarded-Proto must be exactly http or https")
                return
            scope = dict(scope, scheme=proto)
        if host not in self.allowed:
            await _error(
                send,
                421,
                f"host {host[:100]!r} is not served here; allowed: {', '.join(sorted(self.allowed))}",
            )
            return
        if (
            scope.get("method") not in ("GET", "HEAD", "OPTIONS")
            and str(scope.get("path", "")).startswith("/api/")
            and not headers.get("content-type", "").lower().startswith("application/json")
        ):
            await _error(send, 415, "API writes must be sent as application/json")
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit()):
            await _error(send, 400, "invalid Content-Length")
            return
        if declared is not None and int(declared) > self.max_body:
            await _error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body:
                await _error(send, 413, f"request body larger than {self.max_body} bytes")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def secure_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on
                # the page's own form posts, and the sign-in's origin check must see the origin
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in extra if h[0] not in present
                ]
            await send(message)

        await self.app(scope, replay, secure_headers)


async def _error(send: Send, status: int, message: str) -> None:
    data = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
