"""Generate BPMN that puts every Camunda 7 extension element in every place it may appear.

Driven by the Camunda 7 moddle descriptor (npm ``camunda-bpmn-moddle``,
``resources/camunda.json``: ``meta.allowedIn`` names the BPMN types, resolved here to concrete
element names through bpmn-moddle's ``bpmn.json`` type hierarchy), so a new placement in the
descriptor becomes a new generated file. Vendor extensions that Camunda does not know
(Signavio, Bizagi, Zeebe) are put where no tool expects them. Each generated document is
small, executable Camunda 7 BPMN: start -> host -> end, the host carrying the extension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIWG = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"
NODE_MODULES = REPO / "tools" / "node" / "node_modules"
CAMUNDA_JSON = NODE_MODULES / "camunda-bpmn-moddle" / "resources" / "camunda.json"
BPMN_JSON = NODE_MODULES / "bpmn-moddle" / "resources" / "bpmn" / "json" / "bpmn.json"

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:signavio="http://www.signavio.com" xmlns:bizagi="http://www.bizagi.com/bpmn20" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"'
)

# minimal valid content per Camunda element (tag alias: lowerCamelCase)
CONTENT = {
    "properties": '<camunda:properties><camunda:property name="k" value="v"/></camunda:properties>',
    "in": '<camunda:in source="a" target="b"/>',
    "out": '<camunda:out source="b" target="a"/>',
    "connector": (
        "<camunda:connector><camunda:connectorId>http-connector</camunda:connectorId>"
        '<camunda:inputOutput><camunda:inputParameter name="url">http://127.0.0.1/</camunda:inputParameter>'
        "</camunda:inputOutput></camunda:connector>"
    ),
    "inputOutput": (
        '<camunda:inputOutput><camunda:inputParameter name="x">${1}</camunda:inputParameter>'
        '<camunda:outputParameter name="y">${x}</camunda:outputParameter></camunda:inputOutput>'
    ),
    "field": '<camunda:field name="text" stringValue="hello"/>',
    "failedJobRetryTimeCycle": "<camunda:failedJobRetryTimeCycle>R3/PT10M</camunda:failedJobRetryTimeCycle>",
    "executionListener": (
        '<camunda:executionListener class="org.example.Listener" event="{event}">'
        '<camunda:field name="f" stringValue="v"/></camunda:executionListener>'
    ),
    "taskListener": '<camunda:taskListener delegateExpression="${listener}" event="create"/>',
    "formData": '<camunda:formData><camunda:formField id="amount" label="Amount" type="long"/></camunda:formData>',
    "formProperty": '<camunda:formProperty id="amount" type="long"/>',
    "errorEventDefinition": ('<camunda:errorEventDefinition id="ced" errorRef="err" expression="${false}"/>'),
    "potentialStarter": None,  # allowed nowhere in particular (resource assignment); not generated
}
VENDOR = (
    '<signavio:signavioMetaData metaKey="bgcolor" metaValue="#ffffcc"/>',
    '<bizagi:BizagiExtensions><bizagi:BizagiProperty name="runtime" value="x"/></bizagi:BizagiExtensions>',
    '<zeebe:taskDefinition type="work" retries="3"/>',
    '<unknown:thing xmlns:unknown="urn:nobody"><unknown:child a="1">text</unknown:child></unknown:thing>',
)


@dataclass(frozen=True)
class Generated:
    name: str  # file stem: <element>-in-<host>
    extension: str  # Camunda local name, or "vendor"
    host: str  # BPMN element local name carrying the extensionElements
    xml: str


def _lower_first(name: str) -> str:
    return name[0].lower() + name[1:]


def placements() -> dict[str, set[str]]:
    """Camunda element (tag alias) -> concrete BPMN element names it is allowed in, from the
    descriptors."""
    bpmn = {t["name"]: t for t in json.loads(BPMN_JSON.read_text())["types"]}
    camunda = json.loads(CAMUNDA_JSON.read_text())["types"]
    camunda_by_name = {t["name"]: t for t in camunda}

    def supers(name: str) -> set[str]:
        out, todo = set(), [name]
        while todo:
            n = todo.pop()
            for s in bpmn.get(n, {}).get("superClass", []):
                if s not in out:
                    out.add(s)
                    todo.append(s)
        return out

    concrete = {n for n, t in bpmn.items() if not t.get("isAbstract")}

    def resolve(ref: str) -> set[str]:
        prefix, name = ref.split(":", 1)
        if prefix == "bpmn":
            return {c for c in concrete if c == name or name in supers(c)}
        mixin = camunda_by_name.get(name)
        if mixin is None:
            return set()
        found: set[str] = set()
        if not mixin.get("extends"):  # a Camunda element itself (camunda:Connector, camunda:TaskListener)
            return {name}
        for ext in mixin["extends"]:  # a mixin over BPMN types (camunda:ServiceTaskLike)
            found |= resolve(ext)
        return found

    out: dict[str, set[str]] = {}
    for t in camunda:
        allowed = (t.get("meta") or {}).get("allowedIn")
        if not allowed:
            continue
        tag = _lower_first(t["name"])
        if allowed == ["*"]:
            out[tag] = {"*"}
            continue
        names: set[str] = set()
        for ref in allowed:
            names |= resolve(ref)
        out[tag] = {_lower_first(n) for n in names}
    return out


def _ext(content: str) -> str:
    return f"<bpmn:extensionElements>{content}</bpmn:extensionElements>"


def _doc(body: str, process_ext: str = "", defs_ext: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NS} id="defs" targetNamespace="urn:gen">'
        f'{defs_ext}<bpmn:error id="err" errorCode="E1"/><bpmn:signal id="sig" name="sig"/>'
        f'<bpmn:message id="msg" name="msg"/>'
        f'<bpmn:process id="gen" isExecutable="true" camunda:historyTimeToLive="P1D">{process_ext}'
        f"{body}</bpmn:process></bpmn:definitions>\n"
    )


def _chain(host_xml: str, host_id: str = "h") -> str:
    return (
        f'<bpmn:startEvent id="s"/>{host_xml}<bpmn:endEvent id="e"/>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="{host_id}"/>'
        f'<bpmn:sequenceFlow id="f2" sourceRef="{host_id}" targetRef="e"/>'
    )


def host_document(host: str, ext: str) -> str | None:
    """A small executable process whose ``host`` element carries ``ext`` (extensionElements
    content); None for hosts this generator cannot build."""
    e = _ext(ext)
    tasks = {
        "task",
        "serviceTask",
        "userTask",
        "manualTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
    }
    if host in tasks:
        attrs = {
            "serviceTask": ' camunda:type="external" camunda:topic="gen"',
            "sendTask": ' camunda:expression="${1}"',
            "businessRuleTask": ' camunda:expression="${1}"',
            "scriptTask": ' scriptFormat="javascript"',
        }.get(host, "")
        inner = "<bpmn:script>1</bpmn:script>" if host == "scriptTask" else ""
        return _doc(_chain(f'<bpmn:{host} id="h"{attrs}>{e}{inner}</bpmn:{host}>'))
    if host in ("subProcess", "transaction", "adHocSubProcess"):
        inner = (
            '<bpmn:task id="i"/>'
            if host == "adHocSubProcess"
            else '<bpmn:startEvent id="is"/><bpmn:endEvent id="ie"/><bpmn:sequenceFlow id="if" sourceRef="is" targetRef="ie"/>'
        )
        return _doc(_chain(f'<bpmn:{host} id="h">{e}{inner}</bpmn:{host}>'))
    if host == "callActivity":
        return _doc(_chain(f'<bpmn:callActivity id="h" calledElement="gen">{e}</bpmn:callActivity>'))
    if host in ("exclusiveGateway", "inclusiveGateway", "parallelGateway", "complexGateway"):
        return _doc(_chain(f'<bpmn:{host} id="h">{e}</bpmn:{host}>'))
    if host == "eventBasedGateway":
        return _doc(
            '<bpmn:startEvent id="s"/><bpmn:eventBasedGateway id="h">' + e + "</bpmn:eventBasedGateway>"
            '<bpmn:intermediateCatchEvent id="c"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M'
            '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent><bpmn:endEvent id="e"/>'
            '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="h"/><bpmn:sequenceFlow id="f2" sourceRef="h" '
            'targetRef="c"/><bpmn:sequenceFlow id="f3" sourceRef="c" targetRef="e"/>'
        )
    if host == "startEvent":
        return _doc(
            f'<bpmn:startEvent id="h">{e}</bpmn:startEvent><bpmn:endEvent id="e"/>'
            '<bpmn:sequenceFlow id="f2" sourceRef="h" targetRef="e"/>'
        )
    if host == "endEvent":
        return _doc(
            f'<bpmn:startEvent id="s"/><bpmn:endEvent id="h">{e}</bpmn:endEvent>'
            '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="h"/>'
        )
    if host == "intermediateCatchEvent":
        return _doc(
            _chain(
                f'<bpmn:intermediateCatchEvent id="h">{e}<bpmn:timerEventDefinition><bpmn:timeDuration>'
                "PT1M</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
            )
        )
    if host == "intermediateThrowEvent":  # (implicitThrowEvent is a moddle-internal type, never in files)
        return _doc(_chain(f'<bpmn:intermediateThrowEvent id="h">{e}</bpmn:intermediateThrowEvent>'))
    if host == "boundaryEvent":
        return _doc(
            _chain('<bpmn:task id="h"/>') + f'<bpmn:boundaryEvent id="b" attachedToRef="h">{e}'
            "<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
            '</bpmn:boundaryEvent><bpmn:endEvent id="be"/><bpmn:sequenceFlow id="bf" sourceRef="b" targetRef="be"/>'
        )
    if host == "sequenceFlow":
        return _doc(
            '<bpmn:startEvent id="s"/><bpmn:endEvent id="e"/>'
            f'<bpmn:sequenceFlow id="h" sourceRef="s" targetRef="e">{e}</bpmn:sequenceFlow>'
        )
    if host == "process":
        return _doc(_chain('<bpmn:task id="h"/>'), process_ext=e)
    if host == "definitions":
        return _doc(_chain('<bpmn:task id="h"/>'), defs_ext=e)
    if host == "multiInstanceLoopCharacteristics":
        return _doc(
            _chain(
                '<bpmn:task id="h"><bpmn:multiInstanceLoopCharacteristics isSequential="true">'
                f"{e}<bpmn:loopCardinality>2</bpmn:loopCardinality>"
                "</bpmn:multiInstanceLoopCharacteristics></bpmn:task>"
            )
        )
    if host == "messageEventDefinition":
        return _doc(
            _chain(
                f'<bpmn:intermediateThrowEvent id="h"><bpmn:messageEventDefinition messageRef="msg" '
                f'camunda:type="external" camunda:topic="gen">{e}</bpmn:messageEventDefinition>'
                "</bpmn:intermediateThrowEvent>"
            )
        )
    if host == "signalEventDefinition":
        return _doc(
            _chain(
                f'<bpmn:intermediateThrowEvent id="h"><bpmn:signalEventDefinition signalRef="sig">{e}'
                "</bpmn:signalEventDefinition></bpmn:intermediateThrowEvent>"
            )
        )
    return None


def generate() -> list[Generated]:
    """Every Camunda extension element in every host the descriptor allows (that this
    generator can build), plus vendor extensions in hosts where nobody expects them."""
    out: list[Generated] = []
    for tag, hosts in sorted(placements().items()):
        content = CONTENT.get(tag)
        if content is None:
            continue
        for host in sorted(
            hosts
            if hosts != {"*"}
            else {"task", "sequenceFlow", "process", "exclusiveGateway", "startEvent", "boundaryEvent"}
        ):
            event = "take" if host == "sequenceFlow" else "start"
            xml = host_document(host, content.replace("{event}", event))
            if xml is not None:
                out.append(Generated(f"{tag}-in-{host}", tag, host, xml))
    for i, vendor in enumerate(VENDOR):
        for host in (
            "sequenceFlow",
            "exclusiveGateway",
            "boundaryEvent",
            "process",
            "definitions",
            "multiInstanceLoopCharacteristics",
            "signalEventDefinition",
        ):
            xml = host_document(host, vendor)
            if xml is not None:
                out.append(Generated(f"vendor{i}-in-{host}", "vendor", host, xml))
    return out


def write_all(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for g in generate():
        path = target / f"{g.name}.bpmn"
        path.write_text(g.xml, encoding="utf-8")
        paths.append(path)
    return paths


def corpus(generated_every: int = 1) -> list[tuple[str, bytes]]:
    """(name, bytes) of the MIWG reference files, DAS's own BPMN files and every
    ``generated_every``-th generated file (when the descriptors are installed)."""
    files = [(p.name, p.read_bytes()) for p in sorted(MIWG.glob("*.bpmn"))]
    files += [
        (str(p.relative_to(REPO)), p.read_bytes())
        for p in sorted(REPO.glob("**/*.bpmn"))
        if "node_modules" not in p.parts and ".git" not in p.parts and "build" not in p.parts
    ]
    if CAMUNDA_JSON.is_file():
        files += [(g.name, g.xml.encode()) for g in generate()[::generated_every]]
    return files
