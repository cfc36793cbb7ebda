"""A small HTTP API and approval page (stdlib only), over the same ``Queue`` rules as the CLI.

Routes:
  GET  /api/proposals[?status=S]          list
  GET  /api/proposals/{id}                one proposal (JSON)
  POST /api/proposals/{id}/approve        {"reviewer", "comment"} -> approve, then deploy
  POST /api/proposals/{id}/reject         {"reviewer", "comment"}
  GET  /  and  /proposals/{id}            the approval page (HTML forms post to the same rules)
Identity: the reviewer field names the reviewer; a reverse proxy's ``X-Remote-User`` header
is honoured only when the server is started with ``trust_proxy`` (``das api serve
--trust-proxy``), because any client can send that header. Bind to 127.0.0.1 (default) unless
such a proxy authenticates reviewers. Form posts carry a per-server CSRF token; JSON posts
must be ``application/json`` (a cross-site form cannot send that without a preflight).
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from das.authoring.commands import render_proposal
from das.authoring.deploy import deploy_and_record
from das.authoring.queue import ApprovalRefused, ProposalNotFound, Queue
from das.errors import DasError, UsageError
from das.output import to_jsonable

MAX_BODY = 64_000
_ID = re.compile(r"^/(?:api/)?proposals/([A-Za-z0-9-]{1,40})(?:/(approve|reject))?$")


def _status_for(exc: DasError) -> int:
    if isinstance(exc, ProposalNotFound):
        return 404
    if isinstance(exc, ApprovalRefused):
        return 409
    if isinstance(exc, UsageError):
        return 400
    return 500 if exc.exit_code == 5 else 422


class Handler(BaseHTTPRequestHandler):
    server_version = "das-api"
    trust_proxy = False
    csrf_token = secrets.token_urlsafe(24)

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if ctype == "text/html":
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(to_jsonable(data), indent=2))

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise UsageError(f"request body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length).decode(errors="replace") if length else ""
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            try:
                data = json.loads(raw or "{}")
            except json.JSONDecodeError as exc:
                raise UsageError(f"request body is not JSON: {exc.msg}") from exc
            if not isinstance(data, dict):
                raise UsageError("request body must be a JSON object")
            return data
        return {k: v[0] for k, v in parse_qs(raw).items()}

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        queue = Queue()
        try:
            if url.path == "/api/proposals":
                status = parse_qs(url.query).get("status", [None])[0]
                return self._json(200, queue.list(status))
            if url.path in ("/", "/proposals"):
                return self._send(200, self._page_list(queue), "text/html")
            match = _ID.match(url.path)
            if match and not match.group(2):
                proposal = queue.get(match.group(1))
                if url.path.startswith("/api/"):
                    return self._json(200, proposal)
                return self._send(200, self._page_one(proposal), "text/html")
            self._json(404, {"error": f"no route {url.path}"})
        except DasError as exc:
            self._json(_status_for(exc), {"error": exc.message})

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        match = _ID.match(url.path)
        is_api = url.path.startswith("/api/")
        if not match or not match.group(2):
            return self._json(404, {"error": f"no route {url.path}"})
        queue = Queue()
        try:
            if is_api and not (self.headers.get("Content-Type") or "").startswith("application/json"):
                raise UsageError("API posts must be application/json")
            body = self._body()
            if not is_api and not hmac.compare_digest(str(body.get("csrf") or ""), self.csrf_token):
                raise UsageError("the form is stale or was not sent by this page (CSRF token mismatch); reload it")
            proxy_user = self.headers.get("X-Remote-User") if self.trust_proxy else None
            reviewer = proxy_user or str(body.get("reviewer") or "")
            comment = body.get("comment") or None
            if match.group(2) == "approve":
                proposal = queue.approve(match.group(1), reviewer, comment)
                if proposal.status == "approved":
                    proposal = deploy_and_record(queue, proposal.id)
            else:
                proposal = queue.reject(match.group(1), reviewer, comment or "")
        except DasError as exc:
            if is_api:
                return self._json(_status_for(exc), {"error": exc.message})
            return self._send(_status_for(exc), self._page_error(exc.message, match.group(1)), "text/html")
        if is_api:
            return self._json(200, {"proposal_id": proposal.id, "status": proposal.status})
        self.send_response(303)
        self.send_header("Location", f"/proposals/{proposal.id}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- pages -----------------------------------------------------------------------------
    @staticmethod
    def _frame(title: str, body: str) -> str:
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                "<style>body{font-family:sans-serif;margin:2em;max-width:70em}td,th{padding:.2em .8em;text-align:left}"
                "pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>"
                f"<h1>{html.escape(title)}</h1>{body}</body></html>")

    def _page_list(self, queue: Queue) -> str:
        rows = "".join(
            f"<tr><td><a href='/proposals/{html.escape(r['id'])}'>{html.escape(r['id'])}</a></td>"
            f"<td>{html.escape(r['key'])}</td><td>{html.escape(r['base_version'] or '-')}</td>"
            f"<td>{html.escape(r['version'])}</td><td>{html.escape(r['status'])}</td><td>{html.escape(r['author'])}</td></tr>"
            for r in queue.list())
        return self._frame("DAS approval queue", "<table><tr><th>id</th><th>key</th><th>base</th><th>version</th>"
                           f"<th>status</th><th>author</th></tr>{rows}</table>")

    def _page_one(self, proposal: Any) -> str:
        pid = html.escape(proposal.id)
        forms = ""
        if proposal.status == "proposed":
            token = f"<input type='hidden' name='csrf' value='{html.escape(self.csrf_token)}'>"
            forms = (f"<form method='post' action='/proposals/{pid}/approve'>{token}Reviewer <input name='reviewer' required> "
                     "Comment <input name='comment'> <button>Approve</button></form><br>"
                     f"<form method='post' action='/proposals/{pid}/reject'>{token}Reviewer <input name='reviewer' required> "
                     "Comment <input name='comment' required> <button>Reject</button></form>")
        return self._frame(f"Proposal {proposal.id}", f"<p><a href='/'>queue</a></p>{forms}"
                           f"<pre>{html.escape(render_proposal(proposal))}</pre>")

    def _page_error(self, message: str, pid: str) -> str:
        return self._frame("Refused", f"<p>{html.escape(message)}</p><p><a href='/proposals/{html.escape(pid)}'>back</a></p>")


def make_server(host: str = "127.0.0.1", port: int = 8765, trust_proxy: bool = False) -> ThreadingHTTPServer:
    handler = type("DasHandler", (Handler,), {"trust_proxy": trust_proxy, "csrf_token": secrets.token_urlsafe(24)})
    return ThreadingHTTPServer((host, port), handler)
