"""Capability records, fallbacks and strict schemas, through the scripted test provider (the
same litellm path as a real server; the real server is ``test_real_server.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from das.contracts import Policy
from das.errors import InvalidInput, PolicyDenied, TransientUpstreamError, UpstreamError
from das.llm import gateway
from das.llm.capabilities import DeclaredModel, load_declared
from das.llm.strict_schema import NotStrictable, from_strict, to_strict
from das.llm.testmodel import SCRIPTS, register_script

SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["a", "b"]}, "note": {"type": "string"}},
    "required": ["category"],
}
ASK = [{"role": "user", "content": "classify"}]


def _script(name: str, **options) -> str:
    return SCRIPTS.register(name, [{"text": '{"category": "a"}'}], **options)


def test_a_refused_mode_teaches_the_next_weaker_one_once_and_is_remembered(das_home: Path, caplog) -> None:
    model = _script("refuses-schema", structured="json_schema", refuses=["json_schema"])
    reply = gateway.complete(model, ASK, policy=Policy(), response_schema=SCHEMA)
    assert json.loads(reply.text) == {"category": "a"}
    caps = gateway.capabilities(model)
    assert (caps.structured, caps.source["structured"]) == ("json_object_schema", "learned")
    gateway.complete(model, ASK, policy=Policy(), response_schema=SCHEMA)  # no second refusal
    assert sum("does not take structured output" in r.message for r in caplog.records) == 1
    saved = json.loads((das_home / "models_learned.json").read_text())
    assert saved[model]["structured"] == "json_object_schema"


def test_a_server_that_takes_no_response_format_ends_at_schema_in_the_prompt() -> None:
    model = _script(
        "refuses-all",
        structured="json_schema_strict",
        refuses=["json_schema_strict", "json_schema", "json_object_schema", "json_object"],
    )
    reply = gateway.complete(model, ASK, policy=Policy(), response_schema=SCHEMA)
    assert json.loads(reply.text) == {"category": "a"}
    assert gateway.capabilities(model).structured == "none"
    assert gateway.capabilities(model).authoring_form == "outline"


def test_strict_mode_sends_the_strict_form_and_maps_the_nulls_back(monkeypatch) -> None:
    seen: list[dict] = []
    model = SCRIPTS.register(
        "strict-null", [{"text": '{"category": "b", "note": null}'}], structured="json_schema_strict"
    )
    real = gateway._call

    def spy(litellm, kwargs, *args, **kw):
        seen.append(kwargs.get("response_format"))
        return real(litellm, kwargs, *args, **kw)

    monkeypatch.setattr(gateway, "_call", spy)
    reply = gateway.complete(model, ASK, policy=Policy(), response_schema=SCHEMA)
    sent = seen[0]["json_schema"]
    assert sent["strict"] is True and sent["schema"]["required"] == ["category", "note"]
    assert sent["schema"]["additionalProperties"] is False
    value = json.loads(reply.text)
    assert value == {"category": "b"}
    jsonschema.validate(value, SCHEMA)


def test_strict_form_of_nested_schemas_and_open_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "minLength": 2}, "qty": {"type": "integer"}},
                    "required": ["name"],
                },
            },
            "kind": {"$ref": "#/$defs/kind"},
        },
        "required": ["items"],
        "$defs": {"kind": {"enum": ["x", "y"]}},
    }
    strict = to_strict(schema)
    item = strict["properties"]["items"]["items"]
    assert item["required"] == ["name", "qty"] and item["properties"]["qty"]["type"] == ["integer", "null"]
    assert "minLength" not in item["properties"]["name"] and item["additionalProperties"] is False
    assert strict["properties"]["kind"] == {"anyOf": [{"$ref": "#/$defs/kind"}, {"type": "null"}]}
    back = from_strict({"items": [{"name": "ab", "qty": None}], "kind": None}, schema)
    assert back == {"items": [{"name": "ab"}]}
    jsonschema.validate(back, schema)
    with pytest.raises(NotStrictable):
        to_strict({"type": "object", "properties": {"inputs": {"type": "object"}}})  # a free map
    with pytest.raises(NotStrictable):
        to_strict(
            {
                "type": "object",
                "properties": {"a": {"type": "object", "additionalProperties": {"type": "string"}}},
            }
        )


def test_an_open_schema_goes_non_strict_instead_of_failing(monkeypatch) -> None:
    model = SCRIPTS.register(
        "strict-open", [{"text": '{"inputs": {"x": 1}}'}], structured="json_schema_strict"
    )
    seen: list[dict] = []
    real = gateway._call
    monkeypatch.setattr(
        gateway,
        "_call",
        lambda litellm, kwargs, *a, **k: seen.append(kwargs) or real(litellm, kwargs, *a, **k),
    )
    gateway.complete(
        model,
        ASK,
        policy=Policy(),
        response_schema={"type": "object", "properties": {"inputs": {"type": "object"}}},
    )
    assert seen[0]["response_format"]["json_schema"]["strict"] is False


def test_a_4xx_is_one_attempt_and_a_rate_limit_is_retried() -> None:
    bad = register_script("bad-400", [{"raise": "bad_request"}])
    with pytest.raises(UpstreamError) as err:
        gateway.complete(bad, ASK, policy=Policy(), retries=3, backoff_s=0)
    assert not isinstance(err.value, TransientUpstreamError) and "test/bad-400" in err.value.message
    limited = register_script("rate-limited", [{"raise": "rate_limit"}])
    with pytest.raises(TransientUpstreamError) as err:
        gateway.complete(limited, ASK, policy=Policy(), retries=2, backoff_s=0)
    assert "after 3 attempts" in err.value.message


def test_a_server_refusing_tools_switches_the_loop_to_json_actions() -> None:
    from das.agents.tde_loop import run_tde
    from das.contracts import TaskSpec

    model = SCRIPTS.register(
        "no-tools-server", [{"auto_finish": True}], refuses_tools=True, native_tools=True
    )
    spec = TaskSpec(task_type="t", prompt="finish", output_schema=SCHEMA)
    result = run_tde(spec, model=model)
    assert result.status == "succeeded", result.message
    assert any("switched to JSON actions" in (s.evaluation or "") for s in result.trace)
    assert gateway.capabilities(model).tools is False  # learned for the next run


def test_models_yaml_declares_modes_tools_and_prices(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "openai/my-model:\n  structured: json_object\n  tools: false\n  api_base: https://llm.example.com/v1\n"
        "  input_per_mtok: 0.1\n  output_per_mtok: 0.2\n"
    )
    monkeypatch.setenv("DAS_MODELS_FILE", str(path))
    caps = gateway.capabilities("openai/my-model")
    assert (caps.structured, caps.tools, caps.source) == (
        "json_object",
        False,
        {"structured": "declared", "tools": "declared"},
    )
    assert not caps.local and caps.authoring_form == "outline"
    assert gateway.price_of("openai/my-model", Policy()) == (0.1, 0.2)
    gateway.check_priced(Policy(), "openai/my-model")  # declared: may run under max_cost_usd
    with pytest.raises(PolicyDenied):
        gateway.check_priced(Policy(), "openai/unpriced-model")


def test_a_bad_models_yaml_is_an_error_naming_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("openai/x: {structured: telepathy}\n")
    with pytest.raises(InvalidInput, match="openai/x"):
        load_declared(path)
    path.write_text("openai/x: {api_bsae: http://a}\n")
    with pytest.raises(InvalidInput, match="api_bsae"):
        load_declared(path)
    assert DeclaredModel().structured is None


def test_hosted_models_come_from_litellm_and_unknown_ones_default_to_json_schema_without_tools() -> None:
    hosted = gateway.capabilities("openai/gpt-4o-mini")
    assert (hosted.structured, hosted.tools, hosted.source["structured"]) == (
        "json_schema_strict",
        True,
        "litellm",
    )
    unknown = gateway.capabilities("openai/some-server-model")
    assert (unknown.structured, unknown.tools) == ("json_schema", False)
    assert unknown.source == {"structured": "default", "tools": "default"}


def test_odd_schemas_go_non_strict_instead_of_crashing() -> None:
    for schema in (
        {"type": "object", "properties": {"x": True}},
        {"type": "object", "properties": {"t": {"type": "array", "items": [{"type": "string"}]}}},
    ):
        with pytest.raises(NotStrictable):
            to_strict(schema)
    loop = {
        "$defs": {
            "n": {
                "anyOf": [{"$ref": "#/$defs/n"}, {"type": "object", "properties": {"a": {"type": "string"}}}]
            }
        },
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/n"}},
    }
    assert from_strict({"n": {"a": "x"}}, loop) == {"n": {"a": "x"}}  # a $ref cycle: no RecursionError


def test_from_strict_keeps_nulls_the_original_schema_allows() -> None:
    schema = {"type": "object", "properties": {"any": {}, "none": {"const": None}, "opt": {"type": "string"}}}
    assert from_strict({"any": None, "none": None, "opt": None}, schema) == {"any": None, "none": None}


def test_grammar_form_keeps_properties_named_like_keywords() -> None:
    from das.llm.strict_schema import grammar_schema

    schema = {
        "type": "object",
        "properties": {
            "format": {"type": "string", "format": "date"},
            "pattern": {"type": "string", "pattern": "\\\\d+"},
            "examples": {"type": "string", "minLength": "x"},
        },
        "required": ["format", "pattern", "examples"],
    }
    out = grammar_schema(schema)
    assert set(out["properties"]) == {"format", "pattern", "examples"}
    assert out["properties"]["format"] == {"type": "string"} and "pattern" not in out["properties"]["pattern"]


def test_das_models_check_reports_a_probe_reply_of_the_wrong_shape_as_an_error() -> None:
    from das.llm.check import check_model

    model = SCRIPTS.register("wrong-shape", [{"text": '{"nope": 1}'}], structured="prompt")
    result = check_model(model, tools=False)
    assert result.structured_ok is False and result.error and "probe schema" in result.error
