"""Render the compiler's graph and layout to BPMN XML with diagram interchange.

Split from ``compile.py`` to keep modules small: this part knows XML element order
(the BPMN XSD is strict about it), lanes and the BPMNDiagram; ``compile.py`` knows the
authoring form. Every flow node gets a BPMNShape and every flow an BPMNEdge, or the
result carries a finding.
"""

from __future__ import annotations

from lxml import etree

from das.bpmn import layout as L
from das.bpmn.compile_graph import KIND, CompileResult, Graph, q
from das.bpmn.compile_graph import slug as _slug
from das.bpmn.ns import COMPILE_TARGET_NS, WRITE_NSMAP

ORIGIN_X, ORIGIN_Y = 160.0, 80.0
LANE_PAD = 30.0
POOL_LABEL = 30.0


def render(c: Graph, frag: L.Frag) -> CompileResult:
    pos = {k: L.Box(b.x + ORIGIN_X, b.y + ORIGIN_Y, b.w, b.h) for k, b in frag.pos.items()}
    via = {k: v + ORIGIN_Y for k, v in frag.via.items()}
    lanes = _lane_order(c)
    lane_boxes: dict[str, L.Box] = {}
    pool: L.Box | None = None
    if lanes:
        pool, lane_boxes = _apply_lanes(c, lanes, pos, via)

    root = etree.Element(q("bpmn:definitions"), nsmap=dict(WRITE_NSMAP))
    root.set("id", f"Definitions_{c.pid}")
    root.set("targetNamespace", COMPILE_TARGET_NS)
    root.set("exporter", "das")
    root.set("exporterVersion", "0.1")
    for code, eid in c.errors.items():
        etree.SubElement(root, q("bpmn:error"), id=eid, name=code, errorCode=code)
    for name, mid in c.messages.items():
        etree.SubElement(root, q("bpmn:message"), id=mid, name=name)
    plane_ref = c.pid
    if lanes:
        collab = etree.SubElement(root, q("bpmn:collaboration"), id=f"Collaboration_{c.pid}")
        etree.SubElement(
            collab, q("bpmn:participant"), id=f"Participant_{c.pid}", name=c.proc.name, processRef=c.pid
        )
        plane_ref = collab.get("id")
    proc = etree.SubElement(root, q("bpmn:process"), id=c.pid, name=c.proc.name, isExecutable="true")
    proc.set(q("camunda:historyTimeToLive"), str(c.proc.history_time_to_live))
    if c.proc.version_tag:
        proc.set(q("camunda:versionTag"), c.proc.version_tag)
    if lanes:
        lane_set = etree.SubElement(proc, q("bpmn:laneSet"), id=f"LaneSet_{c.pid}")
        for name, lid in lanes.items():
            lane = etree.SubElement(lane_set, q("bpmn:lane"), id=lid, name=name)
            for n in c.nodes.values():
                if n.container is None and n.lane == name:
                    etree.SubElement(lane, q("bpmn:flowNodeRef")).text = n.id
    _fill(c, proc, None)

    diagram = etree.SubElement(root, q("bpmndi:BPMNDiagram"), id=f"BPMNDiagram_{c.pid}")
    plane = etree.SubElement(diagram, q("bpmndi:BPMNPlane"), id=f"BPMNPlane_{c.pid}", bpmnElement=plane_ref)
    if pool is not None:
        _shape(plane, f"Participant_{c.pid}", pool, horizontal=True)
        for name, lid in lanes.items():
            _shape(plane, lid, lane_boxes[name], horizontal=True)
    findings: list[str] = []
    for n in c.nodes.values():
        if n.id not in pos:
            findings.append(f"element {n.id} ({n.tag}) has no shape")
            continue
        _shape(plane, n.id, pos[n.id], expanded=n.tag == "subProcess")
    kinds = {n.id: _kind(n.tag) for n in c.nodes.values()}
    edges: dict[str, tuple[str, str, list[tuple[float, float]]]] = {}
    for f in c.flows.values():
        if f.source not in pos or f.target not in pos:
            findings.append(f"flow {f.id} has no edge (missing shape)")
            continue
        pts = L.route(
            pos[f.source],
            pos[f.target],
            kinds[f.source],
            kinds[f.target],
            via.get(f.id),
            boundary=c.nodes[f.source].tag == "boundaryEvent",
        )
        edges[f.id] = (f.source, f.target, pts)
        edge = etree.SubElement(plane, q("bpmndi:BPMNEdge"), id=f"{f.id}_di", bpmnElement=f.id)
        for x, y in pts:
            etree.SubElement(edge, q("di:waypoint"), x=_n(x), y=_n(y))
    containers = {n.id: n.container for n in c.nodes.values()}
    attached = {n.id: n.attached_to for n in c.nodes.values() if n.attached_to}
    findings += L.check_layout(pos, containers, attached, edges)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()
    return CompileResult(xml, findings)


def _kind(tag: str) -> str:

    return KIND.get(tag, "task")


def _n(v: float) -> str:
    return str(int(round(v)))


