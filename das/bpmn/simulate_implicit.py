"""Make BPMN's implicit semantics explicit, so SpiffWorkflow can run models written that way.

Why: modelling tools (and the MIWG reference models) rely on rules SpiffWorkflow's parser
refuses: a task with several outgoing flows splits (in parallel, or inclusively when some
carry conditions), a sub-process with no start event starts every element that has no
incoming flow, and one with several none start events starts all of them. The simulation
copy is rewritten with explicit gateways and one start event; every rewrite is named in the
report (``unsupported``), and the added elements (ids ``das_implicit_*``) are not coverage
targets.
"""

from __future__ import annotations

from typing import Protocol

from lxml import etree

from das.bpmn.ns import BPMN_NS, local

GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
SUBPROCESSES = {"subProcess", "transaction", "adHocSubProcess"}
NODES = (
    GATEWAYS
    | SUBPROCESSES
    | {
        "task",
        "serviceTask",
        "sendTask",
        "scriptTask",
        "businessRuleTask",
        "userTask",
        "receiveTask",
        "manualTask",
        "callActivity",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
    }
)
PREFIX = "das_implicit_"


class Notes(Protocol):
    synthetic: set[str]

    def note(self, construct: str, element: str | None) -> None: ...


def _m(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


def _bpmn_local(el: etree._Element) -> str:
    """Local name of a BPMN element; "" for anything else (extensions, comments)."""
    return local(el) if isinstance(el.tag, str) and el.tag.startswith("{" + BPMN_NS + "}") else ""


def make_explicit(notes: Notes, main: etree._Element) -> None:
    """Rewrite ``main`` (the simulation copy) in place; see the module docstring."""
    scopes = [main] + [el for el in main.iter() if _bpmn_local(el) in SUBPROCESSES]
    for scope in scopes:
        if scope.get("triggeredByEvent") != "true":
            _one_start(notes, scope)
    for scope in scopes:
        _explicit_splits(notes, scope)
        if scope.get("triggeredByEvent") != "true":
            _an_end(notes, scope)


def _an_end(notes: Notes, scope: etree._Element) -> None:
    """A scope without an end event ends where its flows end: each sink gets one."""
    nodes = _children(scope)
    if any(_bpmn_local(n) == "endEvent" for n in nodes):
        return
    sources = {f.get("sourceRef") for f in _flows(scope)}
    sinks = [
        n.get("id", "")
        for n in nodes
        if n.get("id") not in sources
        and n.get("triggeredByEvent") != "true"
        and n.get("isForCompensation") != "true"
    ]
    if not sinks:
        return
    notes.note("no end event (each element without an outgoing flow ends)", scope.get("id"))
    for sink in sinks:
        _add(notes, scope, "endEvent", f"{PREFIX}end_{sink}")
        _flow(notes, scope, f"{PREFIX}flow_end_{sink}", sink, f"{PREFIX}end_{sink}")


def _children(scope: etree._Element) -> list[etree._Element]:
    return [c for c in scope if _bpmn_local(c) in NODES]


def _flows(scope: etree._Element) -> list[etree._Element]:
    return [c for c in scope if _bpmn_local(c) == "sequenceFlow"]


def _add(
    notes: Notes, scope: etree._Element, tag: str, ident: str, at: int | None = None, **attrs: str
) -> etree._Element:
    el = etree.Element(_m(tag), id=ident, **attrs)
    if at is None:
        scope.append(el)
    else:
        scope.insert(at, el)
    notes.synthetic.add(ident)
    return el


def _flow(notes: Notes, scope: etree._Element, ident: str, source: str, target: str) -> etree._Element:
    return _add(notes, scope, "sequenceFlow", ident, sourceRef=source, targetRef=target)


def _first_position(scope: etree._Element) -> int:
    """After documentation / extensionElements, where flow elements may start."""
    for i, c in enumerate(scope):
        if _bpmn_local(c) not in ("documentation", "extensionElements", "ioSpecification", "laneSet"):
            return i
    return len(scope)


def _one_start(notes: Notes, scope: etree._Element) -> None:
    sid = scope.get("id", "scope")
    nodes = _children(scope)
    starts = [n for n in nodes if _bpmn_local(n) == "startEvent"]
    if len(starts) == 1:
        return
    if len(starts) > 1 and _bpmn_local(scope) not in SUBPROCESSES:
        return  # a process may have several (message, timer ...) start events; SpiffWorkflow picks
    if starts:
        # several start events in a sub-process all fire: each becomes a pass-through node
        for s in starts:
            for d in list(s):
                if _bpmn_local(d).endswith("EventDefinition"):
                    s.remove(d)
            s.tag = _m("intermediateThrowEvent")
        targets = [s.get("id", "") for s in starts]
        construct = f"sub-process with {len(starts)} start events (all start together)"
    else:
        targeted = {f.get("targetRef") for f in _flows(scope)}
        targets = [
            n.get("id", "")
            for n in nodes
            if _bpmn_local(n) != "boundaryEvent"
            and n.get("id") not in targeted
            and n.get("triggeredByEvent") != "true"
            and n.get("isForCompensation") != "true"
        ]
        construct = "no start event (every element without an incoming flow starts)"
    start_id = f"{PREFIX}start_{sid}"
    at = _first_position(scope)
    _add(notes, scope, "startEvent", start_id, at=at)
    notes.note(construct, sid)
    if not targets:
        return  # an empty scope: the start event is also its sink (see _an_end)
    if len(targets) == 1:
        _flow(notes, scope, f"{PREFIX}flow_{sid}", start_id, targets[0])
        return
    fork = f"{PREFIX}fork_{sid}"
    _add(notes, scope, "parallelGateway", fork, at=at + 1)
    _flow(notes, scope, f"{PREFIX}flow_{sid}", start_id, fork)
    for t in targets:
        _flow(notes, scope, f"{PREFIX}flow_{sid}_{t}", fork, t)


def _condition_text(flow: etree._Element) -> str:
    ce = flow.find(_m("conditionExpression"))
    return "" if ce is None else "".join(ce.itertext()).strip()


def _explicit_splits(notes: Notes, scope: etree._Element) -> None:
    flows = _flows(scope)
    for node in _children(scope):
        nid = node.get("id")
        if not nid or _bpmn_local(node) in GATEWAYS:
            continue
        outs = [f for f in flows if f.get("sourceRef") == nid]
        if len(outs) < 2:
            continue
        default = node.attrib.pop("default", None)
        conditional = default is not None or any(_condition_text(f) for f in outs)
        kind = "inclusiveGateway" if conditional else "parallelGateway"
        gw = f"{PREFIX}split_{nid}"
        attrs = {"default": default} if default else {}
        _add(notes, scope, kind, gw, **attrs)
        _flow(notes, scope, f"{PREFIX}flow_{nid}", nid, gw)
        for f in outs:
            f.set("sourceRef", gw)
            if conditional and f.get("id") != default and not _condition_text(f):
                ce = f.find(_m("conditionExpression"))
                ce = etree.SubElement(f, _m("conditionExpression")) if ce is None else ce
                ce.text = "${true}"  # an unconditioned flow out of an activity is always taken
        for ref in [c for c in node if _bpmn_local(c) == "outgoing"]:
            node.remove(ref)
        notes.note(
            f"{len(outs)} outgoing flows from one element (implicit "
            f"{'inclusive' if conditional else 'parallel'} split)",
            nid,
        )
