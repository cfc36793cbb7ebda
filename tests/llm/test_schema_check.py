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


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": r"^(a+)\1$"},  # backreference
        {"type": "string", "pattern": r"^(?=a)a$"},  # lookahead
        {"type": "object", "patternProperties": {r"(?<!x)y": {}}},  # lookbehind in a key
        {"properties": {"a": {"patternProperties": {"^x": {}}}}, "unevaluatedProperties": False},
    ],
)
def test_patterns_that_need_backtracking_are_refused(schema: dict) -> None:
    with pytest.raises(jsonschema.SchemaError):
        validator_for(schema)


@pytest.mark.parametrize(
    "schema,instance",
    [
        (
            {
                "type": "object",
                "patternProperties": {"^x_": {"type": "integer"}},
                "additionalProperties": False,
            },
            {"x_a": 1, "x_b": "no", "other": 1},
        ),
        (
            {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}},
            {"a": 1, "b": 2},
        ),
        (
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            {"a": 1, "b": 2, "c": 3},
        ),
        ({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}, {"ok": 1, "Not": 2}),
        ({"type": "string", "pattern": "\\u00e9"}, "caf\u00e9"),
        ({"type": "array", "items": {"type": "string", "pattern": "^\\d{3}$"}}, ["123", "12a"]),
    ],
)
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


@pytest.mark.parametrize("name", ["enum", "const", "default", "examples", "pattern", "patternProperties"])
def test_a_property_named_like_a_keyword_is_still_checked(name: str) -> None:
    """``properties`` maps names to subschemas: a property named ``enum`` is not data."""
    for where in ("properties", "$defs", "patternProperties", "dependentSchemas"):
        schema = {"type": "object", where: {name: {"type": "string", "pattern": r"^(a)\1$"}}}
        with pytest.raises(jsonschema.SchemaError, match="linear time"):
            validator_for(schema)


def test_a_property_named_pattern_properties_is_a_subschema_not_a_regex_map() -> None:
    # "(?=x)" is an (unknown, ignored) keyword of the property's subschema, not a regex to compile
    schema = {"type": "object", "properties": {"patternProperties": {"type": "object", "(?=x)": {}}}}
    assert messages(schema, {"patternProperties": {"y": 1}}) == []


@pytest.mark.parametrize(
    "pattern,says",
    [
        (r"^.{0,5000}$", "maxLength"),  # RE2 repeats stop at 1000: say what to write instead
        (r"^[A-Za-z0-9+/]{4,4096}={0,2}$", "maxLength"),
        (r"^(?=a)", "lookahead"),
        (r"^(a)\1$", "backreferences"),
        (r"^[^]*$", r"[\s\S]"),
        (r"^\cJ$", r"\x{HHHH}"),
    ],
)
def test_every_refusal_says_why_and_what_to_write_instead(pattern: str, says: str) -> None:
    from das.llm.schema_check import linear_regex

    with pytest.raises(jsonschema.SchemaError) as info:
        linear_regex(pattern)
    assert "linear time" in info.value.message and says in info.value.message
