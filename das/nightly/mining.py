"""Nightly mining: deterministic patterns in engine history, one ``Finding`` per (key, activity).

Why deterministic: the findings are the evidence a human reviews, so they must be
reproducible from the engine's own history rows (counts, ids, percentiles), never from a
model. ``fetch_history`` talks to the engine; ``analyse`` is a pure function over the rows the
Camunda 7 REST API returns, so it is unit-tested on synthetic dicts.

Patterns:
* ``incidents``      incidents (failedExternalTask, failedJob) per activity -> add_error_boundary
* ``task_failures``  external-task failure log entries per activity          -> add_retry
* ``long_duration``  p95 of durationInMillis above a threshold or far above the process's
                     median activity duration                               -> add_timeout
* ``unused_path``    nodes / gateway flows of the latest definition never seen over >= N
                     completed instances                                    -> review_unused_path
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from das.bpmn import model as m
from das.bpmn.parse import parse
from das.contracts import Evidence, FindingKind, Refactor

INCIDENT_TYPES = ("failedExternalTask", "failedJob")
TIMEABLE = m.ACTIVITY_TYPES  # what can carry a boundary event
SKIP_DURATION = {
    "startEvent",
    "endEvent",
    "noneEndEvent",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "boundaryEvent",
    "boundaryTimer",
    "boundaryError",
    "sequenceFlow",
}
MAX_EXAMPLES = 5
PAGE = 1000
MAX_ROWS = 20_000


@dataclass
class Thresholds:
    """Where a pattern becomes a finding; the defaults are conservative on purpose."""

    min_incidents: int = 1
    min_failures: int = 2
    min_duration_samples: int = 5
    p95_abs_ms: int = 5 * 60_000  # p95 above 5 minutes is long for any automated step
    p95_ratio: float = 10.0  # ... or 10x the process's median activity duration
    p95_ratio_floor_ms: int = 60_000  # but never flag sub-minute tails on the ratio alone
    min_completed_for_paths: int = 10


@dataclass
class Finding:
    """One deterministic pattern on one activity of one process key."""

    kind: FindingKind
    process_key: str
    activity_id: str
    refactor: Refactor
    evidence: dict[str, Any] = field(default_factory=dict)
    activity_name: str | None = None
    activity_type: str | None = None
    actionable: bool = True
    note: str = ""

    @property
    def fingerprint(self) -> str:
        return f"{self.process_key}:{self.activity_id}:{self.refactor}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fingerprint": self.fingerprint}

    def to_evidence(self) -> Evidence:
        """The finding as a proposal's evidence; the measurements go to ``details``."""
        return Evidence(
            kind=self.kind,
            fingerprint=self.fingerprint,
            process_key=self.process_key,
            activity_id=self.activity_id,
            activity_name=self.activity_name,
            activity_type=self.activity_type,
            refactor=self.refactor,
            actionable=self.actionable,
            note=self.note,
            details=self.evidence,
        )


@dataclass
class History:
    """The engine rows for one process key (all versions unless noted)."""

    key: str
    definition: dict[str, Any] = field(default_factory=dict)  # the latest definition
    xml: str = ""  # the latest definition's BPMN
    incidents: list[dict[str, Any]] = field(default_factory=list)
    task_log: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    latest_completed: list[dict[str, Any]] = field(default_factory=list)  # instances of the latest definition
    latest_activities: list[dict[str, Any]] = field(default_factory=list)


