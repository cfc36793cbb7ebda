"""HTML views of the approval page: login, the queue, one proposal. Everything is escaped.

Scripts come only from DAS itself (``/static``: the bpmn-js viewer bundled at install time,
and ``proposal.js``); the data they draw is embedded as a JSON block, never as script, so the
Content-Security-Policy allows no inline script at all.
"""

from __future__ import annotations

import html
import json
from typing import Any

from das.authoring.queue import Queue
from das.contracts import Proposal
from das.identity import Principal
from das.views import proposal_page as pv
from das.views.text import render_proposal

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_e = html.escape


def frame(
    title: str,
    body: str,
    who: Principal | None = None,
    csrf: str | None = None,
    scripts: tuple[str, ...] = (),
    styles: tuple[str, ...] = (),
) -> str:
    bar = ""
    if who is not None:
        logout = (
            f"<form method='post' action='/logout' class='inline'>"
            f"<input type='hidden' name='csrf' value='{_e(csrf or '')}'><button>Log out</button></form>"
        )
        bar = f"<div class='who'>Signed in as <b>{_e(who.name)}</b> ({_e(who.role)}) {logout}</div>"
    links = "".join(f"<link rel='stylesheet' href='{_e(s)}'>" for s in ("/static/das.css", *styles))
    tags = "".join(f"<script src='{_e(s)}'></script>" for s in scripts)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
        f"{links}</head><body><header class='top'>{bar}<p class='brand'><a href='/'>DAS</a></p></header>"
        f"<main><h1>{_e(title)}</h1>{body}</main>{tags}</body></html>"
    )


def login(message: str = "", next_url: str = "/") -> str:
    note = f"<p role='alert' class='alert'>{_e(message)}</p>" if message else ""
    return frame(
        "Sign in to DAS",
        note + "<form method='post' action='/login' class='login'>"
        f"<input type='hidden' name='next' value='{_e(next_url)}'>"
        "<p><label for='username'>User</label> <input id='username' name='username' autocomplete='username'"
        " required></p><p><label for='token'>Personal token</label> <input id='token' name='token'"
        " type='password' autocomplete='current-password' required></p><p><button>Sign in</button></p></form>"
        "<p>An admin issues tokens with <code>das user add NAME --role reviewer</code>.</p>",
    )


def _badge(text: str, ok: bool | None) -> str:
    cls = "ok" if ok else ("bad" if ok is False else "neutral")
    return f"<span class='badge {cls}'>{_e(text)}</span>"


def _select(name: str, label: str, options: tuple[str, ...], current: str | None) -> str:
    opts = "".join(
        f"<option value='{_e(o)}'{' selected' if o == current else ''}>{_e(o)}</option>" for o in options
    )
    return (
        f"<label for='f-{name}'>{_e(label)}</label> <select id='f-{name}' name='{name}'>"
        f"<option value=''>any</option>{opts}</select>"
    )


def queue(rows: list[pv.QueueRow], who: Principal, csrf: str, filters: dict[str, str | None]) -> str:
    form = (
        "<form method='get' action='/' class='filters' role='search'>"
        + _select("status", "Status", pv.STATUSES, filters.get("status"))
        + f" <label for='f-key'>Key</label> <input id='f-key' name='key' value='{_e(filters.get('key') or '')}'>"
        + f" <label for='f-author'>Author</label> <input id='f-author' name='author' "
        f"value='{_e(filters.get('author') or '')}'> "
        + _select("origin", "Origin", pv.ORIGINS, filters.get("origin"))
        + " <button>Filter</button></form>"
    )
    body = "".join(
        f"<tr><td><a href='/proposals/{_e(r.id)}'>{_e(r.id)}</a></td><td>{_e(r.key)}</td>"
        f"<td>{_e(r.base_version or '(new)')} &rarr; {_e(r.version)}</td><td>{_badge(r.status, None)}</td>"
        f"<td>{_e(r.origin)}</td><td>{_e(r.author)}</td>"
        f"<td>{_badge(r.badges.validation, r.badges.validation_ok)} {_badge(r.badges.simulation, r.badges.simulation_ok)}"
        f" {_badge('approvals ' + r.badges.approvals, None)}</td><td>{_e(r.created_at)}</td></tr>"
        for r in rows
    )
    table = (
        "<table class='queue'><caption>Proposals, newest first</caption><thead><tr>"
        + "".join(
            f"<th scope='col'>{h}</th>"
            for h in ("Proposal", "Key", "Version", "Status", "Origin", "Author", "Checks", "Filed")
        )
        + f"</tr></thead><tbody>{body}</tbody></table>"
    )
    empty = "" if rows else "<p>No proposal matches these filters.</p>"
    return frame("DAS approval queue", form + table + empty, who, csrf)


