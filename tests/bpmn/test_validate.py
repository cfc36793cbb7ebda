"""Validator: XSD, references, structure; MIWG corpus without false errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from needs import CORPUS, needs_corpus

from das.bpmn.validate import validate, validate_files
from das.commands.bpmn import bpmn

MIWG = sorted(CORPUS.glob("*.bpmn")) if CORPUS.is_dir() else []

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  id="defs" targetNamespace="http://example.com">
"""


def doc(
    body: str,
    process_attrs: str = 'id="proc" isExecutable="true" camunda:historyTimeToLive="P30D"',
    roots: str = "",
) -> str:
    return f"{HEAD}{roots}<bpmn:process {process_attrs}>{body}</bpmn:process></bpmn:definitions>"


GOOD = doc("""
  <bpmn:startEvent id="s"/>
  <bpmn:userTask id="t" name="Review"/>
  <bpmn:exclusiveGateway id="g" default="f_no"/>
  <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
  <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
  <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="g"/>
  <bpmn:sequenceFlow id="f_yes" sourceRef="g" targetRef="e1">
    <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${approved}</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="f_no" sourceRef="g" targetRef="e2"/>
""")


def rules(text: str, **kw: object) -> dict[str, list]:
    report = validate(text, **kw)  # type: ignore[arg-type]
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append((f.severity, f.element))
    return out


def test_good_process_is_valid() -> None:
    report = validate(GOOD)
    assert report.valid, report.findings
    assert [f for f in report.findings if f.severity != "info"] == []


def test_xsd_catches_schema_errors() -> None:
    bad = GOOD.replace(
        '<bpmn:userTask id="t" name="Review"/>',
        '<bpmn:userTask id="t" bogus="1"><bpmn:nonsense/></bpmn:userTask>',
    )
    report = validate(bad)
    xsd = [f for f in report.findings if f.rule == "xsd"]
    assert xsd and not report.valid
    assert all(f.severity == "error" and "schema" in f.message for f in xsd)
    # a missing required attribute
    assert any(
        f.rule == "xsd" for f in validate(GOOD.replace(' targetNamespace="http://example.com"', "")).findings
    )


def test_dangling_references_are_errors() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/>
      <bpmn:serviceTask id="t" camunda:type="external" camunda:topic="x"/>
      <bpmn:boundaryEvent id="b" attachedToRef="nope"><bpmn:errorEventDefinition errorRef="NoErr"/></bpmn:boundaryEvent>
      <bpmn:boundaryEvent id="b2" attachedToRef="t"><bpmn:messageEventDefinition messageRef="NoMsg"/></bpmn:boundaryEvent>
      <bpmn:exclusiveGateway id="g" default="ghost"/>
      <bpmn:callActivity id="c"/>
      <bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="missing"/>
      <bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="g"/>
      <bpmn:sequenceFlow id="f4" sourceRef="g" targetRef="c"/>
      <bpmn:sequenceFlow id="f5" sourceRef="c" targetRef="e"/>
      <bpmn:sequenceFlow id="f6" sourceRef="b2" targetRef="e"/>
    """)
    r = rules(text)
    assert ("error", "f2") in r["ref.flow"]
    assert ("error", "b") in r["ref.attached-to"]
    assert {("error", "b"), ("error", "b2")} <= set(r["ref.event-definition"])
    assert ("error", "g") in r["ref.default"]
    assert ("error", "c") in r["ref.called-element"]
    report = validate(text)
    # every message says what is wrong, then (after ";") how to fix it
    assert all("; " in f.message for f in report.findings)


def test_flow_crossing_subprocess_boundary() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/>
      <bpmn:subProcess id="sp"><bpmn:startEvent id="ss"/><bpmn:endEvent id="se"/>
        <bpmn:sequenceFlow id="fi" sourceRef="ss" targetRef="se"/></bpmn:subProcess>
      <bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="sp"/>
      <bpmn:sequenceFlow id="f2" sourceRef="sp" targetRef="e"/>
      <bpmn:sequenceFlow id="fx" sourceRef="s" targetRef="se"/>
    """)
    assert ("error", "fx") in rules(text)["ref.flow-scope"]


