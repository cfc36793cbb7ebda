"""The TDE eval: its cases are well-formed and answerable, its scorer is strict, and a run
through the real loop counts a right answer right and a schema-valid wrong one not right."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from das.errors import InvalidInput
from das.evals.tde import (
    Check,
    TdeCase,
    case_spec,
    cases_root,
    load_cases,
    run_case,
    run_tde_eval,
    score,
    score_check,
)
from das.guardrails import resolve_policy
from das.llm.testmodel import register_script
from das.registry import lookup
from das.views.reports import render_tde_eval

CASES = load_cases()


def finish_with(outputs: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "finish", "arguments": {"outputs": outputs}}]}


# --- the cases ------------------------------------------------------------------------------


def test_enough_cases_of_each_kind() -> None:
    kinds = Counter(case.kind for case in CASES)
    assert len(CASES) >= 30
    assert kinds["classification"] >= 6 and kinds["extraction"] >= 6 and kinds["planning"] >= 6, kinds
    assert kinds["other"] == 0, "every task_type starts with eval_classify_, eval_extract_ or eval_plan_"
    assert len({case.id for case in CASES}) == len(CASES)


def _unbounded(schema: Any, where: str = "") -> list[str]:
    """Strings without maxLength/enum/const, arrays without maxItems, open objects."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return problems
    kind = schema.get("type")
    if kind == "string" and not ({"maxLength", "enum", "const"} & set(schema)):
        problems.append(f"{where or '(root)'}: string without maxLength")
    if kind == "array":
        if "maxItems" not in schema:
            problems.append(f"{where}: array without maxItems")
        problems += _unbounded(schema.get("items"), f"{where}[]")
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where or '(root)'}: additionalProperties is not false")
        for name, sub in (schema.get("properties") or {}).items():
            problems += _unbounded(sub, f"{where}.{name}" if where else name)
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_is_well_formed(case: TdeCase) -> None:
    jsonschema.Draft202012Validator.check_schema(case.output_schema)
    assert not _unbounded(case.output_schema)
    assert case.file.split("_", 1)[1].removesuffix(".yaml") == case.id, "file name is NN_<id>.yaml"
    assert len(case.prompt) <= 300 and len(str(case.inputs)) <= 600, "small model: keep it short"
    # an eval task type is declared nowhere, so it runs under the narrow "*" policy, tightened to finish
    assert lookup(case.task_type) is None
    policy = resolve_policy(case_spec(case))
    assert policy.allowed_tools == ["finish"]
    assert policy.max_iterations <= 3 and policy.timeout_s <= 120


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_expected_answers_fit_the_schema(case: TdeCase) -> None:
    """An exact answer the checks expect must be one the output schema allows (else unanswerable)."""
    props = case.output_schema["properties"]
    for check in case.expect:
        sub = props[check.path.split(".")[0]]
        if check.equals is not None:
            jsonschema.validate(check.equals, sub)
        if check.one_of is not None:
            for value in check.one_of:
                jsonschema.validate(value, sub)
        if check.count is not None:
            assert sub.get("minItems", 0) <= check.count <= sub["maxItems"]
            assert sub["maxItems"] > check.count, "the schema must not force the count (that is the check)"
    if case.kind == "planning":
        kinds = {c.kind for c in case.expect}
        assert {"count", "each_min_words", "no_placeholder"} <= kinds
        assert kinds & {"mentions_any", "contains_all"}, "a plan must be checked for content"


def test_a_bad_case_is_refused_naming_its_file(tmp_path: Path) -> None:
    good = (cases_root() / CASES[0].file).read_text()
    (tmp_path / "01_ok.yaml").write_text(good)
    (tmp_path / "02_bad.yaml").write_text(good.replace("equals: billing", "equals: billing\n  count: 2"))
    with pytest.raises(InvalidInput, match="02_bad.yaml.*exactly one of"):
        load_cases(tmp_path)
    (tmp_path / "02_bad.yaml").write_text(good.replace("path: label", "path: labl"))
    with pytest.raises(InvalidInput, match="02_bad.yaml.*labl"):
        load_cases(tmp_path)
    (tmp_path / "02_bad.yaml").write_text(good.replace("type: string", "type: strang"))
    with pytest.raises(InvalidInput, match="02_bad.yaml.*not a valid JSON Schema"):
        load_cases(tmp_path)
    (tmp_path / "02_bad.yaml").write_text(good)
    with pytest.raises(InvalidInput, match="02_bad.yaml.*also in 01_ok.yaml"):
        load_cases(tmp_path)


