"""HTML views of the approval page: login, the queue, one proposal. Everything is escaped."""

from __future__ import annotations

import html
from typing import Any

from das.contracts import Proposal
from das.identity import Principal
from das.views import render_proposal

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_e = html.escape


def frame(title: str, body: str, who: Principal | None = None, csrf: str | None = None) -> str:
    bar = ""
    if who is not None:
        logout = (f"<form method='post' action='/logout' style='display:inline'>"
                  f"<input type='hidden' name='csrf' value='{_e(csrf or '')}'><button>Log out</button></form>")
        bar = f"<p class='who'>Signed in as <b>{_e(who.name)}</b> ({_e(who.role)}) {logout}</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:70em}td,th{padding:.2em .8em;text-align:left}"
            "pre{background:#f4f4f4;padding:1em;overflow:auto}.who{float:right}</style></head><body>"
            f"{bar}<h1>{_e(title)}</h1>{body}</body></html>")


def login(message: str = "", next_url: str = "/") -> str:
    note = f"<p role='alert'>{_e(message)}</p>" if message else ""
    return frame("Sign in to DAS", note + "<form method='post' action='/login'>"
                 f"<input type='hidden' name='next' value='{_e(next_url)}'>"
                 "<p><label>User <input name='username' autocomplete='username' required></label></p>"
                 "<p><label>Personal token <input name='token' type='password' autocomplete='current-password' required>"
                 "</label></p><p><button>Sign in</button></p></form>"
                 "<p>An admin issues tokens with <code>das user add NAME --role reviewer</code>.</p>")


def queue(rows: list[dict[str, Any]], who: Principal, csrf: str) -> str:
    body = "".join(
        f"<tr><td><a href='/proposals/{_e(r['id'])}'>{_e(r['id'])}</a></td>"
        f"<td>{_e(r['key'])}</td><td>{_e(r['base_version'] or '-')}</td>"
        f"<td>{_e(r['version'])}</td><td>{_e(r['status'])}</td><td>{_e(r['author'])}</td></tr>"
        for r in reversed(rows))
    return frame("DAS approval queue", "<table><tr><th>id</th><th>key</th><th>base</th><th>version</th>"
                 f"<th>status</th><th>author</th></tr>{body}</table>", who, csrf)


def proposal(p: Proposal, who: Principal, csrf: str) -> str:
    pid = _e(p.id)
    forms = ""
    if p.status == "proposed" and who.can("review"):
        token = f"<input type='hidden' name='csrf' value='{_e(csrf)}'>"
        forms = (f"<form method='post' action='/proposals/{pid}/approve'>{token}"
                 "Comment <input name='comment'> <button>Approve</button></form><br>"
                 f"<form method='post' action='/proposals/{pid}/reject'>{token}"
                 "Comment <input name='comment' required> <button>Reject</button></form>")
    return frame(f"Proposal {p.id}", f"<p><a href='/'>queue</a></p>{forms}<pre>{_e(render_proposal(p))}</pre>",
                 who, csrf)


def refused(message: str, back: str) -> str:
    return frame("Refused", f"<p role='alert'>{_e(message)}</p><p><a href='{_e(back)}'>back</a></p>")
