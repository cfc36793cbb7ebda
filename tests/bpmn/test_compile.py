"""Compiler: every authoring feature becomes Camunda 7 XML with a shape or edge per element."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from pydantic import ValidationError

from das.bpmn import layout as L
from das.bpmn.authoring import authoring_json_schema, parse_authoring
from das.bpmn.compile import compile_process, compile_to_xml
from das.bpmn.ns import WRITE_NSMAP as NS
from das.bpmn.ns import local as _local
from das.bpmn.validate import validate

HERE = Path(__file__).parent
ALL = json.loads((HERE / "authoring_all_features.json").read_text())
FLOW_NODE_TAGS = {
    "startEvent",
    "endEvent",
    "serviceTask",
    "userTask",
    "callActivity",
    "subProcess",
    "exclusiveGateway",
    "inclusiveGateway",
    "parallelGateway",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
}


def _tree(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def diagram_geometry(root: etree._Element) -> tuple[dict, dict, dict, dict]:
    """Shapes, containers, attachments and edges read back from the XML (not from the compiler)."""
    shapes = {}
    for s in root.iter(f"{{{NS['bpmndi']}}}BPMNShape"):
        b = s.find(f"{{{NS['dc']}}}Bounds")
        shapes[s.get("bpmnElement")] = L.Box(*(float(b.get(k)) for k in ("x", "y", "width", "height")))
    containers, attached = {}, {}
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el) in FLOW_NODE_TAGS:
            parent = el.getparent()
            containers[el.get("id")] = parent.get("id") if _local(parent) == "subProcess" else None
            if el.get("attachedToRef"):
                attached[el.get("id")] = el.get("attachedToRef")
    refs = {
        el.get("id"): (el.get("sourceRef"), el.get("targetRef"))
        for el in root.iter()
        if isinstance(el.tag, str) and _local(el) in ("sequenceFlow", "association")
    }
    edges = {}
    for e in root.iter(f"{{{NS['bpmndi']}}}BPMNEdge"):
        pts = [(float(p.get("x")), float(p.get("y"))) for p in e.iter(f"{{{NS['di']}}}waypoint")]
        src, tgt = refs[e.get("bpmnElement")]
        edges[e.get("bpmnElement")] = (src, tgt, pts)
    return shapes, containers, attached, edges


def assert_complete_diagram(xml: str) -> None:
    root = _tree(xml)
    shapes, containers, attached, edges = diagram_geometry(root)
    nodes = [el.get("id") for el in root.iter() if isinstance(el.tag, str) and _local(el) in FLOW_NODE_TAGS]
    flows = [
        el.get("id")
        for el in root.iter()
        if isinstance(el.tag, str) and _local(el) in ("sequenceFlow", "association")
    ]
    assert nodes and flows
    assert set(nodes) <= set(shapes), f"no shape: {set(nodes) - set(shapes)}"
    assert set(flows) == set(edges), f"no edge: {set(flows) - set(edges)}"
    assert (
        L.check_layout({k: v for k, v in shapes.items() if k in containers}, containers, attached, edges)
        == []
    )


def test_all_features_compile_to_valid_camunda_xml() -> None:
    res = compile_process(ALL)
    assert res.findings == []
    report = validate(res.xml.encode(), name="all.bpmn")
    errors = [f for f in report.findings if f.severity == "error"]
    assert errors == [], errors
    assert not [f for f in report.findings if f.rule.startswith("xsd")]
    assert_complete_diagram(res.xml)


def test_camunda_dialect_details() -> None:
    root = _tree(compile_to_xml(ALL))
    c = f"{{{NS['camunda']}}}"
    proc = root.find(f"{{{NS['bpmn']}}}process")
    assert proc.get("isExecutable") == "true" and proc.get(f"{c}historyTimeToLive") == "180"
    by_id = {el.get("id"): el for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    s1 = by_id["s1"]
    assert s1.get(f"{c}type") == "external" and s1.get(f"{c}topic") == "das-tde-probabilistic"
    params = {p.get("name"): p.text for p in s1.iter(f"{c}inputParameter")}
    assert (
        params["taskType"] == "analyse"
        and params["mode"] == "probabilistic"
        and params["policy"] == "default"
    )
    assert by_id["s2"].get(f"{c}topic") == "das-tde-fetch"  # deterministic TDE: per-type topic
    mi = by_id["s2"].find(f"{{{NS['bpmn']}}}multiInstanceLoopCharacteristics")
    assert mi.get(f"{c}collection") == "items" and mi.get(f"{c}elementVariable") == "item"
    call = by_id["s4"]
    assert call.get("calledElement") == "tde_task_template" and call.get(f"{c}asyncBefore") == "true"
    ins = [(i.get("source"), i.get("target")) for i in call.iter(f"{c}in")]
    assert ("correlationId", "correlationId") in ins and ("taskSpec", "taskSpec") in ins
    assert [(o.get("source"), o.get("target")) for o in call.iter(f"{c}out")] == [("tdeStatus", "tdeStatus")]
    codes = {e.get("errorCode") for e in root.iter(f"{{{NS['bpmn']}}}error")}
    assert {"DAS_GUARDRAIL", "DAS_INVALID_OUTPUT", "DAS_POLICY_DENIED", "E2"} <= codes
    assert by_id["end_guardrail"].tag == f"{{{NS['bpmn']}}}endEvent"
    # gateways: conditions are tFormalExpression JUEL, every split has a default flow
    for gw in ("s5_split", "s6_split", "s8_again"):
        assert by_id[gw].get("default") in by_id
    conds = list(root.iter(f"{{{NS['bpmn']}}}conditionExpression"))
    assert conds and all(ce.get(f"{{{NS['xsi']}}}type") == "bpmn:tFormalExpression" for ce in conds)
    assert all(ce.text.startswith("${") and ce.text.endswith("}") for ce in conds)
    assert "execution.getVariable('tdeStatus') == 'failed'" in by_id["f_s5_split_s5_b1_s1"].findtext(
        f"{{{NS['bpmn']}}}conditionExpression"
    )
    # loop: bounded by a counter kept by take listeners
    back = by_id["f_s8_again_s8_loop"]
    assert "das_loop_s8') < 3" in back.findtext(f"{{{NS['bpmn']}}}conditionExpression")
    assert back.find(f".//{c}executionListener").get("event") == "take"
    # compensation: boundary + association to an isForCompensation external task
    assert by_id["s1_compensate"].get("isForCompensation") == "true"
    assert by_id["s1_comp"].find(f"{{{NS['bpmn']}}}compensateEventDefinition") is not None
    # timers and messages
    assert by_id["s1_timeout"].findtext(f".//{{{NS['bpmn']}}}timeDuration") == "PT30M"
    assert by_id["s7_b1_s1"].find(f"{{{NS['bpmn']}}}messageEventDefinition").get("messageRef") == "Message_go"
    # lanes: one pool, three lanes, every top-level node in exactly one lane
    lanes = list(root.iter(f"{{{NS['bpmn']}}}lane"))
    assert [ln.get("name") for ln in lanes] == ["DAS", "Adapters", "Humans"]
    refs = [r.text for ln in lanes for r in ln.iter(f"{{{NS['bpmn']}}}flowNodeRef")]
    top = [el.get("id") for el in proc if _local(el) in FLOW_NODE_TAGS]
    assert sorted(refs) == sorted(top)
    shapes = {s.get("bpmnElement"): s for s in root.iter(f"{{{NS['bpmndi']}}}BPMNShape")}
    assert shapes["s9"].get("isExpanded") == "true"
    assert "Participant_all_features" in shapes and "Lane_DAS" in shapes


def test_compile_is_deterministic_and_ids_follow_paths() -> None:
    a = compile_to_xml(ALL)
    b = compile_to_xml(json.dumps(ALL))
    assert a == b
    doc = {
        "key": "p",
        "name": "P",
        "steps": [
            {"type": "external", "name": "a", "topic": "t", "id": "same"},
            {"type": "external", "name": "b", "topic": "t", "id": "same"},
            {
                "type": "parallel",
                "name": "par",
                "branches": [
                    {"steps": [{"type": "external", "name": "x", "topic": "t"}]},
                    {"steps": [{"type": "user", "name": "y"}]},
                ],
            },
        ],
    }
    root = _tree(compile_to_xml(doc))
    ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str)}
    assert {"same", "same_2", "s3_split", "s3_join", "s3_b1_s1", "s3_b2_s1"} <= ids


@pytest.mark.parametrize(
    "step",
    [
        {"type": "tde", "name": "t", "task_type": "x", "mode": "deterministic"},
        {"type": "external", "name": "e", "topic": "t", "inputs": [{"name": "k", "value": "${a == 1}"}]},
        {"type": "user", "name": "u", "assignee": "demo", "candidate_groups": ["g"]},
        {"type": "call", "name": "c", "process_key": "other"},
        {"type": "wait", "name": "w", "on": {"timer": "P1D"}},
        {"type": "wait", "name": "m", "on": {"message": "ping"}},
        {
            "type": "choice",
            "name": "c",
            "kind": "inclusive",
            "branches": [{"condition": "${execution.getVariable('a') > 2}", "steps": []}],
        },
        {
            "type": "parallel",
            "name": "p",
            "branches": [
                {"steps": [{"type": "user", "name": "a"}]},
                {"steps": [{"type": "user", "name": "b"}]},
            ],
        },
        {
            "type": "loop",
            "name": "l",
            "condition": {"variable": "again", "value": True},
            "steps": [{"type": "user", "name": "a"}],
        },
        {
            "type": "subprocess",
            "name": "s",
            "steps": [{"type": "user", "name": "a"}],
            "timeout": {"duration": "PT1H", "then": "continue", "steps": [{"type": "user", "name": "late"}]},
        },
        {
            "type": "external",
            "name": "e",
            "topic": "t",
            "multi_instance": {"collection": "xs", "element_variable": "x", "mode": "sequential"},
            "compensation": {"topic": "undo"},
            "on_error": [{"error_code": "E", "then": "continue", "compensate": True}],
        },
    ],
)
def test_each_feature_alone_is_complete_and_valid(step: dict) -> None:
    res = compile_process({"key": "one", "name": "One", "steps": [step]})
    assert res.findings == []
    assert_complete_diagram(res.xml)
    report = validate(res.xml.encode(), name="one.bpmn")
    assert [f for f in report.findings if f.severity == "error"] == []


def test_schema_is_bounded() -> None:
    schema = authoring_json_schema()
    defs = schema["$defs"]
    assert schema["properties"]["steps"]["maxItems"] > 0
    # no recursion: a level-n model only references level n+1 (or level-free leaves)
    for name, body in defs.items():
        level = name[-1] if name[-1].isdigit() else None
        for ref in _refs(body):
            target = ref.rsplit("/", 1)[-1]
            if level and target[-1].isdigit():
                assert int(target[-1]) >= int(level), (name, target)
    assert "ChoiceStep3" not in defs and "LoopStep3" not in defs and "TdeStep3" in defs
    text = json.dumps(schema)
    assert '"maxLength"' in text and '"maxItems"' in text and '"minLength"' in text


def _refs(node: object) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                out += _refs(v)
    elif isinstance(node, list):
        for v in node:
            out += _refs(v)
    return out


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "p", "name": "P", "steps": []},
        {"key": "p", "name": "P", "steps": [{"type": "goto", "name": "x"}]},
        {
            "key": "p",
            "name": "P",
            "steps": [{"type": "choice", "name": "c", "branches": [{"condition": "${a ==}", "steps": []}]}],
        },
        {"key": "p", "name": "P", "steps": [{"type": "wait", "name": "w", "on": {"timer": "5 minutes"}}]},
        {"key": "p", "name": "P", "steps": [{"type": "external", "name": "e", "topic": "t", "next": "s9"}]},
        # depth 4: a choice inside a loop inside a choice
        {
            "key": "p",
            "name": "P",
            "steps": [
                {
                    "type": "choice",
                    "name": "c",
                    "branches": [
                        {
                            "condition": {"variable": "a", "value": 1},
                            "steps": [
                                {
                                    "type": "loop",
                                    "name": "l",
                                    "condition": {"variable": "a", "value": 1},
                                    "steps": [
                                        {
                                            "type": "choice",
                                            "name": "c2",
                                            "branches": [
                                                {"condition": {"variable": "a", "value": 1}, "steps": []}
                                            ],
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    ],
)
def test_invalid_documents_are_rejected(bad: dict) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_authoring(bad)


def test_cli_compile_and_simulate(tmp_path: Path) -> None:
    from das.cli import cli

    out = tmp_path / "all.bpmn"
    runner = CliRunner()
    r = runner.invoke(
        cli,
        ["bpmn", "compile", str(HERE / "authoring_all_features.json"), "-o", str(out), "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["findings"] == []
    r = runner.invoke(cli, ["bpmn", "simulate", str(out), "--runs", "5", "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["completed"] == 5 and data["runs"] == 5
    bad = tmp_path / "bad.json"
    bad.write_text('{"key": "p"}')
    proc = subprocess.run(
        [sys.executable, "-m", "das", "bpmn", "compile", str(bad), "-o", str(tmp_path / "x.bpmn")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr and "schema error" in proc.stderr