# --- the scorer -----------------------------------------------------------------------------

SCORER_CASES = [
    # (check, right outputs, wrong outputs)
    ({"path": "label", "equals": "billing"}, {"label": "  Billing "}, {"label": "technical"}),
    ({"path": "name", "equals": "Maria Lopez"}, {"name": "maria  lopez"}, {"name": "Maria"}),
    ({"path": "total", "equals": 1190.0}, {"total": 1190}, {"total": 1190.5}),
    ({"path": "total", "equals": 45.5, "tolerance": 0.01}, {"total": 45.499}, {"total": 45.6}),
    ({"path": "n", "equals": 5}, {"n": 5}, {"n": "five"}),
    ({"path": "ok", "equals": True}, {"ok": True}, {"ok": 1}),
    ({"path": "a.b", "equals": "x1"}, {"a": {"b": "X1"}}, {"a": {"c": "x1"}}),
    ({"path": "items.1", "equals": "b"}, {"items": ["a", "b"]}, {"items": ["b"]}),
    (
        {"path": "iban", "one_of": ["DE89370400440532013000", "DE89 3704 0044 0532 0130 00"]},
        {"iban": "de89 3704 0044 0532 0130 00"},
        {"iban": "DE89370400440532013001"},
    ),
    ({"path": "amount", "one_of": [20, 20.5]}, {"amount": 20.5}, {"amount": 21}),
    ({"path": "steps", "count": 3}, {"steps": ["a", "b", "c"]}, {"steps": ["a", "b"]}),
    ({"path": "steps", "count": 3}, {"steps": ["a", "b", "c"]}, {"steps": "a b c"}),
    (
        {"path": "steps", "each_min_words": 2},
        {"steps": ["Check invoice", "Pay it now"]},
        {"steps": ["Check invoice", "Pay"]},
    ),
    ({"path": "steps", "each_min_words": 2}, {"steps": ["Check invoice"]}, {"steps": []}),
    (
        {"path": "summary", "each_min_words": 3},
        {"summary": "Pay the supplier"},
        {"summary": "Pay - supplier"},
    ),
    (
        {"path": "steps", "mentions_any": ["invoice"]},
        {"steps": ["Check the Invoices", "Pay"]},
        {"steps": ["Check the order", "Pay"]},
    ),
    (
        {"path": "steps", "mentions_any": ["hr", "payroll"]},
        {"steps": ["Ask HR"]},
        {"steps": ["Wait three days"]},
    ),
    (
        {"path": "summary", "mentions_any": ["refund"]},
        {"summary": "Refund issued"},
        {"summary": "Order shipped"},
    ),
    (
        {"path": "steps", "contains_all": ["INV-4410", "Nordwind"]},
        {"steps": ["Check inv-4410", "Pay Nordwind GmbH"]},
        {"steps": ["Check INV-4410", "Pay the supplier"]},
    ),
    (
        {"path": "summary", "contains_all": ["30 June"]},
        {"summary": "Due on 30  june."},
        {"summary": "Due on 30 July"},
    ),
    (
        {"path": "steps", "no_placeholder": True},
        {"steps": ["Step 1: check the invoice", "Pay it"]},
        {"steps": ["Check the invoice", "..."]},
    ),
    ({"path": "steps", "no_placeholder": True}, {"steps": ["Verify the amount"]}, {"steps": []}),
    (
        {"path": "steps", "no_placeholder": True},
        {"steps": ["Verify the amount"]},
        {"steps": ["Verify", None]},
    ),
]


