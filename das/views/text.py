"""Text views: how a proposal reads (``das queue show`` and the approval page) and other reports."""

from __future__ import annotations

import json
from typing import Any

from das.bpmn.diff import render_text
from das.bpmn.parse import parse
from das.contracts import NightlyReport, Proposal, SimulationReport
from das.engine.kernel import KernelStatus
from das.errors import DasError
from das.llm.check import ModelCheck


def render_proposal(p: Proposal) -> str:
    lines = [
        f"proposal {p.id}  [{p.status}]  {p.kind} {p.key}: {p.base_version or '(new)'} -> {p.version}",
        f"author: {p.author}  origin: {p.origin}",
        "",
        f"rationale: {p.rationale or '-'}",
        "",
    ]
    lines += _elements(p.artifact)
    findings = p.validation.findings
    lines.append(f"validation: {'valid' if p.validation.valid else 'INVALID'} ({len(findings)} findings)")
    lines += [f"  {f.severity:<7} {f.rule}: {f.element or '-'}: {f.message}" for f in findings[:30]]
    sim = p.simulation
    if sim is not None:
        lines.append(
            f"simulation: {sim.completed}/{sim.runs} runs completed, coverage {sim.coverage:.0%}, "
            f"stuck {len(sim.stuck)}, unsupported {len(sim.unsupported)}"
        )
    lines.append("")
    lines.append("diff against base:")
    lines.append("  " + diff_text(p).replace("\n", "\n  "))
    if p.tde_wrappers:
        lines.append(f"TDE wrappers: {', '.join(w.get('task_type', '?') for w in p.tde_wrappers)}")
    lines.append("")
    lines.append("history:")
    lines += [
        f"  {h.at}  {h.actor:<12} {h.action}"
        + (f" [{h.proof}]" if h.proof else "")
        + (f" on {h.artifact_sha256[:12]}" if h.artifact_sha256 else "")
        + (f": {h.comment}" if h.comment else "")
        + (f" (acknowledged {h.acknowledged})" if h.acknowledged else "")
        for h in p.history
    ]
    return "\n".join(lines)


def diff_text(p: Proposal) -> str:
    """The diff as a reviewer reads it (``das queue diff``, ``das queue show``)."""
    if p.diff is None:
        return "no diff recorded"
    text = p.diff.text or render_text(p.diff)
    return text + "\n" + executable_text(p)


def executable_text(p: Proposal) -> str:
    """Every executable element, flagged ones marked: what the engine would run."""
    items = p.diff.executable if p.diff is not None else []
    if not items:
        return "executable content: none"
    flagged = sum(1 for i in items if i.flagged)
    lines = [
        f"executable content: {len(items)} element(s), {flagged} outside the allow-list"
        + (" (approving needs --ack-executable)" if flagged else "")
    ]
    for item in items:
        mark = "!" if item.flagged else " "
        lang = f" [{item.language}]" if item.language else ""
        lines.append(
            f"{mark} {item.kind}{lang} on {item.element or '-'} ({item.where})"
            + ("" if item.new else " (in base)")
            + ":"
        )
        lines += [f"      {line}" for line in item.content.splitlines()[:40] or [""]]
    return "\n".join(lines)


def _elements(xml: str) -> list[str]:
    """The drafted process at a glance: each flow node with its type and topic."""
    if not xml:
        return []

    try:
        defs = parse(xml.encode(), name="proposal")
    except DasError as exc:
        return [f"process: cannot be read ({exc.message})", ""]
    out = ["process elements:"]
    for node in defs.nodes.values():
        topic = node.attrs.get("camunda:topic")
        out.append(
            f"  {node.type:<22} {node.id:<24} {node.name or ''}" + (f"  [topic {topic}]" if topic else "")
        )
    return [*out, ""]


