"""Validation rules over the graph model: reference integrity, structure, diagram coverage.

Why beyond XSD: the schema cannot see a ``sourceRef`` pointing nowhere, a node no token can
reach, or an exclusive split whose flows have no conditions; engines find those at run time.

Severity policy (see also ``das/bpmn/validate.py``): broken semantic references are errors;
a diagram shape pointing nowhere is a warning (engines ignore DI). Structure rules are errors
where we judge as an engine would (ProcOS processes, and executable processes of Camunda 7
files, see :func:`strict`) and warnings elsewhere: descriptive models such as the MIWG
reference files may leave gateways unconditioned or ends implicit, and other engines'
executable files (Zeebe, jBPM) follow their own rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from das.bpmn import model as m
from das.contracts import Severity as Severity
from das.contracts import ValidationFinding, ValidationReport

# one shape for validation results everywhere (proposals, `das bpmn validate --format json`)
Finding = ValidationFinding
Report = ValidationReport


def is_procos(proc: m.Process, defs: m.Definitions) -> bool:
    """A ProcOS process: id starts with peo/pdo/tde, a ``procos.kind`` property, or a ``das-`` topic."""
    if procos_kind(proc):
        return True
    return any(
        (defs.nodes[n].camunda("topic") or "").startswith("das-") for n in proc.node_ids if n in defs.nodes
    )


def procos_kind(proc: m.Process) -> str | None:
    """``peo`` / ``pdo`` / ``tde`` from the ``procos.kind`` property or the id prefix, else None."""
    marked = proc.properties.get("procos.kind") or proc.attrs.get("das:kind")
    if marked:
        return marked.strip().lower()
    low = proc.id.lower()
    for kind in ("peo", "pdo", "tde"):
        if low.startswith(kind):
            return kind
    return None


def strict(proc: m.Process | None, defs: m.Definitions) -> bool:
    """Judge as an engine would: ProcOS processes, and executable processes of Camunda 7 files."""
    if proc is None:
        return False
    return is_procos(proc, defs) or (proc.is_executable and defs.dialect == "camunda7")


def structure_severity(proc: m.Process | None, defs: m.Definitions) -> Severity:
    return "error" if strict(proc, defs) else "warning"


# ---- reference integrity ----------------------------------------------------------------
_ROOT_FOR_KIND = {"error": "error", "message": "message", "signal": "signal", "escalation": "escalation"}


def check_references(defs: m.Definitions, report: Report) -> None:
    for dup in defs.duplicate_ids:
        report.add(
            "ref.duplicate-id",
            "error",
            dup,
            f"id {dup!r} is used more than once; give each element a unique id",
        )
    nodes = defs.nodes
    for f in defs.flows.values():
        for end, ref in (("sourceRef", f.source), ("targetRef", f.target)):
            if not ref:
                report.add(
                    "ref.flow", "error", f.id, f"sequence flow {f.id} has no {end}; set it to a flow node id"
                )
            elif ref not in nodes:
                report.add(
                    "ref.flow",
                    "error",
                    f.id,
                    f"sequence flow {f.id} {end}={ref!r} names no flow node; point it at an existing node or remove the flow",
                )
            elif nodes[ref].parent != f.parent:
                report.add(
                    "ref.flow-scope",
                    "error",
                    f.id,
                    f"sequence flow {f.id} crosses a sub-process boundary ({ref} is in {nodes[ref].parent}, the flow in "
                    f"{f.parent}); connect nodes of the same (sub-)process only",
                )
    for n in nodes.values():
        if n.type == "boundaryEvent":
            if not n.attached_to:
                report.add(
                    "ref.attached-to",
                    "error",
                    n.id,
                    f"boundary event {n.id} has no attachedToRef; attach it to an activity",
                )
            elif n.attached_to not in nodes or not nodes[n.attached_to].is_activity:
                report.add(
                    "ref.attached-to",
                    "error",
                    n.id,
                    f"boundary event {n.id} attachedToRef={n.attached_to!r} is not an activity; attach it to a task or sub-process",
                )
            elif nodes[n.attached_to].parent != n.parent:
                report.add(
                    "ref.attached-to",
                    "error",
                    n.id,
                    f"boundary event {n.id} is in {n.parent} but its activity {n.attached_to} is in {nodes[n.attached_to].parent}; "
                    "move it next to its activity",
                )
        for ed in n.event_definitions:
            want = _ROOT_FOR_KIND.get(ed.kind)
            if ed.kind == "ref":
                if ed.ref not in defs.roots:
                    report.add(
                        "ref.event-definition",
                        "error",
                        n.id,
                        f"{n.id} eventDefinitionRef {ed.ref!r} names no event definition; define it or remove the reference",
                    )
            elif want and ed.ref and (ed.ref not in defs.roots or defs.roots[ed.ref].type != want):
                report.add(
                    "ref.event-definition",
                    "error",
                    n.id,
                    f'{n.id} {ed.kind}Ref={ed.ref!r} names no <{want}>; add <{want} id="{ed.ref}"> to the definitions '
                    "or point at an existing one",
                )
            elif ed.kind == "compensate" and ed.ref and ed.ref not in nodes:
                report.add(
                    "ref.event-definition", "error", n.id, f"{n.id} activityRef={ed.ref!r} names no activity"
                )
        if n.message_ref and (n.message_ref not in defs.roots or defs.roots[n.message_ref].type != "message"):
            report.add(
                "ref.message",
                "error",
                n.id,
                f"{n.id} messageRef={n.message_ref!r} names no <message>; add it to the definitions",
            )
        if n.default:
            if n.default not in defs.flows:
                report.add(
                    "ref.default",
                    "error",
                    n.id,
                    f"{n.id} default={n.default!r} names no sequence flow; "
                    "set default to one of its outgoing flows or remove it",
                )
            elif defs.flows[n.default].source != n.id:
                report.add(
                    "ref.default",
                    "error",
                    n.id,
                    f"{n.id} default={n.default!r} is not one of its outgoing flows; "
                    "set default to an outgoing flow",
                )
        if n.type == "callActivity" and not n.called_element:
            p = defs.processes.get(n.process)
            report.add(
                "ref.called-element",
                structure_severity(p, defs),
                n.id,
                f"call activity {n.id} has no calledElement; set it to the key (id) of the process to call",
            )
        for fid in n.incoming + n.outgoing:
            if fid and fid not in defs.flows:
                report.add(
                    "ref.incoming-outgoing",
                    "warning",
                    n.id,
                    f"{n.id} lists <incoming>/<outgoing> {fid!r}, which is no sequence flow; remove the stale entry",
                )
    for lane in defs.lanes.values():
        for ref in lane.flow_node_refs:
            if ref not in nodes:
                report.add(
                    "ref.lane",
                    "error",
                    lane.id,
                    f"lane {lane.id} flowNodeRef {ref!r} names no flow node; remove it",
                )
    ids = defs.all_ids()
    for c in defs.collaborations.values():
        for part in c.participants:
            if part.process_ref and part.process_ref not in defs.processes:
                report.add(
                    "ref.participant",
                    "error",
                    part.id,
                    f"participant {part.id} processRef={part.process_ref!r} names no process; fix or remove the reference",
                )
        for mf in c.message_flows:
            for end, ref in (("sourceRef", mf.source), ("targetRef", mf.target)):
                if ref not in ids:
                    report.add(
                        "ref.message-flow",
                        "error",
                        mf.id,
                        f"message flow {mf.id} {end}={ref!r} names no element; point it at a participant or flow node",
                    )
    for ref, shape in list(defs.di_shapes.items()) + list(defs.di_edges.items()):
        if ref not in ids and ref not in defs.element_ids:
            # a warning: engines ignore DI and modelers skip the stray shape
            report.add(
                "ref.di",
                "warning",
                shape or ref,
                f"diagram element {shape} shows bpmnElement={ref!r}, which does not exist; delete the shape/edge",
            )


def check_diagram(defs: m.Definitions, report: Report) -> None:
    if not defs.has_diagram:
        if defs.nodes:
            report.add(
                "di.none",
                "info",
                None,
                "the file has no diagram (BPMN DI); run `das bpmn compile` or lay it out in a modeler",
            )
        return
    missing_nodes = [n for n in defs.nodes if n not in defs.di_shapes]
    missing_flows = [f for f in defs.flows if f not in defs.di_edges]
    for nid in missing_nodes:
        report.add(
            "di.missing-shape",
            "warning",
            nid,
            f"{nid} has no BPMNShape, so modelers will not show it; add a shape",
        )
    for fid in missing_flows:
        report.add(
            "di.missing-edge",
            "warning",
            fid,
            f"sequence flow {fid} has no BPMNEdge, so modelers will not show it; add an edge",
        )


# ---- structure --------------------------------------------------------------------------
def _graph(defs: m.Definitions, scope: str, members: set[str]) -> dict[str, set[str]]:
    succ: dict[str, set[str]] = {n: set() for n in members}
    for f in defs.flows_in(scope):
        if f.source in succ and f.target in succ:
            succ[f.source].add(f.target)
    links: dict[str, list[str]] = {}
    for nid in members:
        n = defs.nodes[nid]
        if n.type == "boundaryEvent" and n.attached_to in succ:
            succ[n.attached_to].add(nid)
        for ed in n.event_definitions:
            if ed.kind == "link" and n.type == "intermediateCatchEvent":
                links.setdefault(ed.link_name or n.name or "", []).append(nid)
    for nid in members:
        n = defs.nodes[nid]
        if n.type == "intermediateThrowEvent":
            for ed in n.event_definitions:
                if ed.kind == "link":
                    succ[nid].update(links.get(ed.link_name or n.name or "", []))
    return succ


def _reach(starts: Iterable[str], succ: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        stack.extend(succ.get(x, ()))
    return seen


def _is_link(n: m.FlowNode) -> bool:
    return "link" in n.event_kinds()


def compensation_handlers(defs: m.Definitions) -> dict[str, str]:
    """Activities that an association links to a compensation boundary event and that no
    sequence flow enters: handler id -> boundary id. BPMN wants ``isForCompensation="true"``
    on them, but some tools leave it out; either way they sit outside the normal flow."""
    boundaries = {
        n.id for n in defs.nodes.values() if n.type == "boundaryEvent" and "compensate" in n.event_kinds()
    }
    entered = {f.target for f in defs.flows.values()}
    out: dict[str, str] = {}
    for o in defs.others.values():
        if o.type != "association":
            continue
        src, dst = o.attrs.get("sourceRef", ""), o.attrs.get("targetRef", "")
        if dst in boundaries:  # some tools draw the association the other way round
            src, dst = dst, src
        if src in boundaries and dst in defs.nodes and dst not in entered:
            out[dst] = src
    return out


def check_structure(defs: m.Definitions, report: Report) -> None:
    handlers = compensation_handlers(defs)
    for scope in defs.scopes():
        kids = [n for n in defs.children(scope) if not n.is_for_compensation and n.id not in handlers]
        for n in defs.children(scope):
            if n.id in handlers and not n.is_for_compensation:
                report.add(
                    "structure.compensation-handler",
                    "warning",
                    n.id,
                    f"{n.type} {n.id}{_nm(n)} is the compensation handler of boundary event {handlers[n.id]} "
                    'but lacks isForCompensation="true"; set that attribute on it',
                )
        if not kids:
            continue
        first = kids[0]
        proc = defs.processes.get(first.process)
        sev = structure_severity(proc, defs)
        members = {n.id for n in kids}
        succ = _graph(defs, scope, members)
        has_in = {f.target for f in defs.flows_in(scope)}
        has_out = {f.source for f in defs.flows_in(scope)}
        linked = {t for s in succ for t in succ[s]}
        event_subs = {n.id for n in kids if n.triggered_by_event}
        starts = [n.id for n in kids if n.type == "startEvent"]
        if not starts:  # BPMN: without a start event, nodes without incoming flow start
            starts = [
                n.id
                for n in kids
                if n.id not in has_in
                and n.type != "boundaryEvent"
                and n.id not in event_subs
                and n.id not in linked
            ]
        reached = _reach(starts + sorted(event_subs), succ)
        for n in kids:
            if n.id not in reached:
                report.add(
                    "structure.unreachable",
                    sev,
                    n.id,
                    f"{n.type} {n.id}{_nm(n)} cannot be reached from any start event; connect it with an "
                    "incoming sequence flow or remove it",
                )
        ends = {
            n.id
            for n in kids
            if n.type == "endEvent"
            or (n.type == "boundaryEvent" and "compensate" in n.event_kinds() and n.id not in has_out)
        }
        for n in kids:
            implicit = (
                n.id not in has_out
                and n.type != "endEvent"
                and n.id not in event_subs
                and not (_is_link(n) and n.type == "intermediateThrowEvent")
                # a compensation boundary leads to its handler by association, not by flow
                and not (n.type == "boundaryEvent" and "compensate" in n.event_kinds())
            )
            if implicit:
                ends.add(n.id)
                report.add(
                    "structure.implicit-end",
                    "warning" if strict(proc, defs) else "info",
                    n.id,
                    f"{n.type} {n.id}{_nm(n)} has no outgoing flow (an implicit end); add a flow to an end event",
                )
        pred: dict[str, set[str]] = {x: set() for x in succ}
        for s, ts in succ.items():
            for t in ts:
                pred[t].add(s)
        can_end = _reach(ends | event_subs, pred)
        for n in kids:
            if n.id in reached and n.id not in can_end:
                report.add(
                    "structure.no-end",
                    sev,
                    n.id,
                    f"{n.type} {n.id}{_nm(n)} cannot reach an end event (a loop without exit); add a path to an end",
                )
        for n in kids:
            if n.type == "startEvent" and n.id in has_in:
                report.add(
                    "structure.start-incoming",
                    sev,
                    n.id,
                    f"start event {n.id} has an incoming flow; remove it or use an intermediate event",
                )
            if n.type == "endEvent" and n.id in has_out:
                report.add(
                    "structure.end-outgoing",
                    sev,
                    n.id,
                    f"end event {n.id} has an outgoing flow; remove it or use an intermediate throw event",
                )
            if n.type == "boundaryEvent" and n.id in has_in:
                report.add(
                    "structure.boundary-incoming",
                    sev,
                    n.id,
                    f"boundary event {n.id} has an incoming flow; remove it",
                )
        _check_gateways(defs, kids, sev, report)
        _check_balance(defs, scope, kids, report, sev)


def _nm(n: m.FlowNode) -> str:
    return f" ({n.name!r})" if n.name else ""


def _check_gateways(defs: m.Definitions, kids: list[m.FlowNode], sev: Severity, report: Report) -> None:
    for n in kids:
        outs = defs.outgoing(n.id)
        if n.type in ("exclusiveGateway", "inclusiveGateway") and len(outs) > 1:
            for f in outs:
                if f.id != n.default and not f.condition:
                    report.add(
                        "structure.gateway-condition",
                        sev,
                        f.id,
                        f"flow {f.id} out of {n.type} {n.id}{_nm(n)} has no condition and is not the default; "
                        f'add a conditionExpression (e.g. ${{approved}}) or set default="{f.id}" on the gateway',
                    )
        if n.default and n.default in defs.flows and defs.flows[n.default].condition:
            report.add(
                "structure.default-condition",
                "warning",
                n.default,
                f"default flow {n.default} of {n.id} has a condition, which is ignored; remove the condition",
            )
        if n.type == "parallelGateway":
            for f in outs:
                if f.condition:
                    report.add(
                        "structure.parallel-condition",
                        "warning",
                        f.id,
                        f"flow {f.id} out of parallel gateway {n.id} has a condition, which is ignored; "
                        "use an inclusive gateway or remove the condition",
                    )
        if n.type == "eventBasedGateway":
            for f in outs:
                t = defs.nodes.get(f.target)
                if t and not (t.type == "receiveTask" or t.type == "intermediateCatchEvent"):
                    report.add(
                        "structure.event-gateway-target",
                        sev,
                        f.id,
                        f"event-based gateway {n.id} leads to {t.type} {t.id}; it may only lead to catch events "
                        "or receive tasks",
                    )


def _nearest_split(defs: m.Definitions, flow: m.SequenceFlow, limit: int = 200) -> str | None:
    """Walk back from a flow through one-in nodes to the gateway that split the path, if any."""
    cur = flow.source
    for _ in range(limit):
        n = defs.nodes.get(cur)
        if n is None:
            return None
        outs = defs.outgoing(cur)
        if n.is_gateway and len(outs) > 1:
            return cur
        ins = defs.incoming(cur)
        if len(ins) != 1:
            return None
        cur = ins[0].source
    return None


def _check_balance(
    defs: m.Definitions, scope: str, kids: list[m.FlowNode], report: Report, sev: Severity
) -> None:
    """Heuristic split/join balance: a parallel join fed by alternatives deadlocks; an exclusive
    merge of parallel branches lets tokens through twice."""
    for n in kids:
        ins = defs.incoming(n.id)
        if not n.is_gateway or len(ins) < 2:
            continue
        splits = [_nearest_split(defs, f) for f in ins]
        for split_id in {s for s in splits if s and splits.count(s) > 1}:
            split = defs.nodes[split_id]
            if n.type == "parallelGateway" and split.type in ("exclusiveGateway", "eventBasedGateway"):
                report.add(
                    "structure.parallel-balance",
                    sev,
                    n.id,
                    f"parallel join {n.id} waits for branches that {split.type} {split_id} makes alternatives: "
                    "only one arrives, so the join deadlocks; join them with an exclusive gateway instead",
                )
            elif n.type == "exclusiveGateway" and split.type == "parallelGateway":
                report.add(
                    "structure.parallel-balance",
                    "warning",
                    n.id,
                    f"exclusive gateway {n.id} merges branches that parallel gateway {split_id} runs together: "
                    "the path after it runs once per branch; join them with a parallel gateway instead",
                )