def _shape(
    plane: etree._Element, eid: str, b: L.Box, expanded: bool = False, horizontal: bool = False
) -> None:

    s = etree.SubElement(plane, q("bpmndi:BPMNShape"), id=f"{eid}_di", bpmnElement=eid)
    if expanded:
        s.set("isExpanded", "true")
    if horizontal:
        s.set("isHorizontal", "true")
    etree.SubElement(s, q("dc:Bounds"), x=_n(b.x), y=_n(b.y), width=_n(b.w), height=_n(b.h))


def _fill(c: Graph, parent: etree._Element, container: str | None) -> None:
    """Write flow nodes, sequence flows and associations of one container, in XSD order."""

    incoming: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for f in c.flows.values():
        if not f.association:
            outgoing.setdefault(f.source, []).append(f.id)
            incoming.setdefault(f.target, []).append(f.id)
    for n in c.nodes.values():
        if n.container != container:
            continue
        el = etree.SubElement(parent, q(f"bpmn:{n.tag}"), id=n.id)
        if n.name:
            el.set("name", n.name)
        if n.attached_to:
            el.set("attachedToRef", n.attached_to)
            if n.children and n.children[0].tag != q("bpmn:compensateEventDefinition"):
                el.set("cancelActivity", "true")
        for k, v in n.attrs.items():
            el.set(q(k) if ":" in k else k, v)
        ext = [e for e in n.extras if e[0] in ("io", "in", "out", "retry")]
        if ext:
            ee = etree.SubElement(el, q("bpmn:extensionElements"))
            for e in ext:
                if e[0] == "io":
                    io = etree.SubElement(ee, q("camunda:inputOutput"))
                    for k, v in e[1]:
                        etree.SubElement(io, q("camunda:inputParameter"), name=k).text = v
                elif e[0] == "retry":
                    etree.SubElement(ee, q("camunda:failedJobRetryTimeCycle")).text = e[1]
                else:
                    etree.SubElement(ee, q(f"camunda:{e[0]}"), source=e[1], target=e[2])
        for fid in incoming.get(n.id, []):
            etree.SubElement(el, q("bpmn:incoming")).text = fid
        for fid in outgoing.get(n.id, []):
            etree.SubElement(el, q("bpmn:outgoing")).text = fid
        for child in n.children:
            el.append(child)
        if n.tag == "subProcess":
            _fill(c, el, n.id)
    for f in c.flows.values():
        if f.container != container or f.association:
            continue
        el = etree.SubElement(parent, q("bpmn:sequenceFlow"), id=f.id, sourceRef=f.source, targetRef=f.target)
        if f.name:
            el.set("name", f.name)
        if f.listeners:
            ee = etree.SubElement(el, q("bpmn:extensionElements"))
            for expr in f.listeners:
                etree.SubElement(ee, q("camunda:executionListener"), expression=expr, event="take")
        if f.condition:
            ce = etree.SubElement(el, q("bpmn:conditionExpression"))
            ce.set(q("xsi:type"), "bpmn:tFormalExpression")
            ce.text = f.condition
    for f in c.flows.values():
        if f.container == container and f.association:
            etree.SubElement(
                parent,
                q("bpmn:association"),
                id=f.id,
                associationDirection="One",
                sourceRef=f.source,
                targetRef=f.target,
            )


def _lane_order(c: Graph) -> dict[str, str]:
    names: list[str] = []
    for n in c.nodes.values():
        if n.container is None and n.lane and n.lane not in names:
            names.append(n.lane)
    if not names:
        return {}
    first = names[0]
    for n in c.nodes.values():  # nodes before the first named lane join it
        if n.container is None and not n.lane:
            n.lane = first

    return {name: c.uid(f"Lane_{_slug(name)}") for name in names}


def _apply_lanes(
    c: Graph, lanes: dict[str, str], pos: dict[str, L.Box], via: dict[str, float]
) -> tuple[L.Box, dict[str, L.Box]]:
    """Move each lane's nodes (with sub-process contents) into its own horizontal band."""
    top_of: dict[str, str] = {}
    for n in c.nodes.values():
        top = n
        while top.container is not None:
            top = c.nodes[top.container]
        top_of[n.id] = top.lane or next(iter(lanes))
    bands: dict[str, L.Box] = {}
    y = ORIGIN_Y
    min_x = min(b.x for b in pos.values())
    max_x = max(b.right for b in pos.values())
    shift: dict[str, float] = {}
    for name in lanes:
        ids = [i for i, ln in top_of.items() if ln == name and i in pos]
        lo = min(pos[i].y for i in ids)
        hi = max(pos[i].bottom for i in ids)
        shift[name] = y + LANE_PAD - lo
        h = hi - lo + 2 * LANE_PAD
        bands[name] = L.Box(min_x - LANE_PAD, y, 0, h)
        y += h
    for i, b in list(pos.items()):
        pos[i] = L.Box(b.x, b.y + shift[top_of[i]], b.w, b.h)
    for fid in list(via):
        via[fid] += shift[top_of[c.flows[fid].source]]
    x0 = min_x - LANE_PAD - POOL_LABEL
    width = max_x - x0 + LANE_PAD
    pool = L.Box(x0, ORIGIN_Y, width, y - ORIGIN_Y)
    lane_boxes = {k: L.Box(x0 + POOL_LABEL, b.y, width - POOL_LABEL, b.h) for k, b in bands.items()}
    return pool, lane_boxes
