"""Simulator: mocks, errors, timers, loops, bounds, and no crash on real-world BPMN."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from needs import CORPUS as MIWG
from needs import needs_corpus

from das.bpmn.compile import compile_to_xml
from das.bpmn.simulate import simulate_file, simulate_xml

HERE = Path(__file__).parent
ALL = json.loads((HERE / "authoring_all_features.json").read_text())
KEYS = {"runs", "completed", "stuck", "coverage", "unreached", "ends", "unsupported"}


def _xml(steps: list[dict]) -> str:
    return compile_to_xml({"key": "p", "name": "P", "steps": steps})


def test_all_features_complete_and_are_seeded() -> None:
    a = simulate_xml(compile_to_xml(ALL), runs=25, seed=7)
    b = simulate_xml(compile_to_xml(ALL), runs=25, seed=7)
    assert KEYS <= set(a)
    assert a["completed"] == 25 and a["stuck"] == []
    assert {k: v for k, v in a.items() if k != "file"} == {k: v for k, v in b.items() if k != "file"}
    assert 0.7 < a["coverage"] <= 1.0
    assert sum(a["ends"].values()) == 25
    constructs = {u["construct"].split(" (")[0] for u in a["unsupported"]}
    assert constructs == {"compensation throw", "compensation boundary", "compensation handler"}


def test_scripted_error_routes_to_its_boundary_end() -> None:
    xml = _xml(
        [
            {
                "type": "tde",
                "name": "t",
                "task_type": "x",
                "on_error": [
                    {"error_code": "DAS_GUARDRAIL", "then": "end", "end_id": "end_guardrail"},
                    {"error_code": "DAS_POLICY_DENIED", "then": "end", "end_id": "end_denied"},
                ],
            }
        ]
    )
    res = simulate_xml(xml, runs=3, mocks={"das-tde-probabilistic": {"error": "DAS_POLICY_DENIED"}})
    assert res["ends"] == {"end_denied": 3} and res["completed"] == 3
    res = simulate_xml(xml, runs=3, mocks={"x": {"tdeStatus": "succeeded"}})  # keyed by task type
    assert res["ends"] == {"end": 3}


def test_scripted_timeout_fires_the_timer_boundary() -> None:
    xml = _xml(
        [
            {
                "type": "user",
                "name": "approve",
                "timeout": {"duration": "PT1H", "then": "end", "end_id": "late"},
            }
        ]
    )
    res = simulate_xml(xml, runs=2, mocks={"approve": {"timeout": True}})
    assert res["ends"] == {"late": 2}


def test_loop_runs_at_most_max_iterations_and_counts_reset() -> None:
    xml = _xml(
        [
            {
                "type": "loop",
                "name": "l",
                "max_iterations": 4,
                "condition": {"variable": "again", "value": True},
                "steps": [{"type": "external", "name": "work", "topic": "work"}],
            }
        ]
    )
    res = simulate_xml(xml, runs=2, mocks={"work": {"again": True}, "$start": {"again": True}})
    assert res["completed"] == 2 and res["stuck"] == []
    # count how often the body ran: the 5th scripted call would throw an uncaught error
    res = simulate_xml(xml, runs=1, mocks={"work": [{"again": True}] * 4 + [{"error": "NEVER"}]})
    assert res["completed"] == 1  # the fifth call never happens: max_iterations=4 is honoured
    res = simulate_xml(xml, runs=1, mocks={"work": [{"again": True}] * 3 + [{"error": "NEVER"}]})
    assert [(s["run"], s["element"]) for s in res["stuck"]] == [(0, "s1_l_s1")]
    assert res["stuck"][0]["reason"].startswith("uncaught BPMN error NEVER: ")


def test_timer_and_message_waits_use_a_virtual_clock() -> None:
    xml = _xml(
        [
            {"type": "wait", "name": "day", "on": {"timer": "P30D"}},
            {"type": "wait", "name": "msg", "on": {"message": "ping"}},
        ]
    )
    t = time.monotonic()
    res = simulate_xml(xml, runs=3)
    assert res["completed"] == 3 and time.monotonic() - t < 5


def test_multi_instance_on_external_and_call_activity() -> None:
    xml = _xml(
        [
            {
                "type": "external",
                "name": "each",
                "topic": "t",
                "multi_instance": {"collection": "items", "element_variable": "item"},
            },
            {
                "type": "call",
                "name": "c",
                "process_key": "sub",
                "multi_instance": {"collection": "items", "element_variable": "item", "mode": "sequential"},
            },
        ]
    )
    res = simulate_xml(xml, runs=3)
    assert res["completed"] == 3 and res["coverage"] == 1.0


UNBOUNDED = """<?xml version="1.0"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p" isExecutable="true">
    <startEvent id="s"/><sequenceFlow id="f1" sourceRef="s" targetRef="j"/>
    <exclusiveGateway id="j"/><sequenceFlow id="f2" sourceRef="j" targetRef="t"/>
    <task id="t"/><sequenceFlow id="f3" sourceRef="t" targetRef="j"/>
  </process>
