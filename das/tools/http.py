"""http_request: only to hosts the policy allows, with a timeout and a response size cap."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from das.errors import ModelRetry, PolicyDenied
from das.tools.base import Tool, ToolContext

MAX_RESPONSE_BYTES = 256_000
TIMEOUT_S = 10.0


def _request(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    url = args["url"]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelRetry(f"url {url!r} must be http(s) with a host")
    host = parts.hostname.lower()
    if host not in [h.lower() for h in ctx.policy.allowed_hosts]:
        raise PolicyDenied(f"http_request to host {host!r} is not allowed by policy (allowed_hosts: "
                           f"{', '.join(ctx.policy.allowed_hosts) or 'none'})", rule="allowed_hosts")
    method = args.get("method", "GET")
    try:
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client, client.stream(
            method, url, json=args.get("json"), headers={"x-correlation-id": ctx.correlation_id or ""}
        ) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    body = body[:MAX_RESPONSE_BYTES]
                    break
            return {"status": response.status_code, "body": body.decode(errors="replace"),
                    "truncated": len(body) >= MAX_RESPONSE_BYTES}
    except httpx.HTTPError as exc:
        raise ModelRetry(f"http_request to {host} failed: {type(exc).__name__}: {exc}") from exc


HTTP_REQUEST = Tool(
    name="http_request",
    description="Make an HTTP request to an allowed host. Returns status and body (capped).",
    parameters={"type": "object", "properties": {
        "url": {"type": "string", "minLength": 8, "maxLength": 2000},
        "method": {"enum": ["GET", "POST", "PUT", "DELETE"]},
        "json": {}}, "required": ["url"], "additionalProperties": False},
    func=_request,
    side_effecting=True,
)
