"""Behavioural scoring (das.evals.behaviour): footprints of simulated variants, label alignment."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from das.bpmn.compile import compile_to_xml
from das.bpmn.parse import parse
from das.bpmn.simulate import simulate_xml
from das.evals.authoring import load_cases, reference_xml
from das.evals.behaviour import (
    END,
    START,
    align_labels,
    behaviour_scores,
    footprint,
    trace_variants,
)

CASES = load_cases()
BY_KEY = {c["key"]: c for c in CASES}
ACTIVITIES = {
    "task",
    "serviceTask",
    "userTask",
    "sendTask",
    "receiveTask",
    "scriptTask",
    "businessRuleTask",
    "manualTask",
    "callActivity",
}


def _case_xml(key: str, edit: Any = None) -> str:
    """A case's reference in the authoring form, optionally edited, compiled like ``reference_xml``."""
    case = BY_KEY[key]
    ref = copy.deepcopy(case["reference"])
    if edit is not None:
        edit(ref)
    return compile_to_xml({**ref, "key": case["key"]})


def _ext(name: str) -> dict[str, Any]:
    return {"type": "external", "name": name, "topic": "t"}


def _seq_xml(names: list[str]) -> str:
    return compile_to_xml({"key": "seq", "name": "Sequence", "steps": [_ext(n) for n in names]})


# --- every reference against itself ------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_reference_scores_one_against_itself_and_is_saturated(case: dict[str, Any]) -> None:
    xml = reference_xml(case)
    s = behaviour_scores(xml, xml)
    assert (s.fitness, s.precision, s.f_score, s.trace_fitness) == (1.0, 1.0, 1.0, 1.0)
    assert s.note is None and s.variants_candidate == s.variants_reference
    # not an artefact of equal seeds: every activity is visited at the default runs...
    labels = {
        n.name or n.id for n in parse(xml.encode(), name="r.bpmn").nodes.values() if n.type in ACTIVITIES
    }
    assert labels == {a for v in s.variants_reference for a in v}
    # ...and another seed yields the same footprint (200 runs saturate it)
    assert footprint(trace_variants(xml, seed=1)) == footprint(s.variants_reference)


def test_cases_that_branch_on_less_than_reach_both_sides() -> None:
    """The simulator's sampler offers no value below a compared literal; ``_widen`` adds one."""
    for key, label in [
        ("loan_precheck", "Reject application"),
        ("document_classification", "Clerk reviews classification"),
        ("insurance_claim_triage", "Pay claim"),
    ]:
        variants = trace_variants(reference_xml(BY_KEY[key]))
        assert any(label in v for v in variants), key
        assert any(label not in v for v in variants), key


# --- degraded drafts -----------------------------------------------------------------------


def test_removed_branch_lowers_fitness_not_precision() -> None:
    def drop_pay_claim(ref: dict[str, Any]) -> None:
        route = ref["steps"][2]
        route["branches"] = [b for b in route["branches"] if b["steps"][0]["name"] != "Pay claim"]

    ref = reference_xml(BY_KEY["insurance_claim_triage"])
    s = behaviour_scores(_case_xml("insurance_claim_triage", drop_pay_claim), ref)
    assert s.precision == 1.0
    assert s.fitness < 1.0 and s.trace_fitness < 1.0
    # the two pairs through "Pay claim" are the ones missing: 7 of 9 reference pairs replayed
    assert s.fitness == round(7 / 9, 4)
    assert not any("Pay claim" in v for v in s.variants_candidate)


def test_extra_parallel_task_lowers_precision() -> None:
    def add_branch(ref: dict[str, Any]) -> None:
        ref["steps"][1]["branches"].append({"steps": [_ext("Notify warehouse manager")]})

    ref = reference_xml(BY_KEY["order_fulfilment"])
    s = behaviour_scores(_case_xml("order_fulfilment", add_branch), ref)
    assert s.precision < 1.0
    assert s.fitness == 1.0  # every reference interleaving is still possible
    assert 0.0 < s.f_score < 1.0
    assert "Notify warehouse manager" not in s.mapping


def test_extra_alternative_task_lowers_precision() -> None:
    def add_alternative(ref: dict[str, Any]) -> None:
        ref["steps"][3]["branches"].append(
            {
                "condition": {"variable": "escalate", "op": "==", "value": True},
                "steps": [_ext("Escalate to CFO")],
            }
        )

    ref = reference_xml(BY_KEY["invoice_approval"])
    s = behaviour_scores(_case_xml("invoice_approval", add_alternative), ref)
    assert s.precision < 1.0
    assert s.fitness == 1.0
    assert any("Escalate to CFO" in v for v in s.variants_candidate)