</definitions>"""

UNMATCHED = """<?xml version="1.0"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p" isExecutable="true">
    <startEvent id="s"/><sequenceFlow id="f1" sourceRef="s" targetRef="x"/>
    <exclusiveGateway id="x" default="f3"/>
    <sequenceFlow id="f2" sourceRef="x" targetRef="a"><conditionExpression>${false}</conditionExpression></sequenceFlow>
    <sequenceFlow id="f3" sourceRef="x" targetRef="b"/>
    <task id="a"/><task id="b"/>
    <sequenceFlow id="f4" sourceRef="a" targetRef="j"/><sequenceFlow id="f5" sourceRef="b" targetRef="j"/>
    <parallelGateway id="j"/><sequenceFlow id="f6" sourceRef="j" targetRef="e"/><endEvent id="e"/>
  </process>
</definitions>"""


def test_unbounded_cycle_is_stuck_with_loop_bound_hit() -> None:
    t = time.monotonic()
    res = simulate_xml(UNBOUNDED, runs=2, max_steps=100)
    assert time.monotonic() - t < 10
    assert res["completed"] == 0
    assert [s["reason"].split(":")[0] for s in res["stuck"]] == ["loop bound hit", "loop bound hit"]


def test_unmatched_parallel_join_is_reported() -> None:
    res = simulate_xml(UNMATCHED, runs=2)
    assert res["completed"] == 0
    assert {(s["reason"].split(":")[0], s["element"]) for s in res["stuck"]} == {("unmatched join", "j")}
    assert "a" in res["unreached"] and "e" in res["unreached"]


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><d>&b;</d>',
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
        "<definitions xmlns='http://www.omg.org/spec/BPMN/20100524/MODEL'><process id='p'>",
        "<html><body>not bpmn</body></html>",
    ],
)
def test_hostile_or_broken_input_is_a_finding(text: str) -> None:
    res = simulate_xml(text, runs=3)
    assert res["runs"] == 0 and res["completed"] == 0
    assert res["unsupported"] and res["unsupported"][0]["construct"] == "unparseable"


@needs_corpus
@pytest.mark.parametrize("path", sorted(MIWG.glob("*.bpmn")) if MIWG.is_dir() else [], ids=lambda p: p.name)
def test_miwg_simulates_or_names_unsupported(path: Path) -> None:
    t = time.monotonic()
    res = simulate_file(path, runs=10, seed=1)
    assert time.monotonic() - t < 20
    assert KEYS <= set(res)
    assert res["runs"] == 10, res["unsupported"]  # every reference file is simulated, none skipped
    floor = json.loads((Path(__file__).parent / "miwg_coverage_floors.json").read_text())[path.name]
    assert res["coverage"] >= floor, (res["coverage"], floor, res["unreached"])
    if res["completed"] < res["runs"]:
        # not simulated, or not every run completed: the reason must be named
        assert res["unsupported"] or all(s["reason"] for s in res["stuck"])
    else:
        assert res["stuck"] == []
    assert all(_is_sentence(s["reason"]) for s in res["stuck"]), res["stuck"]
    if path.name == "B.2.0.bpmn":  # empty conditional events: named, and every run completes
        assert res["completed"] == res["runs"]
        assert any(
            u["construct"].startswith("conditional event without a condition") for u in res["unsupported"]
        )


# ---- regressions found by the property test -------------------------------------------------
def _tde(**kw: object) -> dict:
    return {"type": "tde", "name": "t", "task_type": "x", "mode": "deterministic", **kw}


def _loop(steps: list[dict]) -> dict:
    return {
        "type": "loop",
        "name": "l",
        "condition": {"variable": "again", "op": "==", "value": True},
        "max_iterations": 3,
        "steps": steps,
    }


MI = {"collection": "items", "element_variable": "item", "mode": "parallel"}


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_multi_instance_sub_process_gets_its_collection(mode: str) -> None:
    # was: TypeError 'NoneType' object is not iterable (the collection of a multi-instance
    # sub-process was never set, only that of multi-instance tasks)
    inner = {"type": "subprocess", "name": "in", "steps": [_tde(multi_instance={**MI, "collection": "rows"})]}
    steps = [
        {
            "type": "subprocess",
            "name": "s",
            "steps": [_tde(), inner],
            "multi_instance": {**MI, "mode": mode, "element_variable": "items"},
        }
    ]
    res = simulate_xml(_xml(steps), runs=5)
    assert res["stuck"] == [] and res["completed"] == 5
    assert res["coverage"] == 1.0


PAR = {"type": "parallel", "name": "p", "branches": [{"steps": [_tde()]}, {"steps": [_tde(), _tde()]}]}
CHOICE = {
    "type": "choice",
    "name": "c",
    "kind": "inclusive",
    "default": {"steps": []},
    "branches": [
        {
            "condition": {"variable": "x", "op": "==", "value": True},
            "steps": [_tde(timeout={"duration": "PT5M", "then": "continue"})],
        },
        {
            "condition": {"variable": "y", "op": "==", "value": True},
            "steps": [_tde(timeout={"duration": "PT5M", "then": "end"})],
        },
    ],
}
SUB = {
    "type": "subprocess",
    "name": "s",
    "steps": [
        _tde(timeout={"duration": "PT5M", "then": "continue"}),
        {"type": "wait", "name": "w", "on": {"message": "m"}},
    ],
}


@pytest.mark.parametrize(
    "body",
    [[PAR, _tde()], [CHOICE, _tde()], [CHOICE, SUB], [PAR, SUB], [CHOICE, PAR, SUB]],
    ids=["parallel", "inclusive+timer", "inclusive+subprocess", "parallel+subprocess", "all"],
)
def test_joins_inside_loops_do_not_break_the_engine(body: list[dict]) -> None:
    # SpiffWorkflow 3.2 drops earlier join instances' children in a loop: was AttributeError
    # ('NoneType' has no attribute 'data') or TaskNotFoundException for an orphaned sub-process
    res = simulate_xml(_xml([_loop(body)]), runs=20, mocks={"*": {"again": True, "x": True, "y": True}})
    assert res["stuck"] == [] and res["completed"] == 20


CONDITIONAL = """<?xml version="1.0"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p">
    <startEvent id="s"/>
    <intermediateCatchEvent id="c1"><conditionalEventDefinition><condition/></conditionalEventDefinition>
    </intermediateCatchEvent>
    <task id="t"/>
    <boundaryEvent id="b" attachedToRef="t"><conditionalEventDefinition><condition/></conditionalEventDefinition>
    </boundaryEvent>
    <intermediateCatchEvent id="c2"><conditionalEventDefinition>
      <condition>${ready == 'yes'}</condition></conditionalEventDefinition></intermediateCatchEvent>
    <endEvent id="e"/><endEvent id="eb"/>
    <sequenceFlow id="f1" sourceRef="s" targetRef="c1"/><sequenceFlow id="f2" sourceRef="c1" targetRef="t"/>
    <sequenceFlow id="f3" sourceRef="t" targetRef="c2"/><sequenceFlow id="f4" sourceRef="c2" targetRef="e"/>
    <sequenceFlow id="f5" sourceRef="b" targetRef="eb"/>
  </process>
