"""Small atomic edit operations on a parsed process, in a JSON form a model can emit.

Why atomic ops instead of rewritten XML: a model that edits an existing process (the nightly
curator adding a retry, say) should name *what* changes, so the diff is small, reviewable and
cannot silently drop vendor extensions or the diagram. Each op changes the lxml tree under the
model (DI included: shapes and edges are added and removed with their elements); the result
is re-read into a fresh model. ``apply_edits`` never mutates its input.

Ops: ``add_element``, ``remove_element`` (its flows, boundary events, lane refs and DI go
too), ``update_element`` (name, attributes, condition, camunda properties / input parameters,
retry cycle), ``move_element`` (into another (sub-)process and/or lane), ``connect``.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from das.bpmn import model as m
from das.bpmn import ns
from das.bpmn.ns import local
from das.bpmn.parse import is_bpmn, key_to_qname, parse_tree
from das.errors import InvalidInput

_B = ns.BPMN_NS
_ID = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$"
_SIZES = {"event": (36, 36), "gateway": (50, 50), "task": (100, 80), "subprocess": (350, 200)}
_FLOW_ELEMENT_TAGS = m.FLOW_NODE_TYPES | m.DATA_TYPES | {"sequenceFlow", "dataObject"}
_AFTER_FLOW_ELEMENTS = m.ARTIFACT_TYPES | {
    "resourceRole",
    "correlationSubscription",
    "supports",
    "performer",
    "humanPerformer",
    "potentialOwner",
}


class EditError(InvalidInput):
    """An edit that cannot be applied; the message says which op and why."""


class UnknownElement(EditError):
    pass


class DuplicateId(EditError):
    pass


class InvalidEdit(EditError):
    pass


# ---- the JSON form ------------------------------------------------------------------------
class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimerSpec(_Op):
    kind: Literal["timeDuration", "timeDate", "timeCycle"] = "timeDuration"
    value: str = Field(min_length=1, max_length=200)


class AddElement(_Op):
    """Add a flow node (task, event, gateway, sub-process, call activity)."""

    op: Literal["add_element"] = "add_element"
    id: str = Field(pattern=_ID)
    type: str = Field(description="BPMN local name, e.g. serviceTask, exclusiveGateway, boundaryEvent")
    name: str | None = Field(default=None, max_length=200)
    parent: str | None = Field(
        default=None, description="process or sub-process id; default: the first process"
    )
    lane: str | None = None
    attached_to: str | None = Field(default=None, description="boundary events: the activity they guard")
    cancel_activity: bool = True
    event_definition: (
        Literal[
            "message",
            "timer",
            "error",
            "signal",
            "escalation",
            "compensate",
            "conditional",
            "link",
            "terminate",
            "cancel",
        ]
        | None
    ) = None
    event_ref: str | None = Field(
        default=None, description="errorRef / messageRef / signalRef / escalationRef"
    )
    timer: TimerSpec | None = None
    attributes: dict[str, str] = Field(
        default_factory=dict, description='e.g. {"camunda:type": "external", "camunda:topic": "x"}'
    )


class RemoveElement(_Op):
    """Remove an element; a node's flows, boundary events, lane refs and diagram go with it."""

    op: Literal["remove_element"] = "remove_element"
    id: str


class UpdateElement(_Op):
    """Change a name, attributes (null removes one), a flow condition, camunda properties or inputs."""

    op: Literal["update_element"] = "update_element"
    id: str
    name: str | None = Field(default=None, max_length=200)
    attributes: dict[str, str | None] = Field(default_factory=dict)
    condition: str | None = Field(
        default=None, description="sequence flows: JUEL ${...}; empty string removes it"
    )
    properties: dict[str, str | None] = Field(default_factory=dict, description="camunda:properties")
    input_parameters: dict[str, str | None] = Field(
        default_factory=dict, description="camunda:inputParameter"
    )
    retry_time_cycle: str | None = Field(
        default=None, description="camunda:failedJobRetryTimeCycle, e.g. R3/PT1M"
    )