def render_model_check(check: ModelCheck) -> str:
    """``das models check`` as text."""
    caps = check.capabilities
    lines = [
        f"model:       {check.model}",
        f"server:      {caps.api_base or '(the provider default)'}  local: {'yes' if caps.local else 'no'}",
        f"structured:  {check.structured}"
        + (
            f" (was {check.structured_before}; the server refused it)"
            if check.structured != check.structured_before
            else ""
        )
        + f"  probe {'ok' if check.structured_ok else 'FAILED'}  {check.latency_ms:.0f} ms",
        f"tools:       {'native' if check.tools else 'JSON actions (no native tool calls)'}"
        + ("" if not check.tools_checked else f"  probe {'ok' if check.tools_ok else 'no tool call'}"),
        f"drafting:    {caps.authoring_form} form",
        f"sources:     {json.dumps(caps.source)}",
    ]
    if check.error:
        lines.append(f"error:       {check.error}")
    for lesson in caps.learned[-3:]:
        lines.append(f"learned:     {lesson}")
    return "\n".join(lines)


def render_simulations(reports: list[SimulationReport]) -> str:
    """``das bpmn simulate`` as text: per file, runs, findings, ends, stuck runs, gaps."""
    lines = []
    for r in reports:
        lines.append(f"{r.file}: {r.completed}/{r.runs} completed, coverage {r.coverage:.0%}")
        for finding in r.findings:
            where = f" [{finding.element}]" if finding.element else ""
            lines.append(f"  {finding.severity:7} {finding.rule}{where}: {finding.message}")
        if r.ends:
            lines.append("  ends: " + ", ".join(f"{k}={v}" for k, v in r.ends.items()))
        for s in r.stuck[:5]:
            lines.append(f"  stuck run {s.run}: {s.reason} [{s.element}]")
        if len(r.stuck) > 5:
            lines.append(f"  ... {len(r.stuck) - 5} more stuck runs")
        if r.unreached:
            lines.append("  unreached: " + ", ".join(r.unreached[:12]))
        for u in r.unsupported:
            lines.append(f"  unsupported: {u.what} [{u.element}]")
        for p in r.input_problems[:10]:
            lines.append(
                f"  input unset: {p.element} needs {p.field} from variable {p.variable or '(not mapped)'}, "
                "which no earlier step set on some path"
            )
    return "\n".join(lines)


def render_nightly(report: NightlyReport) -> str:
    """``das nightly`` as text: one line per finding, then what was filed."""
    lines = [f"{len(report.findings)} finding(s)" + (" (dry run)" if report.dry_run else "")]
    for f in report.findings:
        res = f.result
        where = f"{f.process_key}:{f.activity_id}"
        tail = (res.proposal_id or "; ".join(res.problems)) if res else ""
        lines.append(
            f"  {f.kind:<14} {where:<40} {f.refactor:<19} {res.status if res else '-':<15} {tail or ''}".rstrip()
        )
    lines.append("filed: " + (", ".join(report.filed) or "none"))
    if report.filed:
        lines.append("review: das queue show <id>")
    return "\n".join(lines)


def render_kernel_up(report: dict[str, Any]) -> str:
    """``das kernel up``: the engine, each deployment, the root instance."""
    lines = [f"engine {report['engine']} at {report['url']} (version {report['version']})"]
    for d in report["deployments"]:
        extra = ", ".join(d.get("definitions") or []) or d.get("error", "")
        lines.append(f"  {d['status']:<9} {d['file']} {extra}".rstrip())
    if report.get("root_instance"):
        lines.append(f"root orchestrator started: {report['root_instance']}")
    return "\n".join(lines)


def render_kernel_status(data: KernelStatus) -> str:
    """``das kernel status`` as text."""
    if not data.ready:
        return f"engine DOWN at {data.url}"
    lines = [
        f"engine up at {data.url} (version {data.version}, "
        f"pid {data.engine_pid or 'not started by DAS'}, kernel pid {data.kernel_pid or '-'})",
        f"DAS deployments: {data.das_deployments}, definitions: {len(data.process_definitions)}, "
        f"open incidents: {data.open_incidents}",
    ]
    for topic, n in sorted(data.open_external_tasks.items()):
        lines.append(f"  {topic}: {n} open")
    return "\n".join(lines)