def test_renamed_labels_that_match_by_jaccard_still_score_one() -> None:
    def rename(ref: dict[str, Any]) -> None:
        extract, _match, amount, approved = ref["steps"]
        extract["name"] = "Extract the invoice data"  # same tokens
        amount["branches"][0]["steps"][0]["name"] = "Finance managers approve the invoice"  # 3/4
        approved["branches"][0]["steps"][0]["name"] = "Notify the supplier about rejection"  # 3/4
        approved["default"]["steps"][0]["name"] = "Schedule payments"  # plural stripped

    ref = reference_xml(BY_KEY["invoice_approval"])
    s = behaviour_scores(_case_xml("invoice_approval", rename), ref)
    assert (s.fitness, s.precision, s.f_score, s.trace_fitness) == (1.0, 1.0, 1.0, 1.0)
    assert s.mapping["Schedule payments"] == "Schedule payment"
    assert s.mapping["Notify the supplier about rejection"] == "Notify supplier of rejection"


def test_renamed_label_without_match_counts_as_other_behaviour() -> None:
    def rename(ref: dict[str, Any]) -> None:
        ref["steps"][1]["name"] = "Check invoice"  # Jaccard 1/5 with "Match invoice to purchase order"

    ref = reference_xml(BY_KEY["invoice_approval"])
    s = behaviour_scores(_case_xml("invoice_approval", rename), ref)
    assert "Check invoice" not in s.mapping
    assert s.fitness < 1.0 and s.precision < 1.0


def test_reversed_sequence_scores_zero() -> None:
    names = ["Receive order", "Check stock", "Reserve stock", "Pick items", "Ship order"]
    s = behaviour_scores(_seq_xml(names[::-1]), _seq_xml(names))
    assert (s.fitness, s.precision, s.f_score, s.trace_fitness) == (0.0, 0.0, 0.0, 0.0)
    assert len(s.mapping) == 5  # same activities, element-level F1 would be 1.0


def _reverse(ref: dict[str, Any]) -> None:
    ref["steps"].reverse()


@pytest.mark.parametrize(
    "key", ["invoice_approval", "purchase_order", "kyc_check", "customer_complaint", "payment_run"]
)
def test_reversed_reference_steps_score_low(key: str) -> None:
    s = behaviour_scores(_case_xml(key, _reverse), reference_xml(BY_KEY[key]))
    assert s.f_score <= 0.25 and s.trace_fitness == 0.0


def test_reversal_keeps_the_pairs_inside_blocks() -> None:
    """A limit of footprints: reversing the top-level steps of order_fulfilment keeps the order
    inside its parallel block, so 10 of its 17 pairs survive."""
    s = behaviour_scores(_case_xml("order_fulfilment", _reverse), reference_xml(BY_KEY["order_fulfilment"]))
    assert s.fitness == s.precision == round(10 / 17, 4) and s.trace_fitness == 0.0


# --- unit pieces ---------------------------------------------------------------------------


def test_footprint_has_start_and_end() -> None:
    assert footprint({("a", "b")}) == {(START, "a"), ("a", "b"), ("b", END)}
    assert footprint({()}) == {(START, END)}
    assert footprint(set()) == set()
    assert footprint({("a", "b"), ("b", "a")}) == {
        (START, "a"),
        (START, "b"),
        ("a", "b"),
        ("b", "a"),
        ("a", END),
        ("b", END),
    }


def test_align_labels_is_greedy_one_to_one_within_a_family() -> None:
    cand = {
        "Approve invoices": "task",
        "Approve the invoice": "task",
        "Review contract": "task",
        "Pay": "task",
    }
    ref = {"Approve invoice": "task", "Review contract": "call", "Pay supplier": "task"}
    # both "Approve ..." labels have Jaccard 1.0; the first in draft order wins; a task never
    # matches a call activity; "Pay" / "Pay supplier" is exactly 0.5
    assert align_labels(cand, ref) == {"Approve invoices": "Approve invoice", "Pay": "Pay supplier"}


def test_unmatched_label_equal_to_a_reference_label_stays_distinct() -> None:
    ref_xml = compile_to_xml(
        {
            "key": "p",
            "name": "P",
            "steps": [
                _ext("Approve invoice"),
                {"type": "call", "name": "Review contract", "process_key": "p"},
            ],
        }
    )
    cand_xml = compile_to_xml(
        {"key": "p", "name": "P", "steps": [_ext("Approve invoice"), _ext("Review contract")]}
    )
    s = behaviour_scores(cand_xml, ref_xml)
    assert s.variants_candidate == {("Approve invoice", "Review contract [draft]")}
    assert s.fitness == round(1 / 3, 4) and s.precision == round(1 / 3, 4)  # only (▶, Approve invoice)


