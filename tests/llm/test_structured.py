"""Schema-in-prompt structured output: parse what a model without a grammar writes, check it,
send the reasons back once, through the same provider path (scripted model, structured=prompt)."""

import pytest

from das.guardrails import service_policy
from das.llm import gateway, structured

SCHEMA = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]}


@pytest.mark.parametrize(
    "text",
    [
        '{"label": "a"}',
        'Sure! Here it is:\n```json\n{"label": "a"}\n```',
        'The answer is {"label": "a"} as requested.',
    ],
)
def test_extract_json_finds_the_value_in_prose_and_fences(text):
    assert structured.extract_json(text) == {"label": "a"}


@pytest.mark.parametrize("text", ["", "no json here", '{"label": '])
def test_extract_json_names_the_problem(text):
    with pytest.raises(ValueError, match="empty|not valid JSON"):
        structured.extract_json(text)


def _script(name, *texts):
    from das.llm.testmodel import SCRIPTS

    return SCRIPTS.register(name, [{"text": t} for t in texts], structured="prompt")


def test_prompt_mode_tells_the_model_the_schema_and_cleans_the_reply():
    model = _script("fenced", 'Here:\n```json\n{"label": "b"}\n```')
    reply = gateway.complete(
        model,
        [{"role": "system", "content": "sys"}, {"role": "user", "content": "pick"}],
        policy=service_policy("das_author"),
        response_schema=SCHEMA,
    )
    assert reply.text == '{"label": "b"}'


def test_prompt_mode_sends_schema_errors_back_once_and_counts_both_calls():
    model = _script("wrong-then-right", '{"label": "c"}', '{"label": "a"}')
    reply = gateway.complete(
        model,
        [{"role": "user", "content": "pick"}],
        policy=service_policy("das_author"),
        response_schema=SCHEMA,
    )
    assert reply.text == '{"label": "a"}'
    assert reply.input_tokens == 20 and reply.output_tokens == 10  # two calls of 10/5


def test_prompt_mode_gives_up_after_the_bound_and_returns_the_raw_text():
    model = _script("always-wrong", "not json")
    reply = gateway.complete(
        model,
        [{"role": "user", "content": "pick"}],
        policy=service_policy("das_author"),
        response_schema=SCHEMA,
    )
    assert reply.text == "not json"  # the caller's own loop sees what the model wrote
    assert reply.input_tokens == 10 * (gateway.JSON_REPAIRS + 1)


def test_the_embedded_qwen_models_use_the_prompt_and_smollm2_the_grammar():
    assert gateway.structured_mode("local/qwen2.5-coder-1.5b") == "none"
    assert gateway.structured_mode("local/qwen2.5-coder-0.5b") == "none"
    assert gateway.structured_mode("local/smollm2") == "json_object_schema"
    assert gateway.structured_mode("openai/gpt-4o-mini") == "json_schema_strict"


def test_an_object_closed_too_early_before_its_else_is_reopened() -> None:
    # measured: Qwen 1.5B wrote this outline for a nested decision (one '}' too many)
    text = (
        '{"steps": [{"task": "A"}, {"if": "x", "then": [{"task": "B"}, {"if": "y", "then": [{"task": "C"}], '
        '"else": [{"task": "D"}]}]}, "else": [{"task": "E"}]}]}'
    )
    assert structured.extract_json(text) == {
        "steps": [
            {"task": "A"},
            {
                "if": "x",
                "then": [{"task": "B"}, {"if": "y", "then": [{"task": "C"}], "else": [{"task": "D"}]}],
                "else": [{"task": "E"}],
            },
        ]
    }


def test_a_reply_that_stops_early_is_closed_innermost_first() -> None:
    assert structured.extract_json('{"a": [1, {"b": "x]}", "c": [2') == {"a": [1, {"b": "x]}", "c": [2]}]}


@pytest.mark.parametrize("text", ['{"a": ]', '{"a" 1}', '{"a": 1,, }'])
def test_bracket_repair_does_not_invent_structure(text: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        structured.extract_json(text)


def test_a_parallel_list_closed_before_its_last_branch_is_reopened() -> None:
    text = '{"steps": [{"parallel": [[{"task": "A"}, {"task": "B"}]], [{"task": "C"}]}, {"task": "D"}]}'
    assert structured.extract_json(text) == {
        "steps": [{"parallel": [[{"task": "A"}, {"task": "B"}], [{"task": "C"}]]}, {"task": "D"}]
    }


def test_an_object_that_starts_without_its_key_gets_the_callers_leading_key() -> None:
    text = '{"steps": [{"task": "A"}, {"agent reviews the draft", "by": "person"}]}'
    assert structured.extract_json(text, bare_key="task") == {
        "steps": [{"task": "A"}, {"task": "agent reviews the draft", "by": "person"}]
    }
    with pytest.raises(ValueError, match="not valid JSON"):
        structured.extract_json(text)  # without a leading key nothing is guessed


def test_a_list_closed_early_inside_a_code_fence_is_reopened_and_the_fence_dropped() -> None:
    text = '```json\n{"steps": [{"task": "A"}, {"task": "B"}],\n {"task": "C"}\n]}\n```'
    assert structured.extract_json(text) == {"steps": [{"task": "A"}, {"task": "B"}, {"task": "C"}]}
