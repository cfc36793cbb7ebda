"""From findings to filed proposals: deterministic edit ops, checked, deduplicated, queued.

Why deterministic ops: a refactor changes policy (how long to wait, how often to retry, where
failures go), so DAS derives it from the evidence by fixed rules a reviewer can audit. A model
may only phrase the rationale (``das.agents.curator``). Every proposal is applied to the XML the
engine runs now, validated and simulated with ``check_xml``, and filed as a minor bump with
origin "nightly" and author "das", which the queue never lets approve its own work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from das.agents.curator import explain
from das.authoring import versions
from das.authoring.drafter import check_xml
from das.authoring.queue import Queue, new_proposal_id
from das.bpmn import model as m
from das.bpmn.diff import diff, for_proposal
from das.bpmn.edits import apply_edits
from das.bpmn.parse import parse
from das.bpmn.write import to_string
from das.contracts import Proposal, TimeWindow, ValueMeasure
from das.errors import InvalidInput
from das.nightly.mining import Finding, Thresholds

RETRY_CYCLE = "R3/PT5M"
RETRIES = 3


@dataclass
class Plan:
    """One refactor for one finding: the ops, the estimated value and a plain rationale."""

    finding: Finding
    ops: list[dict[str, Any]]
    value: ValueMeasure
    rationale: str
    summary: str


@dataclass
class FileResult:
    fingerprint: str
    status: str  # filed | duplicate | would_file | not_actionable | check_failed | no_definition
    proposal_id: str | None = None
    version: str | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


def _free_id(defs: m.Definitions, base: str) -> str:
    taken = set(defs.nodes) | set(defs.flows)
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    return ident


def _label(f: Finding) -> str:
    return f.activity_name or f.activity_id


def iso_duration(ms: int) -> str:
    minutes = max(1, math.ceil(ms / 60_000))
    hours, mins = divmod(minutes, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "")


def plan_error_boundary(f: Finding, defs: m.Definitions) -> Plan:
    """Catch BPMN errors at the activity and route them to a human, never to a silent end."""
    b, h, e = (
        _free_id(defs, f"{f.activity_id}_{s}") for s in ("nightly_error", "nightly_resolve", "nightly_failed")
    )
    ops = [
        {
            "op": "add_element",
            "id": b,
            "type": "boundaryEvent",
            "attached_to": f.activity_id,
            "event_definition": "error",
            "name": "Failed",
        },
        {"op": "add_element", "id": h, "type": "userTask", "name": f"Resolve failure: {_label(f)}"[:200]},
        {"op": "add_element", "id": e, "type": "endEvent", "name": f"{_label(f)} failed"[:200]},
        {"op": "connect", "source": b, "target": h},
        {"op": "connect", "source": h, "target": e},
    ]
    ev = f.evidence
    value = ValueMeasure(
        refactor=f.refactor,
        metric="incidents_avoided",
        estimate=ev["incidents"],
        incidents_in_window=ev["incidents"],
        instances_affected=ev["instances"],
        window=TimeWindow.model_validate(ev["window"]),
        how="every incident in the window stopped an instance at this activity; with the boundary, a "
        "failure reported as a BPMN error goes to a human task instead (estimate = incident count, an "
        "upper bound: technical failures still raise incidents unless the adapter throws a BPMN error)",
    )
    rationale = (
        f"{ev['incidents']} incident(s) ({', '.join(f'{k}: {v}' for k, v in ev['by_type'].items())}) "
        f"stopped {ev['instances']} instance(s) at {f.activity_id} ({_label(f)}), {ev['open']} still open. "
        f"An error boundary routes failures to a human task 'Resolve failure: {_label(f)}' instead of "
        "leaving the instance stuck. The adapter must report permanent failures as BPMN errors for the "
        "boundary to catch them."
    )
    return Plan(f, ops, value, rationale, f"{ev['incidents']} incidents at {f.activity_id}")


def plan_retry(f: Finding, defs: m.Definitions) -> Plan:
    """Give a flaky external task a retry policy (count and backoff) before it becomes an incident."""
    ops = [
        {
            "op": "update_element",
            "id": f.activity_id,
            "retry_time_cycle": RETRY_CYCLE,
            "input_parameters": {"retries": str(RETRIES), "retryBackoff": RETRY_CYCLE.split("/", 1)[1]},
        }
    ]
    ev = f.evidence
    recover = ev["recovered_tasks"] / ev["failed_tasks"] if ev["failed_tasks"] else 0.0
    value = ValueMeasure(
        refactor=f.refactor,
        metric="failure_rate",
        failure_rate=ev["failure_rate"],
        failures=ev["failures"],
        failed_tasks=ev["failed_tasks"],
        tasks=ev["tasks"],
        exhausted_tasks=ev["exhausted_tasks"],
        observed_recovery_rate=round(recover, 3),
        incidents_avoided_estimate=round(ev["exhausted_tasks"] * recover, 1),
        how="exhausted tasks (failures with no retries left) x the share of failing tasks that later "
        "succeeded on a retry in the same window; 0 when no retry has been seen to succeed",
    )
    rationale = (
        f"{ev['failed_tasks']} of {ev['tasks']} external task(s) at {f.activity_id} ({_label(f)}) failed "
        f"({ev['failures']} failure log entries, {ev['exhausted_tasks']} with no retries left; configured "
        f"retries: {ev.get('configured_retries')}). Setting {RETRIES} retries with backoff {RETRY_CYCLE} "
        "lets transient failures recover before an incident is raised."
    )
    return Plan(f, ops, value, rationale, f"{ev['failures']} failures at {f.activity_id}")


def timeout_for(evidence: dict[str, Any], t: Thresholds) -> int:
    """3x the median, at least one minute, whole minutes: cuts the tail, not the normal case."""
    ms = max(3 * int(evidence["p50_ms"]), t.p95_ratio_floor_ms)
    return math.ceil(ms / 60_000) * 60_000


def plan_timeout(f: Finding, defs: m.Definitions, t: Thresholds) -> Plan | None:
    """An interrupting timer boundary and a follow-up path, when some instances would time out."""
    ev = f.evidence
    timeout = timeout_for(ev, t)
    over = [d for d in ev.get("durations_ms", []) if d > timeout]
    if not over:
        return None
    b, h, e = (
        _free_id(defs, f"{f.activity_id}_{s}")
        for s in ("nightly_timeout", "nightly_followup", "nightly_timed_out")
    )
    dur = iso_duration(timeout)
    ops: list[dict[str, Any]] = [
        {
            "op": "add_element",
            "id": b,
            "type": "boundaryEvent",
            "attached_to": f.activity_id,
            "event_definition": "timer",
            "timer": {"kind": "timeDuration", "value": dur},
            "name": f"After {dur[2:]}",
        },
        {"op": "add_element", "id": h, "type": "userTask", "name": f"Follow up: {_label(f)} timed out"[:200]},
        {"op": "add_element", "id": e, "type": "endEvent", "name": f"{_label(f)} timed out"[:200]},
        {"op": "connect", "source": b, "target": h},
        {"op": "connect", "source": h, "target": e},
    ]
    capped = sorted(min(d, timeout) for d in ev.get("durations_ms", []))
    missing = max(0, ev["samples"] - len(capped))  # the evidence keeps only the slowest durations
    rank = max(1, math.ceil(0.95 * ev["samples"])) - 1 - missing
    p95_after = capped[max(rank, 0)]
    value = ValueMeasure(
        refactor=f.refactor,
        metric="p95_reduction_ms",
        p95_ms=ev["p95_ms"],
        p95_ms_with_timeout=p95_after,
        estimate=ev["p95_ms"] - p95_after,
        timeout_ms=timeout,
        instances_over_timeout=len(over),
        samples=ev["samples"],
        how="p95 of the observed durations with every duration capped at the timeout (nearest rank); the "
        "capped instances go to a follow-up task instead of waiting",
    )
    rationale = (
        f"{f.activity_id} ({_label(f)}) has p95 {ev['p95_ms']} ms against a median of {ev['p50_ms']} ms "
        f"over {ev['samples']} runs ({ev['rule']}). A {dur} timer (3x the median, at least a minute) would "
        f"have moved {len(over)} run(s) to a follow-up task, cutting p95 to about {p95_after} ms. The timer "
        "interrupts the activity; check that the work is safe to abandon or compensate."
    )
    return Plan(f, ops, value, rationale, f"p95 {ev['p95_ms']} ms at {f.activity_id}")


def plan_for(f: Finding, defs: m.Definitions, t: Thresholds | None = None) -> Plan | None:
    """The refactor for an actionable finding, or None (unused paths are for humans to judge)."""
    if not f.actionable or f.activity_id not in defs.nodes:
        return None
    if f.refactor == "add_error_boundary":
        return plan_error_boundary(f, defs)
    if f.refactor == "add_retry":
        return plan_retry(f, defs)
    if f.refactor == "add_timeout":
        return plan_timeout(f, defs, t or Thresholds())
    return None


def open_fingerprints(queue: Queue, key: str) -> dict[str, str]:
    """fingerprint -> proposal id for nightly proposals on ``key`` that are still proposed."""
    out: dict[str, str] = {}
    for row in queue.list("proposed"):
        if row["key"] != key or row["origin"] != "nightly":
            continue
        for ev in queue.get(row["id"]).evidence:
            if ev.fingerprint:
                out[ev.fingerprint] = row["id"]
    return out


def base_version(queue: Queue, key: str, definition: dict[str, Any]) -> str:
    current = queue.current_version(key)
    if current:
        return current
    tag = definition.get("versionTag") or ""
    try:
        versions.parse(tag)
        return tag
    except InvalidInput:
        return "1.0.0"


def file_for_key(
    client: Any,
    key: str,
    findings: list[Finding],
    *,
    queue: Queue,
    model: str | None = None,
    dry_run: bool = False,
    thresholds: Thresholds | None = None,
) -> list[FileResult]:
    """Plan, check and file one proposal per actionable finding of ``key``."""

    definitions = client.process_definitions(key=key, latest=True)
    if not definitions:
        return [FileResult(f.fingerprint, "no_definition") for f in findings]
    definition = definitions[0]
    xml = client.process_definition_xml(id=definition["id"])
    defs = parse(xml.encode(), name=f"{key}.bpmn")
    base = base_version(queue, key, definition)
    existing = open_fingerprints(queue, key)
    results: list[FileResult] = []
    for f in findings:
        plan = plan_for(f, defs, thresholds)
        if plan is None:
            results.append(FileResult(f.fingerprint, "not_actionable", problems=[f.note] if f.note else []))
            continue
        if f.fingerprint in existing:
            results.append(FileResult(f.fingerprint, "duplicate", proposal_id=existing[f.fingerprint]))
            continue
        new_xml = to_string(apply_edits(defs, plan.ops))
        cand = check_xml(new_xml, key)
        if not cand.ok:
            results.append(FileResult(f.fingerprint, "check_failed", problems=cand.problems))
            continue
        version = versions.minor_bump(base)
        if dry_run:
            results.append(FileResult(f.fingerprint, "would_file", version=version))
            continue
        rationale, trace = plan.rationale, [{"source": "deterministic", "ok": True}]
        if model:
            res = explain(
                model,
                key=key,
                version=base,
                finding=f.to_dict(),
                ops=plan.ops,
                summary=plan.summary,
                value=plan.value.model_dump(mode="json", exclude_none=True, exclude={"refactor"}),
            )
            trace += res.trace
            if res.note is not None:
                risks = "".join(f"\n- {r}" for r in res.note.risks)
                rationale = f"{res.note.rationale}{chr(10) + 'Risks:' + risks if risks else ''}\n\nFacts (DAS): {plan.rationale}"
        if queue.current_version(key) is None:
            queue.seed_version(key, base, xml, target="engine")
        delta = diff(parse(xml.encode(), name="base"), parse(new_xml.encode(), name="new"))
        proposal = Proposal(
            id=new_proposal_id(),
            kind="process",
            key=key,
            base_version=base,
            version=version,
            artifact=new_xml,
            validation=cand.validation,
            simulation=cand.simulation,
            diff=for_proposal(delta),
            rationale=rationale,
            evidence=[f.to_evidence()],
            value_measure=plan.value,
            edit_ops=plan.ops,
            draft_trace=trace,
            origin="nightly",
            author="das",
        )
        filed = queue.file(proposal, "system")
        existing[f.fingerprint] = filed.id
        results.append(FileResult(f.fingerprint, "filed", proposal_id=filed.id, version=version))
    return results


def file_proposals(
    client: Any,
    findings: list[Finding],
    *,
    queue: Queue | None = None,
    model: str | None = None,
    dry_run: bool = False,
    thresholds: Thresholds | None = None,
) -> list[FileResult]:
    """File proposals for every key that has findings; unused paths are reported, not filed."""
    queue = queue or Queue()
    by_key: dict[str, list[Finding]] = {}
    for f in findings:
        by_key.setdefault(f.process_key, []).append(f)
    out: list[FileResult] = []
    for key, items in sorted(by_key.items()):
        out += file_for_key(
            client, key, items, queue=queue, model=model, dry_run=dry_run, thresholds=thresholds
        )
    return out