def test_deterministic_for_a_seed() -> None:
    xml = reference_xml(BY_KEY["customer_complaint"])
    assert trace_variants(xml, runs=50, seed=4) == trace_variants(xml, runs=50, seed=4)
    other = _case_xml("order_fulfilment", lambda r: r["steps"][1]["branches"].append({"steps": [_ext("X")]}))
    ref = reference_xml(BY_KEY["order_fulfilment"])
    assert behaviour_scores(other, ref, runs=60, seed=2) == behaviour_scores(other, ref, runs=60, seed=2)


def test_traces_are_cut_at_max_len() -> None:
    xml = reference_xml(BY_KEY["customer_complaint"])
    assert max(len(v) for v in trace_variants(xml)) > 3
    assert max(len(v) for v in trace_variants(xml, max_len=3)) == 3


# --- robustness ----------------------------------------------------------------------------

UNMATCHED_JOIN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p" isExecutable="true">
    <startEvent id="s"/>
    <exclusiveGateway id="x"/>
    <task id="a" name="A"/>
    <task id="b" name="B"/>
    <parallelGateway id="j"/>
    <endEvent id="e"/>
    <sequenceFlow id="f1" sourceRef="s" targetRef="x"/>
    <sequenceFlow id="f2" sourceRef="x" targetRef="a"/>
    <sequenceFlow id="f3" sourceRef="x" targetRef="b"/>
    <sequenceFlow id="f4" sourceRef="a" targetRef="j"/>
    <sequenceFlow id="f5" sourceRef="b" targetRef="j"/>
    <sequenceFlow id="f6" sourceRef="j" targetRef="e"/>
  </process>
</definitions>"""


@pytest.mark.parametrize(
    "bad",
    ["", "not xml at all", "<definitions/>", UNMATCHED_JOIN],
    ids=["empty", "text", "not-bpmn", "unmatched-join"],
)
def test_unsimulatable_candidate_scores_zero_with_a_note(bad: str) -> None:
    ref = _seq_xml(["A", "B"])
    s = behaviour_scores(bad, ref, runs=20)
    assert (s.fitness, s.precision, s.f_score, s.trace_fitness) == (0.0, 0.0, 0.0, 0.0)
    assert s.note and s.note.startswith("candidate:")
    assert s.variants_reference == {("A", "B")}


def test_unsimulatable_reference_scores_zero_with_a_note() -> None:
    s = behaviour_scores(_seq_xml(["A"]), "<broken", runs=5)
    assert s.f_score == 0.0 and s.note and s.note.startswith("reference:")


# --- the simulator hook and speed ----------------------------------------------------------


def test_simulator_records_traces_only_when_asked() -> None:
    xml = _seq_xml(["A", "B", "C"])
    plain = simulate_xml(xml, runs=4, seed=1)
    traced = simulate_xml(xml, runs=4, seed=1, record_traces=True)
    assert "traces" not in plain
    assert traced.pop("traces") == [["A", "B", "C"]] * 4
    assert {k: v for k, v in plain.items() if k != "file"} == {k: v for k, v in traced.items() if k != "file"}


def test_two_hundred_runs_of_a_ten_task_model_are_fast() -> None:
    steps = [
        _ext("Receive order"),
        _ext("Check customer"),
        {
            "type": "parallel",
            "name": "Prepare",
            "branches": [
                {"steps": [_ext("Pick items"), _ext("Pack items")]},
                {"steps": [_ext("Create invoice"), _ext("Send invoice")]},
            ],
        },
        {
            "type": "choice",
            "name": "Express?",
            "branches": [
                {
                    "condition": {"variable": "express", "op": "==", "value": True},
                    "steps": [_ext("Book courier")],
                }
            ],
            "default": {"steps": [_ext("Book carrier")]},
        },
        _ext("Ship order"),
        _ext("Notify customer"),
    ]
    xml = compile_to_xml({"key": "ten", "name": "Ten tasks", "steps": steps})
    started = time.perf_counter()
    variants = trace_variants(xml, runs=200)
    elapsed = time.perf_counter() - started
    assert {a for v in variants for a in v} >= {
        "Receive order",
        "Book courier",
        "Book carrier",
        "Notify customer",
    }
    assert elapsed < 3.0, f"200 runs took {elapsed:.2f} s"