class MoveElement(_Op):
    """Move a node into another process / sub-process and/or lane."""

    op: Literal["move_element"] = "move_element"
    id: str
    parent: str | None = None
    lane: str | None = None
    drop_flows: bool = Field(default=False, description="remove flows that would cross the new boundary")


class Connect(_Op):
    """Add a sequence flow, optionally with a condition or as the source gateway's default."""

    op: Literal["connect"] = "connect"
    source: str
    target: str
    id: str | None = Field(default=None, pattern=_ID)
    name: str | None = Field(default=None, max_length=200)
    condition: str | None = Field(default=None, max_length=2000)
    default: bool = False


EditOp = Annotated[
    AddElement | RemoveElement | UpdateElement | MoveElement | Connect, Field(discriminator="op")
]


class EditScript(BaseModel):
    """What a model emits to change a process: an ordered list of atomic ops."""

    ops: list[EditOp] = Field(min_length=1, max_length=200)


def edit_script_schema() -> dict[str, Any]:
    """JSON Schema of :class:`EditScript`, for structured output."""
    return EditScript.model_json_schema()


_OPS_ADAPTER: TypeAdapter[list[EditOp]] = TypeAdapter(list[EditOp])


def parse_ops(data: Any) -> list[Any]:
    """Ops from JSON data (a list, or ``{"ops": [...]}``); invalid data is an ``EditError``."""
    if isinstance(data, dict) and "ops" in data:
        data = data["ops"]
    try:
        return list(_OPS_ADAPTER.validate_python(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InvalidEdit(
            f"invalid edit op at {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from None


# ---- applying -----------------------------------------------------------------------------
def apply_edits(defs: m.Definitions, ops: list[Any]) -> m.Definitions:
    """Apply ops in order to a copy of ``defs``; return the new model. Raises ``EditError``."""
    if defs.tree is None:
        raise InvalidEdit("the model has no XML tree; parse a file or use new_definitions()")
    parsed = parse_ops([o.model_dump() if isinstance(o, BaseModel) else o for o in ops])
    tree = copy.deepcopy(defs.tree)
    ed = _Editor(tree)
    for i, op in enumerate(parsed):
        try:
            getattr(ed, op.op)(op)
        except EditError as exc:
            raise type(exc)(f"edit {i + 1} ({op.op}): {exc.message}") from None
    ed.finish()
    return parse_tree(tree, defs.source)


def new_definitions(
    process_id: str = "Process_1", name: str | None = None, executable: bool = True, history_ttl: str = "P30D"
) -> m.Definitions:
    """An empty Camunda 7 process with a diagram plane, ready for edit ops."""
    root = etree.Element(
        f"{{{_B}}}definitions",
        nsmap=dict(ns.WRITE_NSMAP),
        id=f"Definitions_{process_id}",
        targetNamespace=ns.EDITS_TARGET_NS,
    )
    proc = etree.SubElement(root, f"{{{_B}}}process", id=process_id, isExecutable=str(executable).lower())
    if name:
        proc.set("name", name)
    proc.set(f"{{{ns.CAMUNDA_NS}}}historyTimeToLive", history_ttl)
    diagram = etree.SubElement(root, f"{{{ns.BPMNDI_NS}}}BPMNDiagram", id=f"BPMNDiagram_{process_id}")
    etree.SubElement(
        diagram, f"{{{ns.BPMNDI_NS}}}BPMNPlane", id=f"BPMNPlane_{process_id}", bpmnElement=process_id
    )
    return parse_tree(root.getroottree(), None)


class _Editor:
    def __init__(self, tree: etree._ElementTree) -> None:
        self.tree = tree
        self.root = tree.getroot()
        self.index: dict[str, etree._Element] = {}
        for el in self.root.iter(f"{{{_B}}}*"):
            if el.get("id"):
                self.index.setdefault(el.get("id", ""), el)
        self.di: dict[str, etree._Element] = {}
        for el in self.root.iter(f"{{{ns.BPMNDI_NS}}}BPMNShape", f"{{{ns.BPMNDI_NS}}}BPMNEdge"):
            if el.get("bpmnElement"):
                self.di.setdefault(el.get("bpmnElement", ""), el)
        self.new_ns = False

    # -- helpers --
    def get(self, ident: str, what: str = "element") -> etree._Element:
        el = self.index.get(ident)
        if el is None:
            raise UnknownElement(f"no {what} with id {ident!r}")
        return el

    def is_node(self, el: etree._Element) -> bool:
        return is_bpmn(el) and local(el) in m.FLOW_NODE_TYPES

    def is_scope(self, el: etree._Element) -> bool:
        return is_bpmn(el) and (local(el) == "process" or local(el) in m.SUBPROCESS_TYPES)

    def set_attr(self, el: etree._Element, key: str, value: str | None) -> None:
        if key in ("id",):
            raise InvalidEdit("ids cannot be changed; remove the element and add a new one")
        try:
            qn = key_to_qname(key)
        except KeyError as exc:
            raise InvalidEdit(str(exc).strip("\"'")) from None
        if qn.startswith("{") and qn[1:].split("}")[0] not in self.root.nsmap.values():
            self.new_ns = True
        if value is None:
            el.attrib.pop(qn, None)
        else:
            el.set(qn, value)

    def insert_flow_element(self, scope: etree._Element, el: etree._Element) -> None:
        kids = list(scope)
        last_flow = max(
            (i for i, c in enumerate(kids) if is_bpmn(c) and local(c) in _FLOW_ELEMENT_TAGS), default=-1
        )
        if last_flow >= 0:
            scope.insert(last_flow + 1, el)
            return
        after = next((i for i, c in enumerate(kids) if is_bpmn(c) and local(c) in _AFTER_FLOW_ELEMENTS), None)
        if after is None:
            scope.append(el)
        else:
            scope.insert(after, el)

    def ref_child(self, node: etree._Element, tag: str, value: str) -> None:
        """Add <incoming>/<outgoing> in schema order (after documentation/extensionElements)."""
        child = etree.Element(f"{{{_B}}}{tag}")
        child.text = value
        kids = list(node)
        order = {"documentation": 0, "extensionElements": 1, "incoming": 2, "outgoing": 3}
        rank = order[tag]
        pos = 0
        for i, c in enumerate(kids):
            if is_bpmn(c) and order.get(local(c), 99) <= rank:
                pos = i + 1
        node.insert(pos, child)

    def scope_of(self, el: etree._Element) -> etree._Element:
        parent = el.getparent()
        assert parent is not None
        return parent

    def process_of(self, el: etree._Element) -> etree._Element:
        cur: etree._Element | None = el
        while cur is not None and not is_bpmn(cur, "process"):
            cur = cur.getparent()
        if cur is None:
            raise InvalidEdit("element is not inside a process")
        return cur

    def plane_for(self, proc_id: str) -> etree._Element | None:
        planes = list(self.root.iter(f"{{{ns.BPMNDI_NS}}}BPMNPlane"))
        participants = {
            p.get("id") for p in self.root.iter(f"{{{_B}}}participant") if p.get("processRef") == proc_id
        }
        collabs = {
            c.get("id")
            for c in self.root.iter(f"{{{_B}}}collaboration")
            if any(p.get("id") in participants for p in c)
        }
        for pl in planes:
            if pl.get("bpmnElement") == proc_id or pl.get("bpmnElement") in collabs:
                return pl
        return planes[0] if len(planes) == 1 else None

    # -- DI --
    def add_shape(self, el: etree._Element, host: etree._Element | None) -> None:
        plane = self.plane_for(self.process_of(el).get("id", ""))
        if plane is None:
            return
        kind = local(el)
        size = _SIZES[
            "event"
            if kind in m.EVENT_TYPES
            else "gateway"
            if kind in m.GATEWAY_TYPES
            else "subprocess"
            if kind in m.SUBPROCESS_TYPES
            else "task"
        ]
        right = 100.0
        for b in plane.iter(f"{{{ns.DC_NS}}}Bounds"):
            right = max(right, float(b.get("x", 0)) + float(b.get("width", 0)))
        x, y = right + 50, 120.0 - size[1] / 2  # centres on one line, so edges stay straight
        if host is not None and host.get("id") in self.di:
            hb = self.di[host.get("id", "")].find(f"{{{ns.DC_NS}}}Bounds")
            if hb is not None:
                x = float(hb.get("x", 0)) + float(hb.get("width", 0)) - size[0] - 10
                y = float(hb.get("y", 0)) + float(hb.get("height", 0)) - size[1] / 2
        shape = etree.SubElement(
            plane, f"{{{ns.BPMNDI_NS}}}BPMNShape", id=f"{el.get('id')}_di", bpmnElement=el.get("id", "")
        )
        if kind in m.SUBPROCESS_TYPES:
            shape.set("isExpanded", "true")
        etree.SubElement(
            shape, f"{{{ns.DC_NS}}}Bounds", x=f"{x:g}", y=f"{y:g}", width=str(size[0]), height=str(size[1])
        )
        self.di[el.get("id", "")] = shape

    def add_edge(self, flow: etree._Element) -> None:
        src, tgt = self.di.get(flow.get("sourceRef", "")), self.di.get(flow.get("targetRef", ""))
        if src is None or tgt is None:
            return
        plane = src.getparent()
        sb, tb = src.find(f"{{{ns.DC_NS}}}Bounds"), tgt.find(f"{{{ns.DC_NS}}}Bounds")
        if plane is None or sb is None or tb is None:
            return
        edge = etree.SubElement(
            plane, f"{{{ns.BPMNDI_NS}}}BPMNEdge", id=f"{flow.get('id')}_di", bpmnElement=flow.get("id", "")
        )

        def f(b: etree._Element, k: str) -> float:
            return float(b.get(k, 0))

        points = [
            (f(sb, "x") + f(sb, "width"), f(sb, "y") + f(sb, "height") / 2),
            (f(tb, "x"), f(tb, "y") + f(tb, "height") / 2),
        ]
        for px, py in points:
            etree.SubElement(edge, f"{{{ns.DI_NS}}}waypoint", x=f"{px:g}", y=f"{py:g}")
        self.di[flow.get("id", "")] = edge

    def drop_di(self, ident: str) -> None:
        shape = self.di.pop(ident, None)
        if shape is not None and shape.getparent() is not None:
            shape.getparent().remove(shape)

    # -- ops --
    def add_element(self, op: AddElement) -> None:
        if op.type not in m.FLOW_NODE_TYPES:
            raise InvalidEdit(
                f"type {op.type!r} is not a flow node type; use one of: {', '.join(sorted(m.FLOW_NODE_TYPES))}"
            )
        if op.id in self.index:
            raise DuplicateId(f"id {op.id!r} already exists; choose a new id")
        host = None
        if op.type == "boundaryEvent":
            if not op.attached_to:
                raise InvalidEdit("a boundaryEvent needs attached_to (the activity it guards)")
            host = self.get(op.attached_to, "activity")
            if local(host) not in m.ACTIVITY_TYPES:
                raise InvalidEdit(
                    f"{op.attached_to!r} is a {local(host)}, not an activity; attach to a task or sub-process"
                )
            scope = self.scope_of(host)
        elif op.parent:
            scope = self.get(op.parent, "process or sub-process")
            if not self.is_scope(scope):
                raise InvalidEdit(f"parent {op.parent!r} is a {local(scope)}, not a process or sub-process")
        else:
            procs = [c for c in self.root if is_bpmn(c, "process")]
            if not procs:
                raise InvalidEdit("the file has no process to add to")
            scope = procs[0]
        el = etree.Element(f"{{{_B}}}{op.type}", id=op.id)
        if op.name is not None:
            el.set("name", op.name)
        if host is not None:
            el.set("attachedToRef", host.get("id", ""))
            if not op.cancel_activity:
                el.set("cancelActivity", "false")
        for k, v in op.attributes.items():
            self.set_attr(el, k, v)
        if op.event_definition or op.timer:
            kind = op.event_definition or "timer"
            ed = etree.SubElement(el, f"{{{_B}}}{kind}EventDefinition", id=f"{op.id}_ed")
            if op.event_ref:
                ref_attr = {
                    "message": "messageRef",
                    "error": "errorRef",
                    "signal": "signalRef",
                    "escalation": "escalationRef",
                    "compensate": "activityRef",
                }.get(kind)
                if ref_attr is None:
                    raise InvalidEdit(f"{kind} event definitions take no event_ref")
                if op.event_ref not in self.index:
                    raise UnknownElement(
                        f"event_ref {op.event_ref!r} names no element; add the <{kind}> first"
                    )
                ed.set(ref_attr, op.event_ref)
            if op.timer:
                t = etree.SubElement(ed, f"{{{_B}}}{op.timer.kind}")
                t.set(f"{{{ns.XSI_NS}}}type", self._formal_type(el, scope))
                t.text = op.timer.value
        self.insert_flow_element(scope, el)
        self.index[op.id] = el
        if op.lane:
            self._set_lane(el, op.lane)
        self.add_shape(el, host)

    def _formal_type(self, el: etree._Element, scope: etree._Element) -> str:
        prefix = next((p for p, ns in scope.nsmap.items() if ns == _B), None)
        return f"{prefix}:tFormalExpression" if prefix else "tFormalExpression"

    def remove_element(self, op: RemoveElement) -> None:
        el = self.get(op.id)
        if local(el) == "sequenceFlow":
            self._remove_flow(el)
            return
        if not (self.is_node(el) or local(el) in m.DATA_TYPES | m.ARTIFACT_TYPES):
            raise InvalidEdit(
                f"{op.id!r} is a {local(el)}; only flow nodes, flows, data objects and artifacts can be removed"
            )
        doomed = [d for d in el.iter(f"{{{_B}}}*") if d.get("id")]
        doomed_ids = {d.get("id") for d in doomed}
        for b in [
            x
            for x in self.index.values()
            if is_bpmn(x, "boundaryEvent") and x.get("attachedToRef") in doomed_ids
        ]:
            doomed_ids.add(b.get("id"))
            doomed.append(b)
        for f in [
            x
            for x in self.index.values()
            if is_bpmn(x, "sequenceFlow")
            and (x.get("sourceRef") in doomed_ids or x.get("targetRef") in doomed_ids)
        ]:
            if f.get("id") not in doomed_ids:
                self._remove_flow(f)
        for a in [
            x
            for x in self.index.values()
            if local(x) in ("association", "dataInputAssociation")
            and (x.get("sourceRef") in doomed_ids or x.get("targetRef") in doomed_ids)
        ]:
            self._detach(a)
        for ref in self.root.iter(f"{{{_B}}}flowNodeRef"):
            if (ref.text or "").strip() in doomed_ids and ref.getparent() is not None:
                ref.getparent().remove(ref)
        for d in doomed:
            self._detach(d)

    def _detach(self, el: etree._Element) -> None:
        ident = el.get("id", "")
        self.index.pop(ident, None)
        self.drop_di(ident)
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)

    def _remove_flow(self, flow: etree._Element) -> None:
        fid = flow.get("id", "")
        for node_id, tag in ((flow.get("sourceRef"), "outgoing"), (flow.get("targetRef"), "incoming")):
            node = self.index.get(node_id or "")
            if node is None:
                continue
            for c in bpmn_refs(node, tag):
                if (c.text or "").strip() == fid:
                    node.remove(c)
            if node.get("default") == fid:
                del node.attrib["default"]
        self._detach(flow)

    def update_element(self, op: UpdateElement) -> None:
        el = self.get(op.id)
        if op.name is not None:
            if op.name:
                el.set("name", op.name)
            else:
                el.attrib.pop("name", None)
        for k, v in op.attributes.items():
            if k == "default" and v is not None:
                f = self.get(v, "sequence flow")
                if f.get("sourceRef") != op.id:
                    raise InvalidEdit(f"default {v!r} is not an outgoing flow of {op.id!r}")
            self.set_attr(el, k, v)
        if op.condition is not None:
            if local(el) != "sequenceFlow":
                raise InvalidEdit(f"{op.id!r} is a {local(el)}; only sequence flows have conditions")
            self._set_condition(el, op.condition)
        if op.properties or op.input_parameters or op.retry_time_cycle is not None:
            ext = self._ext(el)
            if op.properties:
                props = self._camunda_child(ext, "properties")
                for name, value in op.properties.items():
                    self._named_child(props, "property", name, value, as_attr=True)
            if op.input_parameters:
                io = self._camunda_child(ext, "inputOutput")
                for name, value in op.input_parameters.items():
                    self._named_child(io, "inputParameter", name, value, as_attr=False)
            if op.retry_time_cycle is not None:
                cyc = self._camunda_child(ext, "failedJobRetryTimeCycle")
                cyc.text = op.retry_time_cycle
            self.new_ns = self.new_ns or ns.CAMUNDA_NS not in self.root.nsmap.values()

    def _ext(self, el: etree._Element) -> etree._Element:
        for c in el:
            if is_bpmn(c, "extensionElements"):
                return c
        ext = etree.Element(f"{{{_B}}}extensionElements")
        pos = 1 if len(el) and is_bpmn(el[0], "documentation") else 0
        el.insert(pos, ext)
        return ext

    def _camunda_child(self, ext: etree._Element, name: str) -> etree._Element:
        for c in ext:
            if c.tag in (f"{{{ns.CAMUNDA_NS}}}{name}", f"{{{ns.ACTIVITI_NS}}}{name}"):
                return c
        return etree.SubElement(ext, f"{{{ns.CAMUNDA_NS}}}{name}")

    def _named_child(
        self, parent: etree._Element, tag: str, name: str, value: str | None, as_attr: bool
    ) -> None:
        ns = etree.QName(parent).namespace
        for c in parent:
            if isinstance(c.tag, str) and local(c) == tag and c.get("name") == name:
                if value is None:
                    parent.remove(c)
                elif as_attr:
                    c.set("value", value)
                else:
                    c.text = value
                return
        if value is not None:
            c = etree.SubElement(parent, f"{{{ns}}}{tag}", name=name)
            if as_attr:
                c.set("value", value)
            else:
                c.text = value

    def _set_condition(self, flow: etree._Element, condition: str) -> None:
        for c in list(flow):
            if is_bpmn(c, "conditionExpression"):
                flow.remove(c)
        if condition:
            ce = etree.SubElement(flow, f"{{{_B}}}conditionExpression")
            ce.set(f"{{{ns.XSI_NS}}}type", self._formal_type(flow, self.scope_of(flow)))
            ce.text = condition

    def move_element(self, op: MoveElement) -> None:
        el = self.get(op.id)
        if not self.is_node(el):
            raise InvalidEdit(f"{op.id!r} is a {local(el)}; only flow nodes can be moved")
        if op.parent:
            scope = self.get(op.parent, "process or sub-process")
            if not self.is_scope(scope):
                raise InvalidEdit(f"parent {op.parent!r} is a {local(scope)}, not a process or sub-process")
            if scope is el or any(a is el for a in scope.iterancestors()):
                raise InvalidEdit(f"cannot move {op.id!r} into itself")
            moving = {op.id} | {
                x.get("id")
                for x in self.index.values()
                if is_bpmn(x, "boundaryEvent") and x.get("attachedToRef") == op.id
            }
            crossing = [
                f
                for f in self.index.values()
                if is_bpmn(f, "sequenceFlow")
                and (
                    (f.get("sourceRef") in moving) != (f.get("targetRef") in moving)
                    or (f.get("sourceRef") in moving and f.getparent() is not scope)
                )
            ]
            crossing = [
                f for f in crossing if not (f.get("sourceRef") in moving and f.get("targetRef") in moving)
            ]
            if crossing and not op.drop_flows:
                ids = ", ".join(sorted(f.get("id", "") for f in crossing))
                raise InvalidEdit(
                    f"moving {op.id!r} would make flows cross a sub-process boundary ({ids}); "
                    "remove them first or set drop_flows"
                )
            for f in crossing:
                self._remove_flow(f)
            for ident in sorted(i for i in moving if i):
                node = self.index[ident]
                self.scope_of(node).remove(node)
                self.insert_flow_element(scope, node)
        if op.lane:
            self._set_lane(el, op.lane)

    def _set_lane(self, el: etree._Element, lane_id: str) -> None:
        lane = self.get(lane_id, "lane")
        if not is_bpmn(lane, "lane"):
            raise InvalidEdit(f"{lane_id!r} is a {local(lane)}, not a lane")
        if self.process_of(lane) is not self.process_of(el):
            raise InvalidEdit(f"lane {lane_id!r} belongs to another process")
        ident = el.get("id", "")
        for ref in list(self.root.iter(f"{{{_B}}}flowNodeRef")):
            if (ref.text or "").strip() == ident and ref.getparent() is not None:
                ref.getparent().remove(ref)
        ref = etree.Element(f"{{{_B}}}flowNodeRef")
        ref.text = ident
        kids = list(lane)
        pos = max(
            (
                i + 1
                for i, c in enumerate(kids)
                if is_bpmn(c)
                and local(c) in ("documentation", "extensionElements", "partitionElement", "flowNodeRef")
            ),
            default=0,
        )
        lane.insert(pos, ref)

    def connect(self, op: Connect) -> None:
        src, tgt = self.get(op.source, "source node"), self.get(op.target, "target node")
        for ident, el in ((op.source, src), (op.target, tgt)):
            if not self.is_node(el):
                raise InvalidEdit(f"{ident!r} is a {local(el)}, not a flow node")
        if self.scope_of(src) is not self.scope_of(tgt):
            raise InvalidEdit(
                f"{op.source!r} and {op.target!r} are in different (sub-)processes; "
                "sequence flows cannot cross that boundary"
            )
        fid = op.id or self._fresh(f"Flow_{op.source}_{op.target}")
        if fid in self.index:
            raise DuplicateId(f"id {fid!r} already exists; choose a new id")
        flow = etree.Element(f"{{{_B}}}sequenceFlow", id=fid, sourceRef=op.source, targetRef=op.target)
        if op.name:
            flow.set("name", op.name)
        self.insert_flow_element(self.scope_of(src), flow)
        self.index[fid] = flow
        if op.condition:
            self._set_condition(flow, op.condition)
        self.ref_child(src, "outgoing", fid)
        self.ref_child(tgt, "incoming", fid)
        if op.default:
            src.set("default", fid)
        self.add_edge(flow)

    def _fresh(self, base: str) -> str:
        ident, n = base, 1
        while ident in self.index:
            n += 1
            ident = f"{base}_{n}"
        return ident

    def finish(self) -> None:
        if self.new_ns:  # hoist new namespace declarations (camunda:, ...) to the root, keep all others
            etree.cleanup_namespaces(
                self.tree,
                top_nsmap={p: ns for p, ns in ns.PREFIX_NS.items() if p not in self.root.nsmap},
                keep_ns_prefixes=[p for p in self.root.nsmap if p],
            )


def bpmn_refs(node: etree._Element, tag: str) -> list[etree._Element]:
    return [c for c in node if is_bpmn(c, tag)]