</definitions>"""


def test_conditional_events_without_condition_are_named_not_opaque_errors() -> None:
    # MIWG B.2.0: <condition/> was evaluated as the expression 'None' and every run failed
    res = simulate_xml(CONDITIONAL, runs=4, mocks={"*": {"ready": "yes"}})
    assert res["stuck"] == [] and res["completed"] == 4
    named = {(u["construct"], u["element"]) for u in res["unsupported"]}
    assert ("conditional event without a condition (treated as satisfied at once)", "c1") in named
    assert ("conditional boundary event without a condition (never fires in simulation)", "b") in named
    assert not any(u["element"] == "c2" for u in res["unsupported"])  # a JUEL condition is translated
    assert res["ends"] == {"e": 4}
    never = simulate_xml(CONDITIONAL, runs=2, mocks={"*": {"ready": "no"}})
    assert [(x["reason"].split(":")[0], x["element"]) for x in never["stuck"]] == [("deadlock", "c2")] * 2
    assert all(_is_sentence(x["reason"]) for x in never["stuck"])


def test_gateway_without_true_condition_or_default_is_a_clear_sentence() -> None:
    text = UNMATCHED.replace(' default="f3"', "").replace(
        '<sequenceFlow id="f3" sourceRef="x" targetRef="b"/>',
        '<sequenceFlow id="f3" sourceRef="x" targetRef="b"><conditionExpression>${false}</conditionExpression>'
        "</sequenceFlow>",
    )
    res = simulate_xml(text, runs=1)
    (stuck,) = res["stuck"]
    assert stuck["reason"].startswith("no outgoing flow taken: no condition of gateway x was true")
    assert "add a default flow" in stuck["reason"]


def _is_sentence(reason: str) -> bool:
    """A stuck reason names its category, then says why and what to do (not a bare exception)."""
    head, _, rest = reason.partition(": ")
    return bool(head) and len(rest.split()) >= 6 and not reason.startswith("error:")


def test_drafted_steps_get_schema_valid_outputs_and_their_inputs_are_checked():
    """A step reading a variable that only one branch sets is reported; outputs come from the
    registry output schema (classify's label is one of the offered labels' type: a string)."""
    from das.bpmn.compile import compile_to_xml
    from das.bpmn.simulate import simulate_xml

    classify = {
        "type": "tde",
        "name": "Classify it",
        "task_type": "classify",
        "mode": "probabilistic",
        "inputs": [{"source": "text", "target": "text"}, {"source": "labels", "target": "labels"}],
        "outputs": [{"source": "label", "target": "ticketLabel"}],
    }
    summarize = {
        "type": "tde",
        "name": "Summarise the label",
        "task_type": "summarize",
        "mode": "probabilistic",
        "inputs": [{"source": "ticketLabel", "target": "text"}],
        "outputs": [{"source": "summary", "target": "summary"}],
    }
    good = compile_to_xml({"key": "good", "name": "good", "steps": [classify, summarize]})
    res = simulate_xml(good, runs=10, seed=1)
    assert res["completed"] == 10 and res["input_problems"] == []
    branchy = compile_to_xml(
        {
            "key": "branchy",
            "name": "branchy",
            "steps": [
                {
                    "type": "choice",
                    "name": "Urgent?",
                    "branches": [
                        {
                            "name": "yes",
                            "condition": {"variable": "urgent", "value": True},
                            "steps": [classify],
                        }
                    ],
                    "default": {"name": "no", "steps": []},
                },
                summarize,
            ],
        }
    )
    res = simulate_xml(branchy, runs=20, seed=1)
    assert res["input_problems"] == [
        {"element": res["input_problems"][0]["element"], "field": "text", "variable": "ticketLabel"}
    ]


def test_every_key_simulate_produces_is_a_simulation_report_field():
    """A proposal stores ``SimulationReport.model_validate(simulate_file(...))``: no key may be lost
    (the model refuses unknown keys) and the JSON written back is the producer's, key for key."""
    from das.contracts import SimulationReport

    classify = {
        "type": "tde",
        "name": "Classify",
        "task_type": "classify",
        "mode": "probabilistic",
        "inputs": [{"source": "text", "target": "text"}],
        "outputs": [{"source": "label", "target": "label"}],
    }
    summarize = {
        "type": "tde",
        "name": "Summarise",
        "task_type": "summarize",
        "mode": "probabilistic",
        "inputs": [{"source": "label", "target": "text"}],
        "outputs": [{"source": "summary", "target": "s"}],
    }
    drafted = compile_to_xml(
        {
            "key": "d",
            "name": "d",
            "steps": [  # 'label' is set on one branch only
                {
                    "type": "choice",
                    "name": "Urgent?",
                    "branches": [
                        {
                            "name": "yes",
                            "condition": {"variable": "urgent", "value": True},
                            "steps": [classify],
                        }
                    ],
                    "default": {"name": "no", "steps": []},
                },
                summarize,
            ],
        }
    )
    results = [
        simulate_xml(UNMATCHED, runs=2),
        simulate_xml("<html/>", runs=2),
        simulate_xml(drafted, runs=6, seed=1, record_traces=True),
        simulate_xml(CONDITIONAL, runs=3),
    ]
    assert results[0]["stuck"] and results[1]["unsupported"] and results[2]["traces"]
    assert results[2]["input_problems"] and results[2]["input_problems"][0]["variable"] == "label"
    for res in results:
        report = SimulationReport.model_validate(res)
        assert report.model_dump(mode="json", exclude_unset=True) == json.loads(json.dumps(res))


