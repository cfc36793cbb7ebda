"""Tool sandboxing: what was tried, and that nothing is written outside the workspace."""

import os

import pytest

from das.contracts import Policy
from das.errors import ModelRetry, PolicyDenied
from das.tools.base import ToolContext
from das.tools.files import READ_FILE, WRITE_FILE
from das.tools.http import HTTP_REQUEST
from das.tools.jsonq import JSON_QUERY


@pytest.fixture
def ctx(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ToolContext(Policy(allowed_hosts=["127.0.0.1"]), ws)


def outside_files(tmp_path, ws):
    return sorted(p for p in tmp_path.rglob("*") if ws not in p.parents and p != ws)


def test_write_and_read_inside_the_workspace(ctx):
    assert WRITE_FILE.run(ctx, {"path": "sub/a.txt", "content": "hello"}) == {"path": "sub/a.txt", "bytes": 5}
    assert READ_FILE.run(ctx, {"path": "sub/a.txt"}) == "hello"


@pytest.mark.parametrize("path", ["../escape.txt", "sub/../../escape.txt", "/tmp/escape.txt", ""])
def test_traversal_and_absolute_paths_are_refused(ctx, tmp_path, path):
    before = outside_files(tmp_path, ctx.workspace)
    with pytest.raises(ModelRetry):
        WRITE_FILE.run(ctx, {"path": path, "content": "x"}) if path else WRITE_FILE.run(
            ctx, {"path": "", "content": "x"}
        )
    assert outside_files(tmp_path, ctx.workspace) == before


def test_symlink_escapes_are_refused(ctx, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, ctx.workspace / "link")  # directory symlink pointing out
    os.symlink(tmp_path / "secret.txt", ctx.workspace / "dangling")  # file symlink, target missing
    (tmp_path / "real.txt").write_text("secret")
    os.symlink(tmp_path / "real.txt", ctx.workspace / "filelink")
    with pytest.raises(ModelRetry, match="escapes the workspace"):
        WRITE_FILE.run(ctx, {"path": "link/x.txt", "content": "x"})
    with pytest.raises(ModelRetry):
        WRITE_FILE.run(ctx, {"path": "dangling", "content": "x"})
    with pytest.raises(ModelRetry, match="escapes the workspace"):
        READ_FILE.run(ctx, {"path": "filelink"})
    assert list(outside.iterdir()) == [] and not (tmp_path / "secret.txt").exists()
    assert (tmp_path / "real.txt").read_text() == "secret"


def test_bad_arguments_go_back_to_the_model(ctx):
    with pytest.raises(ModelRetry, match="bad arguments for write_file"):
        WRITE_FILE.run(ctx, {"path": "a.txt"})


def test_http_request_to_a_host_not_allowed_is_refused_without_a_request(ctx):
    with pytest.raises(PolicyDenied, match="host 'example.com' is not allowed"):
        HTTP_REQUEST.run(ctx, {"url": "http://example.com/x"})
    with pytest.raises(ModelRetry, match="must be http"):
        HTTP_REQUEST.run(ctx, {"url": "file:///etc/passwd"})


def test_http_request_to_an_allowed_local_server(ctx):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 300_000)  # larger than the cap

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with pytest.raises(PolicyDenied, match="resolves to 127.0.0.1 \\(loopback\\)"):
            HTTP_REQUEST.run(ctx, {"url": url})  # allowed_hosts alone never reaches loopback
        ctx.policy = Policy(allowed_endpoints=[url])  # the operator names the exact endpoint
        out = HTTP_REQUEST.run(ctx, {"url": url})
    finally:
        server.shutdown()
    assert out["status"] == 200 and out["truncated"] is True and len(out["body"]) == 256_000


def test_json_query(ctx):
    data = {"a": {"b": [{"c": 1, "d": 2}]}}
    assert JSON_QUERY.run(ctx, {"data": data, "path": "a.b[0].c"}) == 1
    assert JSON_QUERY.run(ctx, {"data": data, "path": "a.b[0]", "pick": ["d"]}) == {"d": 2}
    with pytest.raises(ModelRetry, match="key 'zz' not found"):
        JSON_QUERY.run(ctx, {"data": data, "path": "a.zz"})
