"""http_request: egress-checked (das/tools/egress.py), capped, and at most once.

A failure before the request left (connect refused, connect timeout) goes back to the model
and may be retried. A failure after it left (read timeout, connection reset mid-response) on a
method with side effects means the server may have acted: ``OutcomeUnknown``, never retried.
The call's key is sent as ``Idempotency-Key`` so a server that supports it can dedupe too.
"""

from __future__ import annotations

from typing import Any

import httpx

from das.errors import ModelRetry, OutcomeUnknown
from das.tools import egress
from das.tools.base import Tool, ToolContext

MAX_RESPONSE_BYTES = 256_000
TIMEOUT_S = 10.0
SAFE_METHODS = ("GET", "HEAD")
# raised before any byte of the request was sent: nothing can have happened on the server
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


def _request(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    method = args.get("method", "GET")
    target = egress.check(ctx.policy, args["url"], method)
    headers = {
        "Host": target.host
        if target.port == egress.DEFAULT_PORTS[target.scheme]
        else f"{target.host}:{target.port}",
        "x-correlation-id": ctx.correlation_id or "",
    }
    if ctx.call_key:
        headers["Idempotency-Key"] = ctx.call_key
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with (
            httpx.Client(
                timeout=ctx.http_timeout_s or TIMEOUT_S, follow_redirects=False, trust_env=False
            ) as client,
            client.stream(
                method, target.connect_url, json=args.get("json"), headers=headers, extensions=extensions
            ) as response,
        ):
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    body = body[:MAX_RESPONSE_BYTES]
                    break
            return {
                "status": response.status_code,
                "body": body.decode(errors="replace"),
                "truncated": len(body) >= MAX_RESPONSE_BYTES,
            }
    except _NOT_SENT as exc:
        raise ModelRetry(
            f"http_request to {target.host} failed before sending: {type(exc).__name__}: {exc}"
        ) from exc
    except httpx.HTTPError as exc:
        if method in SAFE_METHODS:
            raise ModelRetry(f"http_request to {target.host} failed: {type(exc).__name__}: {exc}") from exc
        raise OutcomeUnknown(
            f"{method} {target.url} was sent but its outcome is unknown "
            f"({type(exc).__name__}: {exc}); it is not repeated automatically"
        ) from exc


HTTP_REQUEST = Tool(
    name="http_request",
    description="Make an HTTP request to an allowed host. Returns status and body (capped).",
    parameters={
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 8, "maxLength": 2000},
            "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
            "json": {},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    func=_request,
    side_effecting=True,
    canonical=lambda a: {
        "method": str(a.get("method", "GET")).upper(),
        "url": egress.canonical_url(str(a.get("url", ""))),
        "json": a.get("json"),
    },
)
