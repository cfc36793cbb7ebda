"""Schema validation with linear-time regexes, inside a deadline (das.llm.schema_check)."""

from __future__ import annotations

import time

import jsonschema
import pytest

from das.llm.schema_check import SchemaTimeout, validate_within, validator_for


def messages(schema: dict, instance: object) -> list[str]:
    return [e.message for e in validate_within(validator_for(schema), instance, 5)]


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    schema = {"type": "string", "pattern": "^(a+)+$"}
    start = time.perf_counter()
    assert messages(schema, "a" * 100_000 + "!") and not messages(schema, "a" * 100_000)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": r"^(a+)\1$"},  # backreference
    {"type": "string", "pattern": r"^(?=a)a$"},  # lookahead
    {"type": "object", "patternProperties": {r"(?<!x)y": {}}},  # lookbehind in a key
    {"properties": {"a": {"patternProperties": {"^x": {}}}}, "unevaluatedProperties": False},
])
def test_patterns_that_need_backtracking_are_refused(schema: dict) -> None:
    with pytest.raises(jsonschema.SchemaError):
        validator_for(schema)


@pytest.mark.parametrize("schema,instance", [
    ({"type": "object", "patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": False},
     {"x_a": 1, "x_b": "no", "other": 1}),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}}, {"a": 1, "b": 2}),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2, "c": 3}),
    ({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}, {"ok": 1, "Not": 2}),
    ({"type": "string", "pattern": "\\u00e9"}, "caf\u00e9"),
    ({"type": "array", "items": {"type": "string", "pattern": "^\\d{3}$"}}, ["123", "12a"]),
])
def test_answers_match_the_reference_validator(schema: dict, instance: object) -> None:
    reference = sorted(e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance))
    assert sorted(messages(schema, instance)) == reference


def test_validation_stops_at_its_deadline() -> None:
    validator = validator_for({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"pattern": "^b"}]}})
    start = time.monotonic()
    with pytest.raises(SchemaTimeout):
        validate_within(validator, ["b" * 10] * 2_000_000, 0.2)
    assert time.monotonic() - start < 1.5
    assert validate_within(validator, ["b"], 1) == []  # the deadline does not outlive the call
    assert list(validator.iter_errors(["b"])) == []


def test_only_local_references() -> None:
    with pytest.raises(jsonschema.SchemaError, match="only local references"):
        validator_for({"$ref": "http://169.254.169.254/latest"})