def test_structure_unreachable_dead_end_and_conditions() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/>
      <bpmn:task id="orphan"/>
      <bpmn:task id="loop1"/><bpmn:task id="loop2"/>
      <bpmn:exclusiveGateway id="g"/>
      <bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
      <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="e"/>
      <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="loop1"/>
      <bpmn:sequenceFlow id="f4" sourceRef="loop1" targetRef="loop2"/>
      <bpmn:sequenceFlow id="f5" sourceRef="loop2" targetRef="loop1"/>
      <bpmn:sequenceFlow id="f6" sourceRef="orphan" targetRef="e"/>
    """)
    r = rules(text)
    assert ("error", "orphan") in r["structure.unreachable"]
    assert {("error", "loop1"), ("error", "loop2")} <= set(r["structure.no-end"])
    assert {("error", "f2"), ("error", "f3")} <= set(r["structure.gateway-condition"])
    msg = next(f.message for f in validate(text).findings if f.rule == "structure.gateway-condition")
    assert "conditionExpression" in msg and "default" in msg


def test_structure_is_a_warning_in_descriptive_models() -> None:
    text = doc(
        """
      <bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g"/><bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
      <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="e1"/>
      <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="e2"/>
    """,
        process_attrs='id="proc" isExecutable="false"',
    )
    report = validate(text)
    assert report.valid
    assert {f.severity for f in report.findings if f.rule == "structure.gateway-condition"} == {"warning"}


def test_parallel_join_after_exclusive_split_deadlocks() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="x" default="fb"/>
      <bpmn:task id="a"/><bpmn:task id="b"/><bpmn:parallelGateway id="j"/><bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>
      <bpmn:sequenceFlow id="fa" sourceRef="x" targetRef="a">
        <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${go}</bpmn:conditionExpression></bpmn:sequenceFlow>
      <bpmn:sequenceFlow id="fb" sourceRef="x" targetRef="b"/>
      <bpmn:sequenceFlow id="fa2" sourceRef="a" targetRef="j"/>
      <bpmn:sequenceFlow id="fb2" sourceRef="b" targetRef="j"/>
      <bpmn:sequenceFlow id="f9" sourceRef="j" targetRef="e"/>
    """)
    assert ("error", "j") in rules(text)["structure.parallel-balance"]
    fixed = text.replace('<bpmn:parallelGateway id="j"/>', '<bpmn:exclusiveGateway id="j"/>')
    assert "structure.parallel-balance" not in rules(fixed)


def test_exclusive_merge_of_parallel_branches_warns() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/><bpmn:parallelGateway id="p"/>
      <bpmn:task id="a"/><bpmn:task id="b"/><bpmn:exclusiveGateway id="m"/><bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="p"/>
      <bpmn:sequenceFlow id="fa" sourceRef="p" targetRef="a"/>
      <bpmn:sequenceFlow id="fb" sourceRef="p" targetRef="b"/>
      <bpmn:sequenceFlow id="fa2" sourceRef="a" targetRef="m"/>
      <bpmn:sequenceFlow id="fb2" sourceRef="b" targetRef="m"/>
      <bpmn:sequenceFlow id="f9" sourceRef="m" targetRef="e"/>
    """)
    assert ("warning", "m") in rules(text)["structure.parallel-balance"]


def test_duplicate_ids() -> None:
    text = GOOD.replace('<bpmn:endEvent id="e2"/>', '<bpmn:endEvent id="e2"/><bpmn:endEvent id="e1"/>')
    r = rules(text)
    assert ("error", "e1") in r["ref.duplicate-id"]


def test_link_events_connect() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/>
      <bpmn:intermediateThrowEvent id="lt"><bpmn:linkEventDefinition name="L"/></bpmn:intermediateThrowEvent>
      <bpmn:intermediateCatchEvent id="lc"><bpmn:linkEventDefinition name="L"/></bpmn:intermediateCatchEvent>
      <bpmn:endEvent id="e"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="lt"/>
      <bpmn:sequenceFlow id="f2" sourceRef="lc" targetRef="e"/>
    """)
    report = validate(text)
    assert report.valid, report.findings


@needs_corpus
@pytest.mark.parametrize("path", MIWG, ids=[p.name for p in MIWG])
def test_miwg_has_no_false_errors(path: Path) -> None:
    report = validate(path)
    assert [f for f in report.findings if f.rule == "xsd"] == []
    assert report.valid, [f for f in report.findings if f.severity == "error"]