@pytest.mark.parametrize(
    ("raw", "right", "wrong"),
    SCORER_CASES,
    ids=[f"{c['path']}-{next(k for k in c if k != 'path')}-{i}" for i, (c, _, _) in enumerate(SCORER_CASES)],
)
def test_scorer_passes_right_and_fails_wrong(
    raw: dict[str, Any], right: dict[str, Any], wrong: dict[str, Any]
) -> None:
    check = Check.model_validate(raw)
    passed = score_check(right, check)
    assert passed.passed, passed.detail
    failed = score_check(wrong, check)
    assert not failed.passed
    assert failed.detail and failed.check == check.describe()


def test_every_check_kind_is_covered_by_the_scorer_tests() -> None:
    covered = {Check.model_validate(raw).kind for raw, _, _ in SCORER_CASES}
    assert covered == {
        "equals",
        "one_of",
        "count",
        "each_min_words",
        "mentions_any",
        "contains_all",
        "no_placeholder",
    }


@pytest.mark.parametrize("junk", ['finish.outputs:[{"', "Check the invoice...", "n/a", None])
def test_the_scorer_uses_the_loops_placeholder_rule(junk: Any) -> None:
    """Placeholder text is judged by das.checks.is_placeholder (tests/test_checks.py holds its table)."""
    result = score_check({"steps": ["Verify the amount", junk]}, Check(path="steps", no_placeholder=True))
    assert not result.passed and "placeholder" in result.detail


def test_a_missing_path_fails_with_a_reason() -> None:
    results = score(
        {"label": "billing"}, [Check(path="labels", equals="billing"), Check(path="label.x", count=1)]
    )
    assert [r.passed for r in results] == [False, False]
    assert all("no value" in r.detail for r in results)


@pytest.mark.parametrize(
    "raw",
    [
        {"path": "a"},
        {"path": "a", "equals": 1, "count": 1},
        {"path": "a", "count": 1, "tolerance": 0.1},
        {"path": "a", "mentions_any": []},
        {"path": "a", "mentions_any": [" "]},
        {"path": "a", "no_placeholder": False},
        {"path": "a", "equal": 1},
    ],
)
def test_malformed_checks_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Check.model_validate(raw)


# --- runs through the real loop ----------------------------------------------------------------


def _two_ticket_cases(tmp_path: Path) -> Path:
    for case in CASES:
        if case.id in ("classify_ticket_billing", "classify_ticket_technical"):
            shutil.copy(cases_root() / case.file, tmp_path / case.file)
    return tmp_path


def test_a_run_counts_right_and_schema_valid_wrong_answers_apart(tmp_path: Path) -> None:
    """One scripted answer ("billing") for two cases: right for the billing ticket; valid but
    wrong for the technical one, which must count as succeeded and NOT right."""
    model = register_script("eval-says-billing", [finish_with({"label": "billing"})])
    report = run_tde_eval(model=model, cases_dir=_two_ticket_cases(tmp_path))
    rows = {r.id: r for r in report.cases}
    assert [r.status for r in report.cases] == ["succeeded", "succeeded"]
    assert rows["classify_ticket_billing"].right and not rows["classify_ticket_billing"].failed_checks
    wrong = rows["classify_ticket_technical"]
    assert not wrong.right
    assert wrong.outputs == {"label": "billing"}
    assert wrong.failed_checks == ["label == 'technical' (got 'billing')"]
    assert (
        report.summary.cases == 2
        and report.summary.succeeded_rate == 1.0
        and report.summary.right_rate == 0.5
    )
    assert report.summary.total_tokens == 30 and report.summary.by_kind["classification"]["right_rate"] == 0.5
    text = render_tde_eval(report)
    assert "classify_ticket_technical" in text and "label == 'technical'" in text and "right 50%" in text


