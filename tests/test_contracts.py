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

    assert set(Usage.model_fields) == {"iterations", "model_calls", "tool_calls", "input_tokens",
                                       "output_tokens", "cost_usd", "wall_s"}


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