def _review(p: Proposal, who: Principal, csrf: str, why_not: dict[str, str | None]) -> str:
    if not who.can("review"):
        return f"<p class='note'>You are signed in as {_e(who.role)}; only reviewers and admins approve.</p>"
    pid, token = _e(p.id), f"<input type='hidden' name='csrf' value='{_e(csrf)}'>"
    flagged = pv.needs_acknowledgement(p)
    ack = (
        (
            f" <span class='ack'><input type='checkbox' id='ack-executable' name='ack_executable' value='yes' required> "
            f"<label for='ack-executable'>I have read the {flagged} flagged executable element(s) under "
            "<a href='#h-exec'>Executable content</a> and accept them</label></span>"
        )
        if flagged
        else ""
    )
    parts = []
    for action, label, comment in (("approve", "Approve", "optional"), ("reject", "Reject", "required")):
        reason = why_not.get(action)
        required = " required" if comment == "required" else ""
        if reason:
            parts.append(
                f"<form class='review' aria-describedby='why-{action}'>"
                f"<button type='button' disabled>{label}</button> "
                f"<span class='why' id='why-{action}'>{_e(reason)}</span></form>"
            )
        else:
            parts.append(
                f"<form method='post' action='/proposals/{pid}/{action}' class='review'>{token}"
                f"<label for='c-{action}'>Comment ({comment})</label> "
                f"<input id='c-{action}' name='comment'{required}>{ack if action == 'approve' else ''} "
                f"<button>{label}</button></form>"
            )
    return "<section aria-label='Review'>" + "".join(parts) + "</section>"


