"""The graph model: every BPMN element the parser meets, as plain dataclasses.

Why a view over XML: the model is what rules, diffs and edit operations read, but the XML
tree it was parsed from stays underneath (``Definitions.tree``). Edits change the tree and
re-read the model, and writing serialises the tree, so whatever the model does not understand
(vendor extensions, BPMN DI, documentation, comments) survives a round trip untouched.

Attribute keys: plain BPMN attributes keep their local name (``isExecutable``); attributes
in a namespace get a canonical prefix when the namespace is well known (``camunda:topic``;
the legacy Activiti namespace, which Camunda 7 still reads, also maps to ``camunda:``; see
:mod:`das.bpmn.ns`) and Clark notation otherwise (``{http://vendor}attr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "implicitThrowEvent",
    }
)
GATEWAY_TYPES = frozenset(
    {
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
SUBPROCESS_TYPES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
TASK_TYPES = frozenset(
    {
        "task",
        "serviceTask",
        "userTask",
        "manualTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
    }
)
ACTIVITY_TYPES = TASK_TYPES | SUBPROCESS_TYPES | {"callActivity"}
FLOW_NODE_TYPES = EVENT_TYPES | GATEWAY_TYPES | ACTIVITY_TYPES
# flow elements that are not nodes of the control-flow graph
DATA_TYPES = frozenset({"dataObject", "dataObjectReference", "dataStoreReference"})
ARTIFACT_TYPES = frozenset({"textAnnotation", "association", "group"})
# root elements that other elements reference by id
ROOT_DEF_TYPES = frozenset(
    {
        "error",
        "message",
        "signal",
        "escalation",
        "itemDefinition",
        "dataStore",
        "interface",
        "operation",
        "resource",
        "category",
        "eventDefinition",
        "correlationProperty",
        "partnerRole",
        "partnerEntity",
        "endPoint",
    }
)
EVENT_DEFINITION_KINDS = (
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
)


@dataclass
class ExtensionElement:
    """One child of ``extensionElements`` (any vendor), kept generically."""

    tag: str  # canonical key, e.g. ``camunda:inputOutput`` or ``{ns}local``
    attrs: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    children: list[ExtensionElement] = field(default_factory=list)


@dataclass
class IoMapping:
    """``camunda:in`` / ``camunda:out`` on a call activity or signal/message event."""

    kind: str  # "in" | "out"
    source: str | None = None
    source_expression: str | None = None
    target: str | None = None
    variables: str | None = None  # "all"
    business_key: str | None = None
    local: bool = False


@dataclass
class EventDefinition:
    kind: str  # one of EVENT_DEFINITION_KINDS
    id: str | None = None
    ref: str | None = None  # messageRef / errorRef / signalRef / escalationRef / activityRef
    timer: dict[str, str] = field(default_factory=dict)  # timeDate|timeDuration|timeCycle -> text
    condition: str | None = None  # conditional events
    link_name: str | None = None  # link events: the name that pairs throw and catch
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class MultiInstance:
    sequential: bool = False
    loop_cardinality: str | None = None
    completion_condition: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)  # camunda:collection, elementVariable...


@dataclass
class FlowNode:
    """An event, activity or gateway. ``parent`` is the process or sub-process id."""

    id: str
    type: str
    name: str | None = None
    parent: str = ""
    process: str = ""  # the top-level process the node belongs to
    lane: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)  # all attributes except id and name
    incoming: list[str] = field(default_factory=list)  # from <incoming> children (informative)
    outgoing: list[str] = field(default_factory=list)
    event_definitions: list[EventDefinition] = field(default_factory=list)
    attached_to: str | None = None
    cancel_activity: bool = True
    default: str | None = None
    called_element: str | None = None
    triggered_by_event: bool = False  # event sub-process
    is_for_compensation: bool = False
    multi_instance: MultiInstance | None = None
    standard_loop: bool = False
    script: str | None = None
    script_format: str | None = None
    message_ref: str | None = None  # receiveTask / sendTask
    io: list[IoMapping] = field(default_factory=list)
    input_parameters: dict[str, str] = field(default_factory=dict)
    output_parameters: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)  # camunda:properties
    extensions: list[ExtensionElement] = field(default_factory=list)
    documentation: str | None = None

    @property
    def is_gateway(self) -> bool:
        return self.type in GATEWAY_TYPES

    @property
    def is_event(self) -> bool:
        return self.type in EVENT_TYPES

    @property
    def is_activity(self) -> bool:
        return self.type in ACTIVITY_TYPES

    @property
    def is_subprocess(self) -> bool:
        return self.type in SUBPROCESS_TYPES

    def event_kinds(self) -> list[str]:
        return [d.kind for d in self.event_definitions]

    def camunda(self, name: str) -> str | None:
        """A ``camunda:`` attribute, or None."""
        return self.attrs.get(f"camunda:{name}")

    @property
    def is_external_task(self) -> bool:
        return self.camunda("type") == "external" or (
            self.camunda("topic") is not None and self.type in ("serviceTask", "sendTask", "businessRuleTask")
        )


@dataclass
class SequenceFlow:
    id: str
    source: str
    target: str
    name: str | None = None
    parent: str = ""
    process: str = ""
    condition: str | None = None
    condition_language: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)  # camunda:properties
    extensions: list[ExtensionElement] = field(default_factory=list)


@dataclass
class Lane:
    id: str
    name: str | None = None
    process: str = ""
    parent_lane: str | None = None
    flow_node_refs: list[str] = field(default_factory=list)


@dataclass
class Process:
    id: str
    name: str | None = None
    is_executable: bool = False
    attrs: dict[str, str] = field(default_factory=dict)
    node_ids: list[str] = field(default_factory=list)  # every node, nested ones included
    flow_ids: list[str] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    extensions: list[ExtensionElement] = field(default_factory=list)


@dataclass
class Participant:
    id: str
    name: str | None = None
    process_ref: str | None = None


@dataclass
class MessageFlow:
    id: str
    source: str
    target: str
    name: str | None = None
    message_ref: str | None = None


@dataclass
class Collaboration:
    id: str
    name: str | None = None
    participants: list[Participant] = field(default_factory=list)
    message_flows: list[MessageFlow] = field(default_factory=list)


@dataclass
class RootDef:
    """error, message, signal, escalation, itemDefinition, dataStore ..."""

    id: str
    type: str
    name: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class OtherElement:
    """Data objects, data store references, artifacts: kept so diffs and refs can see them."""

    id: str
    type: str
    parent: str = ""
    name: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class ExtensionSite:
    """Where an ``extensionElements`` block sits: on which kind of BPMN element (``serviceTask``,
    ``sequenceFlow``, ``multiInstanceLoopCharacteristics``, ``definitions`` ...), and the id of
    that element or, when it has none, of its nearest ancestor with one."""

    type: str
    owner: str | None
    extensions: list[ExtensionElement] = field(default_factory=list)


@dataclass
class Definitions:
    """One parsed BPMN file. ``tree`` is the lxml tree everything was read from."""

    id: str | None = None
    target_namespace: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    collaborations: dict[str, Collaboration] = field(default_factory=dict)
    nodes: dict[str, FlowNode] = field(default_factory=dict)
    flows: dict[str, SequenceFlow] = field(default_factory=dict)
    roots: dict[str, RootDef] = field(default_factory=dict)
    others: dict[str, OtherElement] = field(default_factory=dict)
    lanes: dict[str, Lane] = field(default_factory=dict)
    di_shapes: dict[str, str] = field(default_factory=dict)  # bpmnElement -> shape id
    di_edges: dict[str, str] = field(default_factory=dict)  # bpmnElement -> edge id
    has_diagram: bool = False
    duplicate_ids: list[str] = field(default_factory=list)
    element_ids: set[str] = field(default_factory=set)  # every id on a BPMN-namespace element
    extension_sites: list[ExtensionSite] = field(default_factory=list)  # every extensionElements block
    dialect: str = "bpmn"  # "camunda7" | "camunda8" | "bpmn": which engine extensions the file uses
    source: str | None = None
    tree: Any = field(default=None, repr=False, compare=False)

    # ---- lookups -------------------------------------------------------------------------
    def all_ids(self) -> set[str]:
        ids: set[str] = set(self.processes) | set(self.collaborations) | set(self.nodes)
        ids |= set(self.flows) | set(self.roots) | set(self.others) | set(self.lanes)
        for c in self.collaborations.values():
            ids |= {p.id for p in c.participants} | {m.id for m in c.message_flows}
        return ids

    def children(self, scope: str) -> list[FlowNode]:
        """The nodes directly inside a process or sub-process."""
        return [n for n in self.nodes.values() if n.parent == scope]

    def flows_in(self, scope: str) -> list[SequenceFlow]:
        return [f for f in self.flows.values() if f.parent == scope]

    def outgoing(self, node_id: str) -> list[SequenceFlow]:
        return [f for f in self.flows.values() if f.source == node_id]

    def incoming(self, node_id: str) -> list[SequenceFlow]:
        return [f for f in self.flows.values() if f.target == node_id]

    def boundaries(self, node_id: str) -> list[FlowNode]:
        return [n for n in self.nodes.values() if n.attached_to == node_id]

    def scopes(self) -> list[str]:
        """Every process and sub-process id: the places sequence flows live in."""
        return list(self.processes) + [n.id for n in self.nodes.values() if n.is_subprocess]

    def summary(self) -> dict[str, Any]:
        return {
            "processes": list(self.processes),
            "nodes": len(self.nodes),
            "flows": len(self.flows),
            "collaborations": list(self.collaborations),
        }
