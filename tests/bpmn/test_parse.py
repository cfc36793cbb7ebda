"""Parser: any vendor and prefix into the graph model, and back to XML without loss."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from needs import CORPUS, needs_corpus

from das.bpmn.parse import parse
from das.bpmn.write import to_bytes, write

MIWG = sorted(CORPUS.glob("*.bpmn")) if CORPUS.is_dir() else []

CAMUNDA = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root survives -->
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vendor="urn:vendor"
    id="defs" targetNamespace="http://example.com" vendor:stamp="42">
  <bpmn:error id="Err" name="Failure" errorCode="E_FAIL"/>
  <bpmn:message id="Msg" name="go"/>
  <bpmn:signal id="Sig" name="sig"/>
  <bpmn:collaboration id="Collab">
    <bpmn:participant id="Part" name="Pool" processRef="peo_demo"/>
  </bpmn:collaboration>
  <bpmn:process id="peo_demo" isExecutable="true" camunda:historyTimeToLive="P30D">
    <bpmn:extensionElements>
      <camunda:properties><camunda:property name="procos.kind" value="peo"/></camunda:properties>
    </bpmn:extensionElements>
    <bpmn:laneSet id="LS"><bpmn:lane id="L1" name="Lane"><bpmn:flowNodeRef>start</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>call</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:callActivity id="call" name="Run TDE" calledElement="tde_task_template" vendor:x="y">
      <bpmn:extensionElements>
        <camunda:in source="correlationId" target="correlationId"/>
        <camunda:in sourceExpression="${'probabilistic'}" target="mode"/>
        <camunda:out variables="all"/>
        <vendor:blob a="1"><vendor:inner>text</vendor:inner></vendor:blob>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="${items}" camunda:elementVariable="item"/>
    </bpmn:callActivity>
    <bpmn:boundaryEvent id="b1" attachedToRef="call"><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:errorEventDefinition id="ed1" errorRef="Err"/></bpmn:boundaryEvent>
    <bpmn:exclusiveGateway id="gw" default="f3"/>
    <bpmn:serviceTask id="svc" camunda:type="external" camunda:topic="adapter-x">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:inputParameter name="retries">3</camunda:inputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition id="t1">
      <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">PT5M</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:subProcess id="evsub" triggeredByEvent="true">
      <bpmn:startEvent id="evstart"><bpmn:messageEventDefinition messageRef="Msg"/></bpmn:startEvent>
      <bpmn:endEvent id="evend"/>
      <bpmn:sequenceFlow id="fe" sourceRef="evstart" targetRef="evend"/>
    </bpmn:subProcess>
    <bpmn:endEvent id="end"/>
    <bpmn:endEvent id="errEnd"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="gw"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end"/>
    <bpmn:sequenceFlow id="f5" sourceRef="gw" targetRef="svc">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${x &gt; 1}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f6" sourceRef="svc" targetRef="wait"/>
    <bpmn:sequenceFlow id="f7" sourceRef="wait" targetRef="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="b1" targetRef="errEnd"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="D"><bpmndi:BPMNPlane id="P" bpmnElement="Collab">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="1" y="2" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="1" y="2"/><di:waypoint x="3" y="4"/></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>"""


def test_camunda_file_reads_into_model() -> None:
    d = parse(CAMUNDA)
    assert list(d.processes) == ["peo_demo"]
    p = d.processes["peo_demo"]
    assert p.is_executable and p.properties == {"procos.kind": "peo"}
    assert p.attrs["camunda:historyTimeToLive"] == "P30D"
    call = d.nodes["call"]
    assert call.type == "callActivity" and call.called_element == "tde_task_template"
    assert call.lane == "L1"
    assert [(io.kind, io.source, io.target) for io in call.io] == [
        ("in", "correlationId", "correlationId"),
        ("in", None, "mode"),
        ("out", None, None),
    ]
    assert call.io[1].source_expression == "${'probabilistic'}"
    assert call.io[2].variables == "all"
    assert call.multi_instance is not None and call.multi_instance.attrs["camunda:collection"] == "${items}"
    assert call.attrs["{urn:vendor}x"] == "y"
    assert any(e.tag == "{urn:vendor}blob" and e.children[0].text == "text" for e in call.extensions)
    b1 = d.nodes["b1"]
    assert b1.attached_to == "call" and b1.event_definitions[0].kind == "error"
    assert b1.event_definitions[0].ref == "Err"
    assert d.nodes["gw"].default == "f3"
    assert d.nodes["svc"].is_external_task and d.nodes["svc"].input_parameters == {"retries": "3"}
    assert d.nodes["wait"].event_definitions[0].timer == {"timeDuration": "PT5M"}
    assert d.nodes["evsub"].triggered_by_event and d.nodes["evstart"].parent == "evsub"
    assert d.flows["fe"].parent == "evsub"
    assert d.flows["f5"].condition == "${x > 1}"
    assert d.roots["Err"].type == "error" and d.roots["Err"].attrs["errorCode"] == "E_FAIL"
    assert d.collaborations["Collab"].participants[0].process_ref == "peo_demo"
    assert d.di_shapes == {"start": "start_di"} and d.di_edges == {"f1": "f1_di"}
    assert d.dialect == "camunda7"


def test_prefix_does_not_matter() -> None:
    """The same document under three prefixes (bpmn:, semantic:, default namespace) reads the same."""
    semantic = CAMUNDA.replace(b"bpmn:", b"semantic:").replace(b"xmlns:bpmn=", b"xmlns:semantic=")
    default = CAMUNDA.replace(b"<bpmn:", b"<").replace(b"</bpmn:", b"</").replace(b"xmlns:bpmn=", b"xmlns=")
    models = [parse(x) for x in (CAMUNDA, semantic, default)]
    for mdl in models[1:]:
        assert set(mdl.nodes) == set(models[0].nodes)
        assert {k: (f.source, f.target, f.condition) for k, f in mdl.flows.items()} == {
            k: (f.source, f.target, f.condition) for k, f in models[0].flows.items()
        }


def _canonical(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data).getroottree(), method="c14n2")


def _inventory(data: bytes) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    root = etree.fromstring(data)
    return [(el.tag, tuple(sorted(el.attrib.items()))) for el in root.iter() if isinstance(el.tag, str)]


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    d = parse(CAMUNDA)
    out = write(d, tmp_path / "out.bpmn")
    data = out.read_bytes()
    assert _canonical(data) == _canonical(CAMUNDA)
    assert b"a comment before the root survives" in data
    assert _inventory(data) == _inventory(CAMUNDA)


@needs_corpus
@pytest.mark.parametrize("path", MIWG, ids=[p.name for p in MIWG])
def test_miwg_parses_and_round_trips(path: Path) -> None:
    original = path.read_bytes()
    d = parse(path)
    assert d.processes or d.collaborations, "every MIWG file has a process or collaboration"
    data = to_bytes(d)
    # every element and every attribute (extension attributes and BPMN DI included) survives
    assert _inventory(data) == _inventory(original)
    assert _canonical(data) == _canonical(original)
    again = parse(data)
    assert set(again.nodes) == set(d.nodes) and set(again.flows) == set(d.flows)
    assert again.di_shapes == d.di_shapes and again.di_edges == d.di_edges


@needs_corpus
def test_miwg_models_are_not_empty() -> None:
    total_nodes = sum(len(parse(p).nodes) for p in MIWG)
    assert total_nodes > 100
