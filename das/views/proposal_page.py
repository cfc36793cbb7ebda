"""What the approval page shows about proposals, computed once for the HTML and the diagram.

Why separate from the HTML: the diagram script colours elements from the same facts the
lists print (the semantic diff, the findings, the simulation), so they are gathered here,
as plain data, and the page embeds them as JSON for ``static/proposal.js``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from das.authoring.queue import Queue
from das.bpmn.executable import script_digest
from das.contracts import Proposal
from das.identity import Principal

STATUSES = ("proposed", "approved", "rejected", "deployed", "deploy_failed")
ORIGINS = ("chat", "nightly", "file")


@dataclass
class Badges:
    validation: str  # "valid" | "N findings" | "invalid (N)"
    validation_ok: bool
    simulation: str  # "simulated 20/20" | "stuck 3/20" | "not simulated"
    simulation_ok: bool
    approvals: str  # "1/2"


@dataclass
class QueueRow:
    id: str
    key: str
    kind: str
    base_version: str | None
    version: str
    status: str
    author: str
    origin: str
    created_at: str
    badges: Badges


@dataclass
class Diagram:
    """The data ``static/proposal.js`` draws: the XML, the base version's XML, and per element
    the marker classes and the badge texts to put on it."""

    xml: str
    base_xml: str | None
    markers: dict[str, list[str]] = field(default_factory=dict)
    badges: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # ids only in the base version
    base_markers: dict[str, list[str]] = field(default_factory=dict)


def badges(queue: Queue, p: Proposal) -> Badges:
    findings = p.validation.findings
    errors = p.validation.counts()["error"]
    valid = p.validation.valid
    if valid:
        validation = "valid" if not findings else f"valid, {len(findings)} finding(s)"
    else:
        validation = f"invalid ({errors} error(s))"
    sim = p.simulation
    if sim is None:
        simulation, sim_ok = "not simulated", False
    elif sim.passed:
        simulation, sim_ok = f"simulated {sim.completed}/{sim.runs}", True
    else:
        simulation, sim_ok = f"stuck {sim.runs - sim.completed}/{sim.runs}", False
    approvals = f"{len(queue.approvals(p))}/{queue.approvals_needed(p)}"
    return Badges(validation, valid, simulation, sim_ok, approvals)


def queue_rows(
    queue: Queue,
    status: str | None = None,
    key: str | None = None,
    author: str | None = None,
    origin: str | None = None,
    limit: int = 200,
) -> list[QueueRow]:
    """The queue, newest first, filtered (key and author: case-insensitive substring)."""
    rows = list(reversed(queue.list(status)))
    if key:
        rows = [r for r in rows if key.lower() in r["key"].lower()]
    if author:
        rows = [r for r in rows if author.lower() in (r["author"] or "").lower()]
    if origin:
        rows = [r for r in rows if r["origin"] == origin]
    out = []
    for r in rows[:limit]:
        p = queue.get(r["id"])
        out.append(
            QueueRow(
                id=r["id"],
                key=r["key"],
                kind=r["kind"],
                base_version=r["base_version"],
                version=r["version"],
                status=r["status"],
                author=r["author"],
                origin=r["origin"],
                created_at=str(r["created_at"]),
                badges=badges(queue, p),
            )
        )
    return out


def diagram(queue: Queue, p: Proposal) -> Diagram:
    base_xml = queue.artifact_of(p.key, p.base_version) if p.base_version else None
    d = Diagram(xml=p.artifact if p.kind == "process" else "", base_xml=base_xml)

    def mark(target: dict[str, list[str]], element: str | None, cls: str) -> None:
        if element and cls not in target.setdefault(element, []):
            target[element].append(cls)

    for entry in p.diff.entries if p.diff is not None else []:
        if entry.kind not in ("node", "flow", "lane", "process"):
            continue
        change, element = entry.change, entry.id
        if change == "removed":
            d.removed.append(element)
            mark(d.base_markers, element, "das-removed")
            d.badges.setdefault("__base__" + element, []).append("removed")
        else:
            mark(d.markers, element, f"das-{change}")
            d.badges.setdefault(element, []).append(change)
    per_element: dict[str, dict[str, int]] = {}
    for f in p.validation.findings:
        if f.element and f.severity in ("error", "warning"):
            per_element.setdefault(f.element, {}).setdefault(f.severity, 0)
            per_element[f.element][f.severity] += 1
            mark(d.markers, f.element, f"das-finding-{f.severity}")
    for element, counts in per_element.items():
        d.badges.setdefault(element, []).extend(
            f"{n} {sev}{'s' if n > 1 else ''}" for sev, n in sorted(counts.items())
        )
    for item in p.diff.executable if p.diff is not None else []:
        mark(d.markers, item.element, "das-executable")
        text = "runs code (acknowledge)" if item.flagged else "runs code"
        if item.element and text not in d.badges.setdefault(item.element, []):
            d.badges[item.element].append(text)
    sim = p.simulation
    for element in sim.unreached if sim is not None else []:
        mark(d.markers, element, "das-unreached")
        d.badges.setdefault(element, []).append("never reached")
    for stuck in sim.stuck if sim is not None else []:
        mark(d.markers, stuck.element, "das-stuck")
    return d


def review_buttons(queue: Queue, p: Proposal, who: Principal) -> dict[str, str | None]:
    """Per action, why the button is disabled (None: enabled)."""
    return queue.why_not(p, who)


def executable_rows(p: Proposal) -> list[dict[str, Any]]:
    """Every executable element of the artifact, in full, for the page's table and its data
    block: what runs, where, whether the allow-list covers it, and a script's sha256 (what an
    operator lists in ``guardrails/executable.yaml`` to allow it)."""
    rows = []
    for item in p.diff.executable if p.diff is not None else []:
        row = item.model_dump(mode="json")
        row["sha256"] = script_digest(item.content) if item.kind == "script" else None
        rows.append(row)
    return rows


def needs_acknowledgement(p: Proposal) -> int:
    """How many flagged executable elements an approval must acknowledge."""
    return sum(1 for item in (p.diff.executable if p.diff is not None else []) if item.flagged)


def wrapper_tools(wrapper: dict[str, Any]) -> list[str] | None:
    """The tools a TDE wrapper's policy names (None: it names none, so it gets only the
    read-only default)."""
    policy = wrapper.get("policy")
    tools = policy.get("allowed_tools") if isinstance(policy, dict) else None
    return [str(t) for t in tools] if isinstance(tools, list) else None


def evidence_rows(p: Proposal) -> list[dict[str, Any]]:
    """Nightly evidence as flat rows (incident counts, instance ids, durations ...)."""
    return [e.model_dump(mode="json", exclude_none=True) for e in p.evidence]


__all__ = [
    "Badges",
    "Diagram",
    "ORIGINS",
    "QueueRow",
    "STATUSES",
    "badges",
    "diagram",
    "evidence_rows",
    "executable_rows",
    "needs_acknowledgement",
    "queue_rows",
    "review_buttons",
    "wrapper_tools",
]