def _defs(body: str) -> str:
    return (
        '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">'
        f'<process id="p" isExecutable="true">{body}</process></definitions>'
    )


IMPLICIT = {
    "task with two outgoing flows splits in parallel": (
        '<startEvent id="s"/><task id="a"/><task id="b"/><task id="c"/><endEvent id="e1"/><endEvent id="e2"/>'
        '<sequenceFlow id="f0" sourceRef="s" targetRef="a"/><sequenceFlow id="f1" sourceRef="a" targetRef="b"/>'
        '<sequenceFlow id="f2" sourceRef="a" targetRef="c"/><sequenceFlow id="f3" sourceRef="b" targetRef="e1"/>'
        '<sequenceFlow id="f4" sourceRef="c" targetRef="e2"/>',
        "implicit parallel split",
        2,
    ),
    "sub-process without a start event starts its sourceless elements": (
        '<startEvent id="s"/><subProcess id="sp"><task id="a"/><task id="b"/></subProcess><endEvent id="e"/>'
        '<sequenceFlow id="f0" sourceRef="s" targetRef="sp"/><sequenceFlow id="f1" sourceRef="sp" targetRef="e"/>',
        "no start event",
        1,
    ),
    "sub-process with two start events starts both": (
        '<startEvent id="s"/><subProcess id="sp"><startEvent id="s1"/><startEvent id="s2"/><task id="a"/>'
        '<task id="b"/><sequenceFlow id="g1" sourceRef="s1" targetRef="a"/>'
        '<sequenceFlow id="g2" sourceRef="s2" targetRef="b"/></subProcess><endEvent id="e"/>'
        '<sequenceFlow id="f0" sourceRef="s" targetRef="sp"/><sequenceFlow id="f1" sourceRef="sp" targetRef="e"/>',
        "2 start events",
        1,
    ),
    "process without any start event": (
        '<task id="a"/><task id="b"/><sequenceFlow id="f1" sourceRef="a" targetRef="b"/>',
        "no start event",
        1,
    ),
}


@pytest.mark.parametrize("name", list(IMPLICIT))
def test_implicit_bpmn_semantics_are_simulated(name: str) -> None:
    body, construct, ends = IMPLICIT[name]
    res = simulate_xml(_defs(body), runs=5)
    assert res["runs"] == 5 and res["completed"] == 5, res
    assert res["coverage"] == 1.0, res["unreached"]  # the original elements, not the added ones
    assert not any(u.startswith("das_implicit_") for u in res["unreached"])
    assert any(construct in u["construct"] for u in res["unsupported"]), res["unsupported"]
    assert sum(res["ends"].values()) == 5 * ends, res["ends"]  # top-level end events reached


@needs_corpus
def test_same_seed_same_report_even_with_coin_decided_conditions() -> None:
    path = MIWG / "C.3.0.bpmn"  # its conditions are not JUEL: a coin decides them
    first, second = simulate_file(path, runs=10, seed=3), simulate_file(path, runs=10, seed=3)
    assert any("seeded coin" in u["construct"] for u in first["unsupported"])
    assert first == second
