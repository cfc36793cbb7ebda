"""What the agent red-team tests share: a listener that counts every connection, and specs."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Any

from das.contracts import TaskSpec


class Listener:
    """An HTTP server on 127.0.0.1 (and ::1 on the same port when the host has IPv6) that
    counts every accepted connection, so "received nothing" means no byte reached it."""

    def __init__(self, delay_s: float = 0.0, status: int = 200, location: str | None = None) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers)))
                if delay_s:
                    time.sleep(delay_s)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Counting(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):  # type: ignore[no-untyped-def]
                conn = super().get_request()
                outer.connections += 1
                return conn

        self.v4 = Counting(("127.0.0.1", 0), Handler)
        self.port = self.v4.server_address[1]
        self.servers = [self.v4]
        try:

            class Counting6(Counting):
                address_family = socket.AF_INET6

            self.servers.append(Counting6(("::1", self.port), Handler))
            self.has_v6 = True
        except OSError:
            self.has_v6 = False
        for s in self.servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


def spec(task_type: str, key: str | None = None, **kw: Any) -> TaskSpec:
    return TaskSpec(
        task_type=task_type,
        prompt="Fetch it, then finish.",
        idempotency_key=key,
        output_schema={"type": "object"},
        **kw,
    )


def http_step(url: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    args: dict[str, Any] = {"url": url, "method": method}
    if body is not None:
        args["json"] = body
    return {"tool_calls": [{"name": "http_request", "arguments": args}]}


FINISH = {"tool_calls": [{"name": "finish", "arguments": {"outputs": {}}}]}
