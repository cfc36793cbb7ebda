import json

import pytest

from das.contracts import CONTRACTS, Policy, TaskSpec, TdeResult, parse_external
from das.errors import InvalidInput


def test_every_contract_has_a_json_schema():
    for name, model in CONTRACTS.items():
        schema = model.model_json_schema()
        assert schema["type"] == "object", name
        assert schema["properties"], name


def test_tderesult_has_the_documented_keys():
    keys = set(TdeResult.model_json_schema()["properties"])
    assert {"status", "outputs", "trace", "usage", "stop_reason", "correlation_id", "idempotency_key"} <= keys


def test_usage_keys():
    from das.contracts import Usage

    assert set(Usage.model_fields) == {
        "iterations",
        "model_calls",
        "tool_calls",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "wall_s",
    }


def test_probabilistic_spec_needs_a_prompt_and_error_names_the_field():
    with pytest.raises(InvalidInput, match=r"prompt: required when mode is probabilistic"):
        parse_external(TaskSpec, {"task_type": "x"}, "taskSpec")
    spec = parse_external(TaskSpec, {"task_type": "x", "mode": "deterministic"}, "taskSpec")
    assert spec.prompt is None


def test_malformed_json_is_a_clear_error():
    with pytest.raises(InvalidInput, match=r"not JSON .*line 1 column 15"):
        parse_external(TaskSpec, '{"task_type": ', "taskSpec")
    with pytest.raises(InvalidInput, match="expected a JSON object, got list"):
        parse_external(TaskSpec, "[1, 2]", "taskSpec")


def test_nested_field_is_named():
    with pytest.raises(InvalidInput, match=r"priority: Input should be less than or equal to 100"):
        parse_external(TaskSpec, json.dumps({"task_type": "x", "prompt": "p", "priority": 500}), "taskSpec")
    with pytest.raises(InvalidInput, match=r"unknown_field: Extra inputs are not permitted"):
        parse_external(TaskSpec, {"task_type": "x", "prompt": "p", "unknown_field": 1}, "taskSpec")


def test_policy_rejects_unknown_keys_and_bad_values():
    with pytest.raises(InvalidInput, match="max_iterations"):
        parse_external(Policy, {"max_iterations": 0}, "policy")
    with pytest.raises(InvalidInput, match="bogus"):
        parse_external(Policy, {"bogus": 1}, "policy")


# ---- the reports a proposal carries -----------------------------------------------------------
REPORTS = ("ValidationReport", "SimulationReport", "ProposalDiff", "Evidence", "ValueMeasure")


@pytest.mark.parametrize("name", REPORTS)
def test_das_schema_prints_each_report_shape(name):
    from click.testing import CliRunner

    from das.cli import cli

    out = CliRunner().invoke(cli, ["schema", name])
    assert out.exit_code == 0, out.output
    schema = json.loads(out.output)
    assert schema["title"] == name and schema["type"] == "object" and schema["additionalProperties"] is False
    assert name in CliRunner().invoke(cli, ["schema"]).output.split()


def test_proposal_schema_references_the_report_models():
    from das.contracts import Proposal

    schema = Proposal.model_json_schema()
    props, defs = schema["properties"], schema["$defs"]

    def refs(prop):
        found = [prop.get("$ref"), prop.get("items", {}).get("$ref")] + [
            a.get("$ref") for a in prop.get("anyOf", [])
        ]
        return {r.rsplit("/", 1)[-1] for r in found if r}

    assert refs(props["validation"]) == {"ValidationReport"}
    assert (
        refs(props["simulation"]) == {"SimulationReport"} and {"type": "null"} in props["simulation"]["anyOf"]
    )
    assert refs(props["diff"]) == {"ProposalDiff"} and {"type": "null"} in props["diff"]["anyOf"]
    assert refs(props["evidence"]) == {"Evidence"}
    assert refs(props["value_measure"]) == {"ValueMeasure"}
    for name in (
        "ValidationReport",
        "ValidationFinding",
        "SimulationReport",
        "StuckRun",
        "Unsupported",
        "InputProblem",
        "ProposalDiff",
        "DiffEntry",
        "FieldChange",
        "Evidence",
        "ValueMeasure",
        "TimeWindow",
    ):
        assert defs[name]["additionalProperties"] is False, name  # no open object where a report goes
    for key in ("validation", "simulation", "diff", "evidence", "value_measure"):
        assert props[key].get("additionalProperties") is not True, key
    assert "construct" in defs["Unsupported"]["properties"]  # the JSON name, not the Python one


