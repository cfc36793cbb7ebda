"""Transport policy in front of every route: allowed ``Host`` values and a request-body cap.

Kept as one small ASGI middleware so no route can forget it. A foreign ``Host`` (a
DNS-rebinding page that resolves its own name to 127.0.0.1) gets 421 before any route runs;
a body over the cap gets 413 whether or not it declared its length.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(value: str) -> str:
    """``Host`` header without its port; IPv6 literals keep no brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app: ASGIApp, allowed_hosts: list[str], max_body: int) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", ""))
        if host not in self.allowed:
            await _error(send, 421, f"host {host[:100]!r} is not served here; allowed: {', '.join(sorted(self.allowed))}")
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
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]
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
