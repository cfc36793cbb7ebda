"""Views: how a proposal reads as text, shared by the CLI (`das queue show`) and the API pages."""

from __future__ import annotations

import json

from das.bpmn.parse import parse
from das.contracts import Proposal
from das.errors import DasError


def render_proposal(p: Proposal) -> str:
    lines = [f"proposal {p.id}  [{p.status}]  {p.kind} {p.key}: {p.base_version or '(new)'} -> {p.version}",
             f"author: {p.author}  origin: {p.origin}", "", f"rationale: {p.rationale or '-'}", ""]
    lines += _elements(p.artifact)
    findings = p.validation.get("findings", [])
    lines.append(f"validation: {'valid' if p.validation.get('valid') else 'INVALID'} ({len(findings)} findings)")
    lines += [f"  {f.get('severity', '?'):<7} {f.get('rule', '?')}: {f.get('element') or '-'}: {f.get('message')}"
              for f in findings[:30]]
    sim = p.simulation
    if sim:
        lines.append(f"simulation: {sim.get('completed', 0)}/{sim.get('runs', 0)} runs completed, "
                     f"coverage {sim.get('coverage', 0):.0%}, stuck {len(sim.get('stuck', []))}, "
                     f"unsupported {len(sim.get('unsupported', []))}")
    lines.append("")
    lines.append("diff against base:")
    lines.append("  " + (p.diff.get("text") or json.dumps(p.diff)).replace("\n", "\n  "))
    if p.tde_wrappers:
        lines.append(f"TDE wrappers: {', '.join(w.get('task_type', '?') for w in p.tde_wrappers)}")
    lines.append("")
    lines.append("history:")
    lines += [f"  {h.at}  {h.actor:<12} {h.action}" + (f" [{h.proof}]" if h.proof else "")
              + (f" on {h.artifact_sha256[:12]}" if h.artifact_sha256 else "")
              + (f": {h.comment}" if h.comment else "") for h in p.history]
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
        out.append(f"  {node.type:<22} {node.id:<24} {node.name or ''}" + (f"  [topic {topic}]" if topic else ""))
    return [*out, ""]
