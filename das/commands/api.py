"""``das api serve``: the HTTP API and the approval page (uvicorn)."""

from __future__ import annotations

import os
import socket

import click

from das.errors import UsageError
from das.output import progress


@click.group()
def api() -> None:
    """The HTTP API and the approval page."""


@api.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Bind address. Keep loopback unless a TLS proxy fronts DAS.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port; 0 picks a free one (printed on stderr).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Host header value to serve (repeatable). Default: the bind address, localhost, 127.0.0.1. "
    "Any other Host gets 421, which defeats DNS rebinding.",
)
@click.option(
    "--max-body",
    default=256_000,
    show_default=True,
    type=click.IntRange(1024, 50_000_000),
    help="Largest request body in bytes; larger ones get 413.",
)
@click.option(
    "--trust-proxy-header",
    metavar="HEADER",
    help="Behind an SSO proxy: take the user from HEADER (e.g. X-Remote-User), but only on requests "
    "that also carry the proxy's shared secret (--proxy-secret-env).",
)
@click.option(
    "--proxy-secret-env",
    metavar="NAME",
    help="Environment variable holding the shared secret the proxy sends (required with "
    "--trust-proxy-header).",
)
@click.option(
    "--proxy-secret-header",
    default="X-Proxy-Secret",
    show_default=True,
    metavar="HEADER",
    help="Header in which the proxy sends the shared secret.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDR",
    help="Address of a TLS proxy whose X-Forwarded-Proto is believed (repeatable; then the session "
    "cookie is Secure on https). Default: $DAS_TRUSTED_PROXIES (comma-separated), else none.",
)
def serve_api(
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
    max_body: int,
    trust_proxy_header: str | None,
    proxy_secret_env: str | None,
    proxy_secret_header: str,
    trusted_proxies: tuple[str, ...],
) -> None:
    """Serve the approval queue at http://HOST:PORT/ (JSON under /api, OpenAPI at /openapi.json).

    Every route needs a proven user: `Authorization: Bearer <token>` (tokens from
    `das user add`), the login page's session, or the SSO proxy header with its secret.

    \b
    Example:
      das user add bob --role reviewer      # prints bob's token once
      das api serve --port 8765
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8765/api/me
    """
    import uvicorn

    from das.api.app import create_app  # lazy: the web stack (FastAPI, uvicorn) loads only for `das api`
    from das.api.auth import AuthSettings  # lazy: as above

    secret = None
    if trust_proxy_header:
        if not proxy_secret_env:
            raise UsageError(
                "--trust-proxy-header needs --proxy-secret-env NAME: without the proxy's shared secret "
                "any client could send the header"
            )
        secret = os.environ.get(proxy_secret_env) or ""
        if len(secret) < 16:
            raise UsageError(
                f"${proxy_secret_env} must hold the proxy's shared secret (at least 16 characters)"
            )
    hosts = list(allowed_hosts) or sorted(
        {h for h in (host, "localhost", "127.0.0.1", "::1") if h not in ("0.0.0.0", "::", "")}
    )
    app = create_app(
        hosts,
        max_body=max_body,
        trusted_proxies=list(trusted_proxies) or None,
        auth=AuthSettings(trust_proxy_header, secret, proxy_secret_header),
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = sock.getsockname()[1]
    progress(
        f"DAS API on http://{host if ':' not in host else f'[{host}]'}:{bound}/ "
        f"(allowed hosts: {', '.join(hosts)}; Ctrl-C stops)"
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, proxy_headers=False)
    )
    server.run(sockets=[sock])