OLD_PROPOSAL = {  # the body_json a version before typed reports wrote
    "id": "p-0123456789",
    "kind": "process",
    "key": "invoice",
    "base_version": None,
    "version": "1.0.0",
    "artifact": "<definitions/>",
    "tde_wrappers": [],
    "validation": {
        "file": "invoice.bpmn",
        "valid": True,
        "findings": [{"rule": "diagram.missing", "severity": "warning", "element": "t1", "message": "m"}],
    },
    "simulation": {},
    "diff": {"text": "new process invoice (no base version)", "added": "all"},
    "rationale": "",
    "evidence": [
        {
            "kind": "incidents",
            "process_key": "invoice",
            "activity_id": "charge",
            "refactor": "add_error_boundary",
            "evidence": {"incidents": 3, "open": 1},
            "activity_name": "Charge",
            "activity_type": "serviceTask",
            "actionable": True,
            "note": "",
            "fingerprint": "invoice:charge:add_error_boundary",
        }
    ],
    "value_measure": {
        "refactor": "add_error_boundary",
        "metric": "incidents_avoided",
        "estimate": 3,
        "incidents_in_window": 3,
        "instances_affected": 2,
        "window": {"first": "2026-01-01T00:00:00.000+0000", "last": None},
        "how": "count",
    },
    "edit_ops": [],
    "draft_trace": [],
    "origin": "nightly",
    "author": "das",
    "status": "proposed",
    "history": [],
}


def test_an_old_shaped_proposal_still_loads():
    from das.contracts import Proposal

    p = Proposal.model_validate_json(json.dumps(OLD_PROPOSAL))
    assert p.validation.valid and p.validation.findings[0].element == "t1"
    assert p.simulation is None  # {} meant "not simulated"
    assert p.diff is not None and p.diff.text.startswith("new process") and p.diff.entries == []
    ev = p.evidence[0]
    assert ev.details == {"incidents": 3, "open": 1} and ev.fingerprint == "invoice:charge:add_error_boundary"
    assert p.value_measure.estimate == 3 and p.value_measure.window and p.value_measure.window.last is None
    assert Proposal.model_validate_json(p.model_dump_json()) == p  # and what it writes now loads again
    chat = Proposal.model_validate(
        {
            **OLD_PROPOSAL,
            "diff": {},
            "evidence": [{"prompt": "Invoice approval"}],
            "value_measure": {
                "repair_attempts": 1,
                "model": "test/auto",
                "iterations": 0,
                "model_calls": 2,
                "tool_calls": 0,
                "input_tokens": 10,
                "output_tokens": 20,
                "cost_usd": 0.0,
                "wall_s": 0.0,
            },
        }
    )
    assert (
        chat.diff is None
        and chat.evidence[0].prompt == "Invoice approval"
        and chat.value_measure.model_calls == 2
    )


def test_a_proposal_without_a_report_is_never_valid():
    from das.contracts import Proposal

    for validation in ({}, None):
        p = Proposal.model_validate({**OLD_PROPOSAL, "validation": validation})
        assert not p.validation.valid and p.validation.findings[0].rule == "not-validated"
    assert not Proposal(id="p-1", key="k", version="1.0.0", artifact="<x/>").validation.valid


def test_report_shapes_refuse_unknown_keys():
    from das.contracts import Evidence, SimulationReport, ValueMeasure

    for model, data in (
        (Evidence, {"prompt": "p", "surprise": 1}),
        (ValueMeasure, {"estimat": 3}),
        (SimulationReport, {"file": "f", "deadlocks": []}),
    ):
        with pytest.raises(InvalidInput, match="Extra inputs are not permitted"):
            parse_external(model, data, model.__name__)
