"""Output checks beyond the schema: schema-valid junk is not "succeeded"."""

import pytest

from das.agents.tde_loop import run_tde
from das.checks import OutputCheck, failed_checks, is_placeholder
from das.contracts import TaskSpec
from das.llm.testmodel import register_script

SCHEMA = {
    "type": "object",
    "properties": {"steps": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
    "required": ["steps"],
}
CHECKS = [
    {"path": "steps", "rule": "min_items", "n": 3},
    {"path": "steps", "rule": "min_words", "n": 2},
    {"path": "steps", "rule": "mentions_input", "input": "topic"},
]
RIGHT = ["Check the invoice", "Match invoice to order", "Approve the invoice"]


def _finish(steps):
    return {"tool_calls": [{"name": "finish", "arguments": {"outputs": {"steps": steps}}}]}


def _spec(**kw):
    return TaskSpec(
        task_type="plan_steps",
        prompt="List three steps",
        inputs={"topic": "invoice"},
        output_schema=SCHEMA,
        checks=CHECKS,
        **kw,
    )


@pytest.mark.parametrize("text", ['finish.outputs:[{"', "...", "<step>", "TODO", "lorem ipsum dolor"])
def test_builtin_check_catches_junk_the_schema_lets_through(text):
    assert failed_checks([], {"steps": [text]}, {})


@pytest.mark.parametrize("text", ["none", "Check the invoice", "billing", "N/A"])
def test_builtin_check_leaves_real_answers_alone(text):
    assert failed_checks([], {"label": text}, {}) == []


@pytest.mark.parametrize(
    "check,outputs,ok",
    [
        ({"path": "label", "rule": "non_empty"}, {"label": " "}, False),
        ({"path": "label", "rule": "from_enum", "values": ["a", "b"]}, {"label": "c"}, False),
        ({"path": "label", "rule": "from_enum", "values": ["a", "b"]}, {"label": "a"}, True),
        ({"path": "items", "rule": "min_items", "n": 2}, {"items": ["x"]}, False),
        ({"path": "items.*", "rule": "min_words", "n": 2}, {"items": ["two words", "one"]}, False),
        ({"path": "s", "rule": "no_placeholder"}, {"s": "N/A"}, False),
        ({"path": "s", "rule": "mentions_input", "input": "name"}, {"s": "Dear Ms Jones"}, True),
        ({"path": "s", "rule": "mentions_input", "input": "name"}, {"s": "Dear customer"}, False),
        ({"path": "missing", "rule": "non_empty"}, {"s": "x"}, False),
    ],
)
def test_each_rule_passes_right_and_fails_wrong(check, outputs, ok):
    assert (failed_checks([OutputCheck.model_validate(check)], outputs, {"name": "Jones"}) == []) is ok


def test_a_failed_check_goes_back_to_the_model_and_a_right_answer_then_succeeds():
    model = register_script("junk-then-right", [_finish(['finish.outputs:[{"']), _finish(RIGHT)])
    result = run_tde(_spec(), model=model)
    assert result.status == "succeeded" and result.outputs == {"steps": RIGHT}
    repairs = [s.evaluation for s in result.trace if s.phase == "repair"]
    assert len(repairs) == 1 and "fail checks" in repairs[0]


def test_schema_valid_junk_never_counts_as_succeeded():
    model = register_script(
        "always-junk", [_finish(["a", "b", "c"])]
    )  # valid schema, fails min_words/mentions
    result = run_tde(_spec(), model=model)
    assert result.status == "failed" and result.stop_reason == "invalid_output"
    assert result.outputs == {}


def test_a_registry_entry_checks_apply_to_specs_of_its_type(das_home):
    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / "brief.yaml").write_text(
        "task_type: brief\nexecutor: {kind: probabilistic}\n"
        "output_schema: {type: object, properties: {summary: {type: string}}, required: [summary]}\n"
        "checks:\n  - {path: summary, rule: min_words, n: 4}\n  - {path: summary, rule: mentions_input, input: text}\n"
    )
    junk = {"summary": "Lorem ipsum dolor sit"}
    model = register_script(
        "summary-junk", [{"tool_calls": [{"name": "finish", "arguments": {"outputs": junk}}]}]
    )
    result = run_tde(
        TaskSpec(task_type="brief", prompt="Summarise", inputs={"text": "The invoice is late."}), model=model
    )
    assert result.status == "failed" and result.stop_reason == "invalid_output"
    good = {"summary": "The supplier invoice is late"}
    model = register_script(
        "summary-good", [{"tool_calls": [{"name": "finish", "arguments": {"outputs": good}}]}]
    )
    result = run_tde(
        TaskSpec(task_type="brief", prompt="Summarise", inputs={"text": "The invoice is late."}), model=model
    )
    assert result.status == "succeeded"


def test_a_spec_with_a_malformed_check_is_invalid_input():
    from das.errors import InvalidInput

    with pytest.raises(InvalidInput, match="checks"):
        run_tde(
            TaskSpec(
                task_type="x", prompt="p", output_schema=SCHEMA, checks=[{"path": "a", "rule": "bogus"}]
            ),
            model="test/auto",
        )


def test_placeholder_detection_is_strict_only_when_asked():
    assert is_placeholder("N/A") and not is_placeholder("N/A", strict=False)


# The one placeholder rule (the loop's checks and the evals' scorer): a table of values.
SURE_PLACEHOLDERS = [
    "...",
    "…",
    "TODO",
    "tbd",
    "string",
    "Lorem ipsum dolor",
    "<step>",
    "<describe the step>",
    'finish.outputs:[{"',
    '{"steps": ["',
    "outputs: {",
    '"a": [1]',
]
STRICT_ONLY_PLACEHOLDERS = [
    "",
    "   ",
    "N/A",
    "none",
    "null",
    "---",
    "___",
    "???",
    "x",
    "xxx",
    "value",
    "text",
    "example",
    "sample",
    "description",
    "placeholder",
    "foo",
    "step 1",
    "Step 2:",
    "item",
    "answer 3",
    "task #4",
    "[name]",
    "{value}",
    "Check the invoice...",
    "todo: write step",
    "Pay later (TBD)",
    "Fix the FIXME",
    "see XXXX",
    None,
]
REAL_VALUES = [
    "Check the invoice",
    "Step 1: match the invoice to the PO",
    "Pay via SEPA transfer",
    "Confirm amount < 1000 EUR",
    "Approve in the ERP system",
    "Log the ticket ID",
    "billing",
    "The supplier invoice is late",
    "Stepwise approval",
    "Notes: a [draft] until signed",
    0,
    3.5,
    True,
]


@pytest.mark.parametrize("text", SURE_PLACEHOLDERS)
def test_sure_placeholders_are_flagged_strict_or_not(text):
    assert is_placeholder(text) and is_placeholder(text, strict=False)


@pytest.mark.parametrize("text", STRICT_ONLY_PLACEHOLDERS)
def test_strict_placeholders_are_flagged_only_when_strict(text):
    assert is_placeholder(text) and not is_placeholder(text, strict=False)


@pytest.mark.parametrize("text", REAL_VALUES)
def test_real_values_are_never_placeholders(text):
    assert not is_placeholder(text) and not is_placeholder(text, strict=False)
