"""BPMN XML from any vendor (any namespace prefix, Camunda dialect or not) into the graph model.

Elements are recognised by namespace URI and local name, never by prefix, so
``<semantic:task>``, ``<bpmn:task>`` and ``<task>`` (default namespace) read the same.
The lxml tree is kept on ``Definitions.tree``; :mod:`das.bpmn.write` serialises it back.
"""

from __future__ import annotations

from lxml import etree

from das.bpmn import model as m
from das.bpmn.ns import (
    ACTIVITI_NS,
    BPMN_NS,
    BPMNDI_NS,
    CAMUNDA_NS,
    DC_NS,
    DI_NS,
    KNOWN_PREFIXES,
    PREFIX_NS,
    ZEEBE_NS,
    local,
)
from das.bpmn.safexml import DEFAULT_MAX_BYTES, Source, load_bpmn, source_label

_B = BPMN_NS
_EVENT_DEF_TAGS = {f"{k}EventDefinition": k for k in m.EVENT_DEFINITION_KINDS}
_REF_ATTR = {
    "message": "messageRef",
    "error": "errorRef",
    "signal": "signalRef",
    "escalation": "escalationRef",
    "compensate": "activityRef",
}
_CAMUNDA_NSS = (CAMUNDA_NS, ACTIVITI_NS)


def attr_key(qname: str) -> str:
    """Canonical model key for an lxml attribute name (see the model docstring)."""
    if not qname.startswith("{"):
        return qname
    uri, name = qname[1:].split("}", 1)
    prefix = KNOWN_PREFIXES.get(uri)
    return f"{prefix}:{name}" if prefix else qname


def key_to_qname(key: str) -> str:
    """Inverse of :func:`attr_key`: ``camunda:topic`` -> ``{ns}topic``; plain keys unchanged."""
    if key.startswith("{") or ":" not in key:
        return key
    prefix, name = key.split(":", 1)
    uri = PREFIX_NS.get(prefix)
    if uri is None:
        raise KeyError(f"unknown attribute prefix {prefix!r}; use Clark notation {{namespace}}{name}")
    return f"{{{uri}}}{name}"


def is_bpmn(el: etree._Element, name: str | None = None) -> bool:
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith("{" + _B + "}"):
        return False
    return name is None or tag == f"{{{_B}}}{name}"


def bpmn_children(el: etree._Element, name: str | None = None) -> list[etree._Element]:
    return [c for c in el if is_bpmn(c, name)]


def _attrs(el: etree._Element, skip: tuple[str, ...] = ("id", "name")) -> dict[str, str]:
    return {attr_key(k): v for k, v in el.attrib.items() if k not in skip}


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    txt = "".join(el.itertext()).strip()
    return txt or None


def _is_camunda(el: etree._Element, name: str) -> bool:
    tag = el.tag
    return isinstance(tag, str) and any(tag == f"{{{ns}}}{name}" for ns in _CAMUNDA_NSS)


def _ext(el: etree._Element) -> m.ExtensionElement:
    return m.ExtensionElement(
        tag=attr_key(el.tag) if isinstance(el.tag, str) else "#comment",
        attrs=_attrs(el, ()),
        text=(el.text or "").strip() or None,
        children=[_ext(c) for c in el if isinstance(c.tag, str)],
    )


def _read_extensions(el: etree._Element, node: m.FlowNode | m.Process | m.SequenceFlow) -> None:
    """Keep every extension element on ``node`` and map the Camunda ones the rules read."""
    for ee in bpmn_children(el, "extensionElements"):
        for c in ee:
            if not isinstance(c.tag, str):
                continue
            node.extensions.append(_ext(c))
            if _is_camunda(c, "properties"):
                for p in c:
                    if isinstance(p.tag, str) and _is_camunda(p, "property") and p.get("name"):
                        node.properties[p.get("name", "")] = p.get("value", "")
            if not isinstance(node, m.FlowNode):
                continue
            if _is_camunda(c, "in") or _is_camunda(c, "out"):
                node.io.append(
                    m.IoMapping(
                        kind=local(c),
                        source=c.get("source"),
                        source_expression=c.get("sourceExpression"),
                        target=c.get("target"),
                        variables=c.get("variables"),
                        business_key=c.get("businessKey"),
                        local=c.get("local") == "true",
                    )
                )
            elif _is_camunda(c, "inputOutput"):
                for p in c:
                    if not isinstance(p.tag, str) or not p.get("name"):
                        continue
                    value = _text(p) or ""
                    if _is_camunda(p, "inputParameter"):
                        node.input_parameters[p.get("name", "")] = value
                    elif _is_camunda(p, "outputParameter"):
                        node.output_parameters[p.get("name", "")] = value