def engine_time(when: datetime) -> str:
    """Camunda 7 REST date format: 2026-11-22T03:00:00.000+0000."""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _paged(call: Any, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while len(rows) < MAX_ROWS:
        page = call(**params, firstResult=len(rows), maxResults=PAGE) or []
        rows.extend(page)
        if len(page) < PAGE:
            break
    return rows


def fetch_history(client: Any, key: str, since: datetime | None) -> History | None:
    """Read what ``analyse`` needs for ``key``; None when the key has no deployed definition."""
    latest = client.process_definitions(key=key, latest=True)
    if not latest:
        return None
    definition = latest[0]
    after = engine_time(since) if since else None
    hist = History(key=key, definition=definition, xml=client.process_definition_xml(id=definition["id"]))
    hist.incidents = [
        i
        for i in _paged(client.history_incidents, processDefinitionKey=key, createTimeAfter=after)
        if i.get("incidentType") in INCIDENT_TYPES
    ]
    hist.task_log = _paged(client.history_external_task_log, processDefinitionKey=key, timestampAfter=after)
    versions = client.process_definitions(key=key, latest=False, sortBy="version", sortOrder="desc") or []
    for d in versions[:10]:  # the last ten versions; activity ids usually survive versions
        hist.activities += _paged(
            client.history_activity_instances, processDefinitionId=d["id"], startedAfter=after
        )
    hist.latest_completed = _paged(
        client.history_process_instances,
        processDefinitionId=definition["id"],
        finished=True,
        completed=True,
        startedAfter=after,
    )
    hist.latest_activities = [a for a in hist.activities if a.get("processDefinitionId") == definition["id"]]
    return hist


def mine(
    client: Any,
    since: datetime | None = None,
    keys: list[str] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Findings for ``keys`` (default: every deployed key) from history since ``since``."""
    if not keys:
        keys = sorted({d["key"] for d in client.process_definitions(latest=True) or []})
    findings: list[Finding] = []
    for key in keys:
        hist = fetch_history(client, key, since)
        if hist is not None:
            findings += analyse(hist, thresholds)
    return findings


# ---- pure analysis ---------------------------------------------------------------------------
def analyse(hist: History, thresholds: Thresholds | None = None) -> list[Finding]:
    t = thresholds or Thresholds()
    nodes = _nodes(hist.xml, hist.key)
    out = (
        _incidents(hist, nodes, t)
        + _failures(hist, nodes, t)
        + _durations(hist, nodes, t)
        + _unused(hist, nodes, t)
    )
    for f in out:
        node = nodes.get(f.activity_id)
        f.activity_name = f.activity_name or (node.name if node else None)
        f.activity_type = f.activity_type or (node.type if node else None)
    return out


def _nodes(xml: str, key: str) -> dict[str, m.FlowNode]:
    if not xml:
        return {}
    defs = parse(xml.encode(), name=f"{key}.bpmn")
    return dict(defs.nodes)


def _boundary_kinds(nodes: dict[str, m.FlowNode], activity: str) -> set[str]:
    kinds: set[str] = set()
    for n in nodes.values():
        if n.type == "boundaryEvent" and n.attached_to == activity:
            kinds |= set(n.event_kinds())
    return kinds


def _incidents(hist: History, nodes: dict[str, m.FlowNode], t: Thresholds) -> list[Finding]:
    by_act: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for inc in hist.incidents:
        by_act[inc.get("activityId") or "?"].append(inc)
    out = []
    for act, rows in sorted(by_act.items()):
        if len(rows) < t.min_incidents:
            continue
        open_rows = [
            r
            for r in rows
            if r.get("open") or (not r.get("resolved") and not r.get("deleted") and not r.get("endTime"))
        ]
        evidence = {
            "incidents": len(rows),
            "open": len(open_rows),
            "instances": len({r.get("processInstanceId") for r in rows}),
            "by_type": dict(sorted(_count(r.get("incidentType") for r in rows).items())),
            "window": _window(r.get("createTime") for r in rows),
            "examples": [
                {
                    "incident_id": r.get("id"),
                    "process_instance_id": r.get("processInstanceId"),
                    "type": r.get("incidentType"),
                    "message": (r.get("incidentMessage") or "")[:200],
                    "created": r.get("createTime"),
                }
                for r in rows[:MAX_EXAMPLES]
            ],
        }
        f = Finding("incidents", hist.key, act, "add_error_boundary", evidence)
        if act not in nodes:
            f.actionable, f.note = False, "the activity is not in the latest definition"
        elif "error" in _boundary_kinds(nodes, act):
            f.actionable, f.note = False, "the activity already has an error boundary event"
        elif nodes[act].type not in TIMEABLE:
            f.actionable, f.note = False, f"a {nodes[act].type} cannot carry a boundary event"
        out.append(f)
    return out


def _failures(hist: History, nodes: dict[str, m.FlowNode], t: Thresholds) -> list[Finding]:
    by_act: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in hist.task_log:
        by_act[row.get("activityId") or "?"].append(row)
    out = []
    for act, rows in sorted(by_act.items()):
        failures = [r for r in rows if r.get("failureLog")]
        if len(failures) < t.min_failures:
            continue
        tasks = {r.get("externalTaskId") for r in rows}
        failed = {r.get("externalTaskId") for r in failures}
        succeeded = {r.get("externalTaskId") for r in rows if r.get("successLog")}
        # the log's ``retries`` is the value *before* a failure, so exhaustion is read from the
        # incidents: a failedExternalTask incident names the task in ``configuration``
        raised = {
            i.get("configuration") for i in hist.incidents if i.get("incidentType") == "failedExternalTask"
        }
        raised_at = {(i.get("processInstanceId"), i.get("activityId")) for i in hist.incidents}
        exhausted = {
            r.get("externalTaskId")
            for r in failures
            if r.get("externalTaskId") in raised or (r.get("processInstanceId"), act) in raised_at
        }
        evidence = {
            "failures": len(failures),
            "tasks": len(tasks),
            "failed_tasks": len(failed),
            "recovered_tasks": len(failed & succeeded),
            "exhausted_tasks": len(exhausted),
            "failure_rate": round(len(failed) / max(len(tasks), 1), 3),
            "window": _window(r.get("timestamp") for r in failures),
            "top_errors": [
                {"message": msg, "count": n}
                for msg, n in sorted(
                    _count((r.get("errorMessage") or "")[:120] for r in failures).items(),
                    key=lambda kv: -kv[1],
                )[:3]
            ],
            "examples": [
                {
                    "log_id": r.get("id"),
                    "external_task_id": r.get("externalTaskId"),
                    "process_instance_id": r.get("processInstanceId"),
                    "retries": r.get("retries"),
                    "error": (r.get("errorMessage") or "")[:200],
                    "at": r.get("timestamp"),
                }
                for r in failures[:MAX_EXAMPLES]
            ],
        }
        f = Finding("task_failures", hist.key, act, "add_retry", evidence)
        node = nodes.get(act)
        retries = _retries_of(node) if node else None
        evidence["configured_retries"] = retries
        if node is None:
            f.actionable, f.note = False, "the activity is not in the latest definition"
        elif retries is not None and retries >= 3 and _retry_cycle(node):
            f.actionable, f.note = False, f"already retries {retries} times with {_retry_cycle(node)}"
        out.append(f)
    return out


def _durations(hist: History, nodes: dict[str, m.FlowNode], t: Thresholds) -> list[Finding]:
    by_act: dict[str, list[int]] = defaultdict(list)
    ids: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for a in hist.activities:
        ms, kind = a.get("durationInMillis"), a.get("activityType") or ""
        if ms is None or kind in SKIP_DURATION or kind.endswith(("Gateway", "EndEvent", "StartEvent")):
            continue
        by_act[a["activityId"]].append(int(ms))
        ids[a["activityId"]].append((int(ms), a.get("id", ""), a.get("processInstanceId", "")))
    all_ms = [ms for v in by_act.values() for ms in v]
    if not all_ms:
        return []
    process_median = statistics.median(all_ms)
    out = []
    for act, values in sorted(by_act.items()):
        if len(values) < t.min_duration_samples:
            continue
        p95 = percentile(values, 95)
        by_abs = p95 >= t.p95_abs_ms
        by_ratio = p95 >= t.p95_ratio_floor_ms and p95 >= t.p95_ratio * max(process_median, 1)
        if not (by_abs or by_ratio):
            continue
        slowest = sorted(ids[act], reverse=True)[:MAX_EXAMPLES]
        evidence = {
            "samples": len(values),
            "p50_ms": percentile(values, 50),
            "p95_ms": p95,
            "max_ms": max(values),
            "process_median_ms": process_median,
            "rule": (
                f"p95 >= {t.p95_abs_ms} ms"
                if by_abs
                else f"p95 >= {t.p95_ratio}x the process's median activity duration (and >= {t.p95_ratio_floor_ms} ms)"
            ),
            "durations_ms": sorted(values)[-1000:],  # the slowest 1000 suffice for a cap estimate
            "examples": [
                {"activity_instance_id": i, "process_instance_id": p, "duration_ms": ms}
                for ms, i, p in slowest
            ],
        }
        f = Finding("long_duration", hist.key, act, "add_timeout", evidence)
        node = nodes.get(act)
        if node is None:
            f.actionable, f.note = False, "the activity is not in the latest definition"
        elif node.type not in TIMEABLE:
            f.actionable, f.note = False, f"a {node.type} cannot carry a boundary timer; review it by hand"
        elif "timer" in _boundary_kinds(nodes, act):
            f.actionable, f.note = False, "the activity already has a timer boundary event"
        out.append(f)
    return out


def _unused(hist: History, nodes: dict[str, m.FlowNode], t: Thresholds) -> list[Finding]:
    completed = {p.get("id") for p in hist.latest_completed}
    if len(completed) < t.min_completed_for_paths or not hist.xml:
        return []
    defs = parse(hist.xml.encode(), name=f"{hist.key}.bpmn")
    seen_by_instance: dict[str, set[str]] = defaultdict(set)
    for a in hist.latest_activities:
        if a.get("processInstanceId") in completed:
            seen_by_instance[a["processInstanceId"]].add(a.get("activityId", ""))
    seen = set().union(*seen_by_instance.values()) if seen_by_instance else set()
    main = _main_path_nodes(defs)
    out = []
    for nid in sorted(main - seen):
        out.append(
            Finding(
                "unused_path",
                hist.key,
                nid,
                "review_unused_path",
                {"completed_instances": len(completed), "element": "node", "times_seen": 0},
                actionable=False,
                note="never reached; removing a path is a policy decision for a human",
            )
        )
    for flow in sorted(defs.flows.values(), key=lambda f: f.id):
        src = defs.nodes.get(flow.source)
        if (
            src is None
            or not src.type.endswith("Gateway")
            or flow.source not in seen
            or flow.target not in seen
        ):
            continue  # only gateway branches; a target never seen is already reported as a node
        if any({flow.source, flow.target} <= s for s in seen_by_instance.values()):
            continue  # taken (approximately: both ends ran in one instance)
        out.append(
            Finding(
                "unused_path",
                hist.key,
                flow.source,
                "review_unused_path",
                {
                    "completed_instances": len(completed),
                    "element": "flow",
                    "flow_id": flow.id,
                    "target": flow.target,
                    "condition": flow.condition,
                    "times_seen": 0,
                },
                actionable=False,
                note=f"flow {flow.id} was never taken",
            )
        )
    return out


def _main_path_nodes(defs: m.Definitions) -> set[str]:
    """Nodes reachable from the start events without passing a boundary event (exception paths
    and event sub-processes are expected to be rare, so they are not 'unused')."""
    succ: dict[str, list[str]] = defaultdict(list)
    for f in defs.flows.values():
        succ[f.source].append(f.target)
    starts = [
        n.id for n in defs.nodes.values() if n.type == "startEvent" and defs.nodes.get(n.parent or "") is None
    ]
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        nid = todo.pop()
        if nid in seen or defs.nodes.get(nid) is None or defs.nodes[nid].type == "boundaryEvent":
            continue
        seen.add(nid)
        todo += succ.get(nid, [])
        todo += [c.id for c in defs.nodes.values() if c.parent == nid and c.type == "startEvent"]
    return seen


# ---- helpers ---------------------------------------------------------------------------------
def percentile(values: list[int], pct: float) -> int:
    """Nearest-rank percentile: an observed value, so the evidence points at real instances."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[str(i)] += 1
    return dict(out)


def _window(times: Any) -> dict[str, str | None]:
    ts = sorted(t for t in times if t)
    return {"first": ts[0] if ts else None, "last": ts[-1] if ts else None}


def _retries_of(node: m.FlowNode) -> int | None:
    raw = node.input_parameters.get("retries") or node.properties.get("retries")
    try:
        return int(str(raw).strip()) if raw is not None else None
    except ValueError:
        return None


def _retry_cycle(node: m.FlowNode) -> str | None:
    def walk(exts: list[m.ExtensionElement]) -> str | None:
        for e in exts:
            if e.tag == "camunda:failedJobRetryTimeCycle":
                return (e.text or "").strip() or None
            found = walk(e.children)
            if found:
                return found
        return None

    return walk(node.extensions)
