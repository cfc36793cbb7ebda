"""Transport policy in front of every route: allowed ``Host`` values and a request-body cap.

Kept as one small ASGI middleware so no route can forget it. A foreign ``Host`` (a
DNS-rebinding page that resolves its own name to 127.0.0.1) gets 421 before any route runs;
a missing, repeated or malformed one 400; a body over the cap 413 whether or not it declared
its length. Writes to ``/api/`` must be ``application/json``: a cross-site page can only send
that after a CORS preflight, which DAS never answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
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


class Guard:
    def __init__(self, app: ASGIApp, allowed_hosts: list[str], max_body: int) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}
        self.max_body = max_body

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
        if host not in self.allowed:
            await _error(send, 421, f"host {host[:100]!r} is not served here; allowed: {', '.join(sorted(self.allowed))}")
            return
        if scope.get("method") not in ("GET", "HEAD", "OPTIONS") and str(scope.get("path", "")).startswith("/api/") \
                and not headers.get("content-type", "").lower().startswith("application/json"):
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
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"same-origin"), (b"cache-control", b"no-store")]
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        await self.app(scope, replay, secure_headers)


async def _error(send: Send, status: int, message: str) -> None:
    data = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": data})