def _event_definition(el: etree._Element, kind: str) -> m.EventDefinition:
    ed = m.EventDefinition(kind=kind, id=el.get("id"), attrs=_attrs(el, ("id",)))
    ref_attr = _REF_ATTR.get(kind)
    if ref_attr:
        ed.ref = el.get(ref_attr)
    if kind == "timer":
        for c in el:
            if isinstance(c.tag, str) and local(c) in ("timeDate", "timeDuration", "timeCycle"):
                ed.timer[local(c)] = _text(c) or ""
    elif kind == "conditional":
        cond = bpmn_children(el, "condition")
        ed.condition = _text(cond[0]) if cond else None
    elif kind == "link":
        ed.link_name = el.get("name")
    return ed


class _Reader:
    def __init__(self, defs: m.Definitions) -> None:
        self.defs = defs
        self.seen: set[str] = set()

    def note_id(self, ident: str | None) -> None:
        if ident is None:
            return
        if ident in self.seen and ident not in self.defs.duplicate_ids:
            self.defs.duplicate_ids.append(ident)
        self.seen.add(ident)

    def read(self, root: etree._Element) -> None:
        d = self.defs
        d.id = root.get("id")
        d.target_namespace = root.get("targetNamespace")
        d.attrs = _attrs(root, ("id",))
        for el in root.iter(f"{{{_B}}}*", f"{{{BPMNDI_NS}}}*", f"{{{DI_NS}}}*", f"{{{DC_NS}}}*"):
            # vendor extension content may reuse ids (an ADONIS link to a process, say): not counted
            ident = el.get("id")
            if ident is not None and el is not root:
                self.note_id(ident)
                if is_bpmn(el):
                    d.element_ids.add(ident)
        self.read_extension_sites(root)
        for el in root:
            if not isinstance(el.tag, str):
                continue
            name = local(el)
            if not is_bpmn(el):
                if el.tag == f"{{{BPMNDI_NS}}}BPMNDiagram":
                    self.read_di(el)
                continue
            if name == "process":
                self.read_process(el)
            elif name == "collaboration" or name == "choreography":
                self.read_collaboration(el)
            elif el.get("id"):
                d.roots[el.get("id", "")] = m.RootDef(el.get("id", ""), name, el.get("name"), _attrs(el))

    def read_extension_sites(self, root: etree._Element) -> None:
        """Every ``extensionElements`` block on any BPMN element, with where it sits (the
        Camunda placement rules read these)."""
        for ee in root.iter(f"{{{_B}}}extensionElements"):
            holder = ee.getparent()
            if holder is None or not is_bpmn(holder):
                continue
            owner = holder
            while owner is not None and owner.get("id") is None:
                owner = owner.getparent()
            self.defs.extension_sites.append(
                m.ExtensionSite(
                    type=local(holder),
                    owner=owner.get("id") if owner is not None else None,
                    extensions=[_ext(c) for c in ee if isinstance(c.tag, str)],
                )
            )

    def read_di(self, diagram: etree._Element) -> None:
        self.defs.has_diagram = True
        for el in diagram.iter(f"{{{BPMNDI_NS}}}BPMNShape", f"{{{BPMNDI_NS}}}BPMNEdge"):
            ref = el.get("bpmnElement")
            if not ref:
                continue
            target = self.defs.di_shapes if local(el) == "BPMNShape" else self.defs.di_edges
            target.setdefault(ref, el.get("id") or "")

    def read_collaboration(self, el: etree._Element) -> None:
        c = m.Collaboration(id=el.get("id") or "", name=el.get("name"))
        for p in bpmn_children(el, "participant"):
            c.participants.append(m.Participant(p.get("id") or "", p.get("name"), p.get("processRef")))
        for mf in bpmn_children(el, "messageFlow"):
            c.message_flows.append(
                m.MessageFlow(
                    mf.get("id") or "",
                    mf.get("sourceRef") or "",
                    mf.get("targetRef") or "",
                    mf.get("name"),
                    mf.get("messageRef"),
                )
            )
        self.defs.collaborations[c.id] = c

    def read_process(self, el: etree._Element) -> None:
        p = m.Process(
            id=el.get("id") or "",
            name=el.get("name"),
            is_executable=el.get("isExecutable") == "true",
            attrs=_attrs(el),
        )
        _read_extensions(el, p)
        self.defs.processes[p.id] = p
        for ls in bpmn_children(el, "laneSet"):
            self.read_lanes(ls, p, None)
        self.read_scope(el, p, p.id)
        for lane in p.lanes:
            for ref in lane.flow_node_refs:
                node = self.defs.nodes.get(ref)
                if node is not None:
                    node.lane = lane.id

    def read_lanes(self, lane_set: etree._Element, p: m.Process, parent: str | None) -> None:
        for le in bpmn_children(lane_set, "lane"):
            lane = m.Lane(id=le.get("id") or "", name=le.get("name"), process=p.id, parent_lane=parent)
            lane.flow_node_refs = [(r.text or "").strip() for r in bpmn_children(le, "flowNodeRef")]
            p.lanes.append(lane)
            self.defs.lanes[lane.id] = lane
            for child in bpmn_children(le, "childLaneSet"):
                self.read_lanes(child, p, lane.id)

    def read_scope(self, el: etree._Element, p: m.Process, scope: str) -> None:
        for c in el:
            if not is_bpmn(c):
                continue
            name = local(c)
            if name in m.FLOW_NODE_TYPES:
                node = self.read_node(c, p, scope)
                if node.is_subprocess:
                    self.read_scope(c, p, node.id)
            elif name == "sequenceFlow":
                cond = bpmn_children(c, "conditionExpression")
                f = m.SequenceFlow(
                    id=c.get("id") or "",
                    source=c.get("sourceRef") or "",
                    target=c.get("targetRef") or "",
                    name=c.get("name"),
                    parent=scope,
                    process=p.id,
                    attrs=_attrs(c, ("id", "name")),
                    condition=_text(cond[0]) if cond else None,
                    condition_language=cond[0].get("language") if cond else None,
                )
                _read_extensions(c, f)
                self.defs.flows[f.id] = f
                p.flow_ids.append(f.id)
            elif name in m.DATA_TYPES or name in m.ARTIFACT_TYPES:
                if c.get("id"):
                    self.defs.others[c.get("id", "")] = m.OtherElement(
                        c.get("id", ""), name, scope, c.get("name"), _attrs(c)
                    )

    def read_node(self, el: etree._Element, p: m.Process, scope: str) -> m.FlowNode:
        name = local(el)
        n = m.FlowNode(
            id=el.get("id") or "",
            type=name,
            name=el.get("name"),
            parent=scope,
            process=p.id,
            attrs=_attrs(el),
        )
        n.incoming = [(x.text or "").strip() for x in bpmn_children(el, "incoming")]
        n.outgoing = [(x.text or "").strip() for x in bpmn_children(el, "outgoing")]
        n.attached_to = el.get("attachedToRef")
        n.cancel_activity = el.get("cancelActivity", "true") != "false"
        n.default = el.get("default")
        n.called_element = el.get("calledElement")
        n.triggered_by_event = el.get("triggeredByEvent") == "true"
        n.is_for_compensation = el.get("isForCompensation") == "true"
        n.message_ref = el.get("messageRef")
        n.script_format = el.get("scriptFormat")
        docs = bpmn_children(el, "documentation")
        n.documentation = _text(docs[0]) if docs else None
        for c in el:
            if not isinstance(c.tag, str):
                continue
            cl = local(c)
            if is_bpmn(c) and cl in _EVENT_DEF_TAGS:
                n.event_definitions.append(_event_definition(c, _EVENT_DEF_TAGS[cl]))
            elif is_bpmn(c, "eventDefinitionRef"):
                ref = (c.text or "").strip()
                n.event_definitions.append(m.EventDefinition(kind="ref", ref=ref))
            elif is_bpmn(c, "multiInstanceLoopCharacteristics"):
                card = bpmn_children(c, "loopCardinality")
                comp = bpmn_children(c, "completionCondition")
                n.multi_instance = m.MultiInstance(
                    sequential=c.get("isSequential") == "true",
                    loop_cardinality=_text(card[0]) if card else None,
                    completion_condition=_text(comp[0]) if comp else None,
                    attrs=_attrs(c, ("id",)),
                )
            elif is_bpmn(c, "standardLoopCharacteristics"):
                n.standard_loop = True
            elif is_bpmn(c, "script"):
                n.script = _text(c)
        if n.type == "scriptTask" and n.script is None and n.camunda("resource"):
            n.script = f"resource:{n.camunda('resource')}"
        _read_extensions(el, n)
        self.defs.nodes[n.id] = n
        p.node_ids.append(n.id)
        return n