def _table(caption: str, headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return f"<p>{_e(caption)}: none.</p>"
    head = "".join(f"<th scope='col'>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _data_block(data: dict[str, Any]) -> str:
    """JSON the diagram script reads; ``<``, ``>`` and ``&`` escaped so no text ends the block."""
    raw = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script type='application/json' id='das-data'>{raw}</script>"


def _origin(p: Proposal) -> str:
    if p.origin == "nightly":
        rows = [[json.dumps(e, sort_keys=True)[:400]] for e in pv.evidence_rows(p)]
        measure = p.value_measure.model_dump(mode="json", exclude_none=True)
        value = json.dumps(measure, sort_keys=True) if measure else "none given"
        return f"<p>Mined from engine history. Value estimate: <code>{_e(value)}</code></p>" + _table(
            "Evidence", ["evidence (incidents, instances, durations)"], rows
        )
    trace = [
        [
            str(a.get("attempt", i)),
            "ok" if a.get("ok") else "problems",
            "; ".join(map(str, a.get("problems", [])))[:500],
            f"{a.get('input_tokens', 0)}/{a.get('output_tokens', 0)}",
            str(a.get("latency_ms", "")),
        ]
        for i, a in enumerate(p.draft_trace)
    ]
    return f"<p>Origin: {_e(p.origin)}. {_e(p.rationale or '')}</p>" + _table(
        "Draft trace (every attempt)",
        ["attempt", "result", "problems fed back", "tokens in/out", "ms"],
        trace,
    )


def proposal(p: Proposal, who: Principal, csrf: str, queue_: Queue) -> str:
    d = pv.diagram(queue_, p)
    b = pv.badges(queue_, p)
    pid = _e(p.id)
    head = (
        f"<p class='meta'>{_e(p.kind)} <b>{_e(p.key)}</b> {_e(p.base_version or '(new)')} &rarr; {_e(p.version)}"
        f" &middot; {_badge(p.status, None)} {_badge(b.validation, b.validation_ok)} "
        f"{_badge(b.simulation, b.simulation_ok)} {_badge('approvals ' + b.approvals, None)}"
        f" &middot; by {_e(p.author)} ({_e(p.origin)})</p>"
    )
    legend = (
        "<ul class='legend' aria-label='Legend'><li class='l-added'>added</li><li class='l-changed'>changed</li>"
        "<li class='l-removed'>removed (base version)</li><li class='l-error'>error finding</li>"
        "<li class='l-warning'>warning finding</li><li class='l-unreached'>never reached in simulation</li>"
        "<li class='l-executable'>runs code (see Executable content)</li></ul>"
    )
    toggle = "<button type='button' id='toggle-base' hidden>Show base version</button>" if d.base_xml else ""
    diagram = (
        f"<section aria-labelledby='h-diagram'><h2 id='h-diagram'>Diagram</h2>{legend}{toggle}"
        f"<figure><div id='canvas'></div><figcaption>BPMN diagram of {_e(p.key)} {_e(p.version)}; the "
        "changes, findings and coverage are also listed below.</figcaption></figure>"
        "<p id='diagram-status' role='status'>Loading the diagram&hellip;</p></section>"
    )
    changes = [
        [
            e.change,
            e.kind,
            e.id,
            e.name or "",
            "; ".join(f"{f.field}: {f.old!r} -> {f.new!r}" for f in e.fields)[:300],
        ]
        for e in (p.diff.entries if p.diff is not None else [])
    ]
    findings = [[f.severity, f.rule, f.element or "-", f.message] for f in p.validation.findings]
    sim = p.simulation
    sim_text = (
        f"<p>{sim.completed}/{sim.runs} runs completed, coverage {sim.coverage:.0%}.</p>"
        if sim is not None
        else "<p>Not simulated.</p>"
    )
    stuck = [[str(s.run), s.element or "-", s.reason] for s in (sim.stuck[:20] if sim is not None else [])]
    unreached = ", ".join(sim.unreached if sim is not None else []) or "none"
    wrappers = [
        [
            str(w.get("task_type", "?")),
            _tools(pv.wrapper_tools(w)),
            json.dumps(w.get("input_schema") or w.get("inputs") or {})[:300],
            json.dumps(w.get("output_schema") or w.get("outputs") or {})[:300],
            json.dumps(w.get("policy") or {})[:300],
        ]
        for w in p.tde_wrappers
    ]
    executable = pv.executable_rows(p)
    history = [
        [
            h.at,
            h.actor,
            h.action,
            (h.artifact_sha256 or "")[:12],
            h.proof or "",
            " ".join(x for x in (h.principal_id, h.credential) if x),
            h.comment or "",
            h.acknowledged or "",
        ]
        for h in p.history
    ]
    body = (
        f"<nav><a href='/'>&larr; queue</a></nav>{head}{_review(p, who, csrf, pv.review_buttons(queue_, p, who))}"
        f"{diagram}<section aria-labelledby='h-changes'><h2 id='h-changes'>Changes against the base version</h2>"
        + _table("Semantic diff", ["change", "kind", "element", "name", "fields"], changes)
        + f"</section>{_executable(executable)}<section aria-labelledby='h-findings'><h2 id='h-findings'>Validation</h2>"
        + _table("Findings", ["severity", "rule", "element", "message"], findings)
        + f"</section><section aria-labelledby='h-sim'><h2 id='h-sim'>Simulation</h2>{sim_text}"
        + _table("Stuck runs", ["run", "element", "reason"], stuck)
        + f"<p>Never reached: {_e(unreached)}</p></section>"
        + f"<section aria-labelledby='h-origin'><h2 id='h-origin'>Where it came from</h2>{_origin(p)}</section>"
        + "<section aria-labelledby='h-tde'><h2 id='h-tde'>TDE wrappers</h2>"
        + _table("Wrappers proposed with it", ["task type", "tools", "inputs", "outputs", "policy"], wrappers)
        + "</section><section aria-labelledby='h-history'><h2 id='h-history'>History</h2>"
        + _table(
            "Who did what, on which artifact",
            ["at", "actor", "action", "artifact", "proof", "principal", "comment", "acknowledged"],
            history,
        )
        + f"</section><section aria-labelledby='h-dl'><h2 id='h-dl'>Download</h2><ul>"
        f"<li><a href='/proposals/{pid}/artifact.bpmn' download>BPMN (opens in Camunda Modeler)</a></li>"
        f"<li><a href='/proposals/{pid}/diff.json' download>Diff as JSON</a></li></ul>"
        f"<details><summary>As text</summary><pre>{_e(render_proposal(p))}</pre></details></section>"
        + _data_block(
            {
                "xml": d.xml,
                "base_xml": d.base_xml,
                "markers": d.markers,
                "badges": d.badges,
                "removed": d.removed,
                "base_markers": d.base_markers,
                "executable": executable,
                "tde_tools": {str(w.get("task_type", "?")): pv.wrapper_tools(w) for w in p.tde_wrappers},
            }
        )
    )
    return frame(
        f"Proposal {p.id}",
        body,
        who,
        csrf,
        scripts=("/static/vendor/bpmn-navigated-viewer.production.min.js", "/static/proposal.js"),
        styles=(
            "/static/vendor/assets/diagram-js.css",
            "/static/vendor/assets/bpmn-js.css",
            "/static/vendor/assets/bpmn-font/css/bpmn.css",
        ),
    )


def _tools(tools: list[str] | None) -> str:
    if tools is None:
        return "none named: finish and read-only tools only"
    return ", ".join(tools) or "none"


def _executable(rows: list[dict[str, Any]]) -> str:
    """What the engine would run, each in full: the reviewer approves this, not only the diagram."""
    flagged = sum(1 for r in rows if r["flagged"])
    intro = (
        f"<p>{len(rows)} executable element(s); {flagged} outside the allow-list "
        "(guardrails/executable.yaml) need your acknowledgement to approve.</p>"
        if rows
        else "<p>No scripts, Java classes, expressions, connectors or conditions.</p>"
    )
    body = "".join(
        f"<tr class='{'flagged' if r['flagged'] else 'allowed'}'><td>{_e(r['kind'].replace('_', ' '))}</td>"
        f"<td>{_e(r['element'] or '-')}</td><td>{_e(r['where'])}</td><td>{_e(r['language'] or '')}</td>"
        f"<td>{'needs acknowledgement' if r['flagged'] else 'allowed'}</td><td>{'new' if r['new'] else 'in base'}</td>"
        f"<td><pre class='code'>{_e(r['content'])}</pre>"
        + (f"<small>sha256 {_e(r['sha256'])}</small>" if r.get("sha256") else "")
        + "</td></tr>"
        for r in rows
    )
    table = (
        (
            "<table class='executable'><caption>Executable content of the proposed artifact</caption><thead><tr>"
            + "".join(
                f"<th scope='col'>{h}</th>"
                for h in ("kind", "element", "where", "language", "allow-list", "change", "content")
            )
            + f"</tr></thead><tbody>{body}</tbody></table>"
        )
        if rows
        else ""
    )
    return (
        f"<section aria-labelledby='h-exec'><h2 id='h-exec'>Executable content</h2>{intro}{table}</section>"
    )


def refused(message: str, back: str) -> str:
    return frame(
        "Refused", f"<p role='alert' class='alert'>{_e(message)}</p><p><a href='{_e(back)}'>back</a></p>"
    )
