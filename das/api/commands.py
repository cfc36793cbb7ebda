"""``das api serve``: the HTTP API and approval page."""

from __future__ import annotations

import click

from das.output import progress


@click.group()
def api() -> None:
    """The HTTP API and the approval page."""


@api.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address; keep loopback unless a proxy authenticates reviewers (X-Remote-User).")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--trust-proxy", is_flag=True,
              help="Take the reviewer from the X-Remote-User header (only behind an authenticating proxy).")
def serve_api(host: str, port: int, trust_proxy: bool) -> None:
    """Serve the approval queue at http://HOST:PORT/ (JSON under /api/proposals)."""
    from das.api.server import make_server

    server = make_server(host, port, trust_proxy=trust_proxy)
    progress(f"approval page on http://{host}:{server.server_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