def detect_dialect(root: etree._Element) -> str:
    """``camunda8`` if any Zeebe extension is used, else ``camunda7`` if any Camunda/Activiti
    extension is used below the root (a declared namespace alone does not count), else ``bpmn``."""
    z, c = "{" + ZEEBE_NS + "}", tuple("{" + ns + "}" for ns in _CAMUNDA_NSS)
    camunda = False
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if tag.startswith(z):
            return "camunda8"
        if tag.startswith(c):
            camunda = True
        if el is root:
            continue
        for key in el.attrib:
            if key.startswith(z):
                return "camunda8"
            if key.startswith(c):
                camunda = True
    return "camunda7" if camunda else "bpmn"


def parse_tree(tree: etree._ElementTree, source: str | None = None) -> m.Definitions:
    """Build the graph model from an already (safely) loaded tree; the tree is kept, not copied."""
    defs = m.Definitions(source=source, tree=tree)
    _Reader(defs).read(tree.getroot())
    defs.dialect = detect_dialect(tree.getroot())
    return defs


def parse(source: Source, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None) -> m.Definitions:
    """Parse BPMN from a path, bytes or XML text. Raises ``BpmnParseError`` on unsafe or non-BPMN input."""
    tree = load_bpmn(source, max_bytes, name)
    return parse_tree(tree, name or source_label(source))