@needs_corpus
def test_validate_files_together_and_cli_json() -> None:
    reports = validate_files(MIWG)
    assert len(reports) == len(MIWG) and all(r.valid for r in reports)
    result = CliRunner().invoke(bpmn, ["validate", "--format", "json", *map(str, MIWG[:3])])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["file"] for d in data] == [str(p) for p in MIWG[:3]]
    assert set(data[0]) == {"file", "valid", "findings"}


def test_cli_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bpmn", tmp_path / "bad.bpmn"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace('targetRef="t"', 'targetRef="nowhere"'))
    runner = CliRunner()
    ok = runner.invoke(bpmn, ["validate", str(good)])
    assert ok.exit_code == 0 and "valid" in ok.output
    res = runner.invoke(bpmn, ["validate", str(good), str(bad), "--format", "json"])
    assert res.exit_code == 1
    assert [r["valid"] for r in json.loads(res.output)] == [True, False]
    from das.errors import NegativeResult

    assert isinstance(res.exception, NegativeResult)


def test_compensation_boundary_is_not_a_dead_end() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/><bpmn:task id="t"/><bpmn:endEvent id="e"/>
      <bpmn:boundaryEvent id="cb" attachedToRef="t"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
      <bpmn:task id="undo" isForCompensation="true"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/>
      <bpmn:association id="a" sourceRef="cb" targetRef="undo"/>
    """)
    report = validate(text)
    assert report.valid, report.findings
    assert not [f for f in report.findings if f.element in ("cb", "undo") and f.rule.startswith("structure")]


REFERENCE = Path(__file__).resolve().parents[2] / "processes"


def test_reference_processes_validate_together() -> None:
    files = sorted(REFERENCE.glob("*.bpmn"))
    assert files, f"no reference processes in {REFERENCE} (they ship with the repo)"
    for r in validate_files(files):
        assert r.valid, (r.file, [f for f in r.findings if f.severity == "error"])


@pytest.mark.parametrize("executable", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_compensation_handler_attached_by_association_only(executable: bool, reverse: bool) -> None:
    # a handler some tools write without isForCompensation: no dead-end / unreachable noise,
    # one finding that says how to mark it; an association may point either way
    src, dst = ("undo", "cb") if reverse else ("cb", "undo")
    attrs = 'id="proc" isExecutable="true" camunda:historyTimeToLive="P30D"' if executable else 'id="proc"'
    text = doc(
        f"""
      <bpmn:startEvent id="s"/><bpmn:task id="t"/><bpmn:endEvent id="e"/>
      <bpmn:boundaryEvent id="cb" attachedToRef="t"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
      <bpmn:task id="undo"/>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/>
      <bpmn:association id="a" sourceRef="{src}" targetRef="{dst}"/>
    """,
        process_attrs=attrs,
    )
    report = validate(text)
    assert report.valid, report.findings
    structure = {(f.rule, f.element) for f in report.findings if f.rule.startswith("structure")}
    assert structure == {("structure.compensation-handler", "undo")}
    (hint,) = [f for f in report.findings if f.rule == "structure.compensation-handler"]
    assert hint.severity == "warning" and 'isForCompensation="true"' in hint.message


def test_compensation_boundary_in_executable_process_has_no_implicit_end() -> None:
    text = doc("""
      <bpmn:startEvent id="s"/><bpmn:task id="t"/><bpmn:endEvent id="e"/>
      <bpmn:boundaryEvent id="cb" attachedToRef="t"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
      <bpmn:subProcess id="undo" isForCompensation="true"><bpmn:startEvent id="us"/><bpmn:task id="ut"/>
        <bpmn:endEvent id="ue"/><bpmn:sequenceFlow id="u1" sourceRef="us" targetRef="ut"/>
        <bpmn:sequenceFlow id="u2" sourceRef="ut" targetRef="ue"/></bpmn:subProcess>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/>
      <bpmn:association id="a" sourceRef="cb" targetRef="undo"/>
    """)
    report = validate(text)
    assert not [f for f in report.findings if f.rule.startswith("structure")], report.findings
