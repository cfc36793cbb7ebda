"""Reference processes: up to date with their sources, valid, and simulating to an end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from das.bpmn.ns import WRITE_NSMAP as NS
from das.bpmn.simulate import simulate_file
from das.bpmn.validate import validate_files

REPO = Path(__file__).resolve().parents[2]
PROCESSES = sorted((REPO / "processes").glob("*.bpmn"))
C = f"{{{NS['camunda']}}}"
B = f"{{{NS['bpmn']}}}"


def test_reference_set_is_complete_and_in_sync() -> None:
    assert {p.stem for p in PROCESSES} >= {
        "tde_task_template",
        "peo_example",
        "pdo_router",
        "peo_team_select",
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "processes" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr


def test_reference_processes_validate_together() -> None:
    for report in validate_files(PROCESSES):
        assert report.valid, [f for f in report.findings if f.severity == "error"]


@pytest.mark.parametrize("path", PROCESSES, ids=lambda p: p.name)
def test_reference_processes_simulate(path: Path) -> None:
    res = simulate_file(path, runs=40, seed=3)
    assert res["completed"] == 40 and res["stuck"] == []
    assert res["ends"].get("end", 0) > 0
    assert res["coverage"] >= 0.75


def _ids(path: Path) -> dict[str, etree._Element]:
    root = etree.parse(str(path)).getroot()
    return {el.get("id"): el for el in root.iter() if isinstance(el.tag, str) and el.get("id")}


def test_peo_example_contract() -> None:
    ids = _ids(REPO / "processes" / "peo_example.bpmn")
    call = ids["call_tde"]
    assert call.tag == f"{B}callActivity" and call.get("calledElement") == "tde_task_template"
    ins = {(i.get("source"), i.get("target")) for i in call.iter(f"{C}in")}
    outs = {(o.get("source"), o.get("target")) for o in call.iter(f"{C}out")}
    assert {("correlationId", "correlationId"), ("taskSpec", "taskSpec")} <= ins
    assert {("tdeResult", "tdeResult"), ("tdeStatus", "tdeStatus")} <= outs
    guard = [
        el
        for el in ids.values()
        if el.get("attachedToRef") == "call_tde"
        and el.find(f"{B}errorEventDefinition") is not None
        and el.find(f"{B}errorEventDefinition").get("errorRef") == "Error_DAS_GUARDRAIL"
    ]
    assert guard and "end_guardrail" in ids
    flows = [el for el in ids.values() if el.tag == f"{B}sequenceFlow"]
    assert any(
        f.get("sourceRef") == guard[0].get("id") and f.get("targetRef") == "end_guardrail" for f in flows
    )
    fan = ids["fan_out"].find(f"{B}multiInstanceLoopCharacteristics")
    assert fan.get(f"{C}collection") == "items"
    # the simple path: succeeded, no review, no fan-out -> end
    res = simulate_file(
        REPO / "processes" / "peo_example.bpmn",
        runs=5,
        mocks={
            "$start": {"fanout": False, "needsReview": False},
            "tde_task_template": {"tdeStatus": "succeeded", "fanout": False, "needsReview": False},
        },
    )
    assert res["ends"] == {"end": 5}
    res = simulate_file(
        REPO / "processes" / "peo_example.bpmn", runs=3, mocks={"call_tde": {"error": "DAS_GUARDRAIL"}}
    )
    assert res["ends"] == {"end_guardrail": 3}


def test_tde_template_contract() -> None:
    ids = _ids(REPO / "processes" / "tde_task_template.bpmn")
    prob = ids["probabilistic_tde"]
    assert prob.get(f"{C}type") == "external" and prob.get(f"{C}topic") == "das-tde-probabilistic"
    codes = set()
    for el in ids.values():
        if el.get("attachedToRef") == "probabilistic_tde":
            ed = el.find(f"{B}errorEventDefinition")
            if ed is not None:
                codes.add(ids[ed.get("errorRef")].get("errorCode"))
    assert codes == {"DAS_GUARDRAIL", "DAS_INVALID_OUTPUT", "DAS_POLICY_DENIED"}
    assert ids["mode_gateway_split"].get("default")  # a choice step "mode_gateway" compiles to _split/_join


def test_team_select_routes_on_decision() -> None:
    ids = _ids(REPO / "processes" / "peo_team_select.bpmn")
    assert ids["select_next"].get(f"{C}topic") == "das-peo-select"
    res = simulate_file(
        REPO / "processes" / "peo_team_select.bpmn",
        runs=3,
        mocks={
            "das-peo-select": {"nextTaskType": "classify", "decision": "{}"},
            "tde_task_template": {"tdeStatus": "succeeded"},
        },
    )
    assert res["ends"] == {"end": 3} and "run_classify" not in res["unreached"]