def test_a_right_plan_and_a_placeholder_plan(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == "plan_invoice_approval")
    right = register_script(
        "eval-plan-right",
        [
            finish_with(
                {
                    "steps": [
                        "Match the invoice to the purchase order",
                        "Check amounts and VAT",
                        "Approve it in the ERP system",
                    ]
                }
            )
        ],
    )
    row = run_case(case, right)
    assert row.status == "succeeded" and row.right, row.failed_checks
    assert row.iterations == 1 and row.tokens == 15 and row.latency_s > 0
    off_topic = register_script(
        "eval-plan-off-topic",
        [finish_with({"steps": ["Open the mailbox", "Read the news", "Lock the door", "Go home early"]})],
    )
    row = run_case(case, off_topic)
    assert row.status == "succeeded" and not row.right
    assert {f.split(" (")[0] for f in row.failed_checks} == {
        "len(steps) == 3",
        "steps mentions any of ['invoice']",
    }
    lazy = register_script("eval-plan-lazy", [finish_with({"steps": ["step 1", "step 2", "..."]})])
    row = run_case(case, lazy)
    assert not row.right
    # the loop's own placeholder check may already refuse it; if it lets it through, the eval must not
    assert row.status != "succeeded" or "steps: no placeholder" in " ".join(row.failed_checks)


def test_a_repaired_answer_counts_and_a_failed_loop_is_never_right() -> None:
    case = next(c for c in CASES if c.id == "extract_invoice_total")
    right = {"invoice_number": "INV-2024-0173", "total_due": 1190}
    repaired = register_script(
        "eval-repairs",
        [finish_with({"invoice_number": "INV-2024-0173", "total_due": "1,190"}), finish_with(right)],
    )
    row = run_case(case, repaired)
    assert row.status == "succeeded" and row.right and row.iterations == 2
    never_valid = register_script("eval-never-valid", [finish_with({"total_due": 1190})])
    row = run_case(case, never_valid)
    assert row.status == "failed" and row.stop_reason == "invalid_output" and not row.right
    assert row.failed_checks == ["(not succeeded: invalid_output)"]


def test_a_failing_case_is_an_error_row_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_tde_eval(model="test/no-such-script-for-eval", cases_dir=_two_ticket_cases(tmp_path))
    assert [r.status for r in report.cases] == ["error", "error"]
    assert "no-such-script-for-eval" in (report.cases[0].message or "")
    assert report.summary.right_rate == 0.0 and report.summary.succeeded_rate == 0.0

    import das.agents.tde_loop as loop

    calls = []

    def flaky(spec: Any, *, model: str | None = None, **_: Any) -> Any:
        calls.append(spec.task_type)
        if len(calls) == 1:
            raise RuntimeError("provider exploded")
        return real(spec, model=model)

    import das.evals.tde as tde_eval

    real = loop.run_tde
    monkeypatch.setattr(tde_eval, "run_tde", flaky)  # where the eval looks it up
    model = register_script("eval-says-technical", [finish_with({"label": "technical"})])
    report = run_tde_eval(model=model, cases_dir=_two_ticket_cases(tmp_path))
    assert [(r.status, r.right) for r in report.cases] == [("error", False), ("succeeded", True)]
    assert report.cases[0].message == "RuntimeError: provider exploded"
    assert "error/-" in render_tde_eval(report)


def test_the_operator_policy_file_reaches_the_loop(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == "extract_invoice_total")
    repaired = register_script(
        "eval-needs-two",
        [
            finish_with({"invoice_number": "INV-2024-0173"}),
            finish_with({"invoice_number": "INV-2024-0173", "total_due": 1190}),
        ],
    )
    assert run_case(case, repaired).right
    operator = tmp_path / "operator.yaml"
    operator.write_text("max_tokens: 20\n")  # the script reports 15 tokens a call
    row = run_case(case, repaired, policy_file=operator)
    assert row.status == "failed" and row.stop_reason == "max_tokens" and not row.right


def test_a_provider_failure_is_a_failed_row() -> None:
    case = CASES[0]
    row = run_case(case, "test/fail-permanent")
    assert row.status == "failed" and row.stop_reason == "error" and not row.right


def test_limit_picks_the_first_cases_in_file_order() -> None:
    model = register_script("eval-auto", [{"auto_finish": True}])
    report = run_tde_eval(model=model, limit=3)
    assert [r.id for r in report.cases] == [c.id for c in CASES[:3]]
    assert {r.kind for r in report.cases} == {"classification", "extraction", "planning"}
    # the smallest schema-valid answers ("x", 0, ["x"]) are never right for extraction or planning
    assert not any(r.right for r in report.cases[1:])
