"""The authoring eval: references are sound, the scorer is exact, the runner reports honestly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from das.bpmn.compile import compile_to_xml
from das.evals.authoring import (
    check_reference,
    elements,
    load_cases,
    reference_xml,
    run_authoring_eval,
    score_xml,
    tokens,
)
from das.llm.testmodel import register_script

CASES = load_cases()


def test_suite_has_at_least_20_distinct_cases() -> None:
    assert len(CASES) >= 20
    assert len({c["key"] for c in CASES}) == len(CASES)
    assert all(len(c["prompt"]) > 80 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_reference_compiles_validates_and_simulates(case: dict[str, Any]) -> None:
    result = check_reference(case)
    assert result["errors"] == []
    assert result["stuck"] == []
    assert result["completed"] > 0 and result["completed"] == result["runs"] == 20


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_reference_scores_perfectly_against_itself(case: dict[str, Any]) -> None:
    xml = reference_xml(case)
    assert score_xml(xml, xml) == {"f1_activities": 1.0, "f1_gateways": 1.0, "f1": 1.0}


def _degraded_invoice() -> dict[str, Any]:
    """invoice_approval, degraded in four known ways (see the expected numbers below).

    * "Extract invoice data" -> "Extract the invoice data": same tokens after stopwords (match);
    * "Match invoice to purchase order" -> "Check invoice": Jaccard 1/5 (no match);
    * the first two steps wrapped in a parallel block: +2 parallelGateway (unmatched);
    * the "Amount above 10000?" choice dropped: -1 user task, -2 exclusiveGateway;
    * "Notify supplier of rejection" -> "Notify the supplier about rejection": Jaccard 3/4 (match);
    * "Schedule payment" -> "Schedule payments": the plural is stripped (match).
    """
    case = next(c for c in CASES if c["key"] == "invoice_approval")
    ref = copy.deepcopy(case["reference"])
    extract, match, _amount, approved = ref["steps"]
    extract["name"] = "Extract the invoice data"
    match["name"] = "Check invoice"
    approved["branches"][0]["steps"][0]["name"] = "Notify the supplier about rejection"
    approved["default"]["steps"][0]["name"] = "Schedule payments"
    ref["steps"] = [
        {"type": "parallel", "name": "Prepare", "branches": [{"steps": [extract]}, {"steps": [match]}]},
        approved,
    ]
    return ref


def test_scorer_on_a_degraded_variant_gives_the_exact_expected_values() -> None:
    case = next(c for c in CASES if c["key"] == "invoice_approval")
    ref_xml = reference_xml(case)
    bad_xml = compile_to_xml(_degraded_invoice())
    ref_acts, ref_gws = elements(ref_xml)
    bad_acts, bad_gws = elements(bad_xml)
    assert len(ref_acts) == 5 and dict(ref_gws) == {"exclusiveGateway": 4}
    assert len(bad_acts) == 4 and dict(bad_gws) == {"parallelGateway": 2, "exclusiveGateway": 2}
    # activities: 3 matched of 4 drafted / 5 reference -> 2*3/9; gateways: 2 of 4 / 4 -> 2*2/8;
    # overall: (3+2) matched of (4+4) drafted / (5+4) reference -> 2*5/17
    assert score_xml(bad_xml, ref_xml) == {"f1_activities": 0.6667, "f1_gateways": 0.5, "f1": 0.5882}


def test_name_normalisation_and_type_family() -> None:
    assert tokens("Notify the Supplier of Rejections") == {"notify", "supplier", "rejection"}
    task = compile_to_xml(
        {
            "key": "a",
            "name": "a",
            "steps": [{"type": "external", "name": "Delegate task to TDE", "topic": "t"}],
        }
    )
    call = compile_to_xml(
        {
            "key": "a",
            "name": "a",
            "steps": [{"type": "call", "name": "Delegate task to TDE", "process_key": "tde_task_template"}],
        }
    )
    assert score_xml(task, call)["f1_activities"] == 0.0  # same name, different family


def _cases_dir(tmp_path: Path) -> Path:
    """Three cases: the first two share one reference (one scripted reply fits both)."""
    first, _, third = CASES[0], CASES[1], CASES[2]
    folder = tmp_path / "cases"
    folder.mkdir()
    twin = {**copy.deepcopy(first), "key": "invoice_twin"}
    for name, case in (("a.json", first), ("b.json", twin), ("c.json", third)):
        (folder / name).write_text(json.dumps({k: case[k] for k in ("key", "prompt", "reference")}))
    return folder


def test_end_to_end_with_the_scripted_test_model(tmp_path: Path) -> None:
    reference = CASES[0]["reference"]
    model = register_script("eval-reference", [{"text": json.dumps(reference)}])
    report = run_authoring_eval(model=model, limit=2, cases_dir=_cases_dir(tmp_path))
    assert report["model"] == "test/eval-reference"
    assert [r["key"] for r in report["cases"]] == ["invoice_approval", "invoice_twin"]
    summary = report["summary"]
    assert summary["cases"] == 2
    assert summary["valid_rate"] == 1.0 and summary["simulation_pass_rate"] == 1.0
    assert summary["mean_repair_attempts"] == 0.0
    assert summary["mean_f1"] == summary["mean_f1_activities"] == summary["mean_f1_gateways"] == 1.0
    assert summary["total_tokens"] == 2 * (10 + 5)  # the test model's default usage per call
    assert all("error" not in r for r in report["cases"])


def test_a_draft_that_never_converges_counts_as_invalid(tmp_path: Path) -> None:
    report = run_authoring_eval(model="test/invalid-json", limit=1, cases_dir=_cases_dir(tmp_path))
    row = report["cases"][0]
    assert row["valid"] is False and row["simulated"] is False
    assert row["repair_attempts"] == 3 and row["f1"] == 0.0
    assert (row["input_tokens"], row["output_tokens"]) == (4 * 10, 4 * 5)
    assert "did not converge" in row["error"]
    assert report["summary"]["valid_rate"] == 0.0
