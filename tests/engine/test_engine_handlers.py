"""Outcome mapping of the worker, without an engine (docs/engine.md, "The worker")."""

from __future__ import annotations

import json

import pytest
from engine_facts import FakeFacts

from das.camunda.client import ExternalTask
from das.contracts import Policy, TdeResult
from das.engine.handlers import (
    correlation_of,
    default_idempotency_key,
    failure_retries,
    outcome_for_result,
    parse_task_spec,
)
from das.errors import InvalidInput


def task(retries=None, **variables) -> ExternalTask:
    return ExternalTask.from_json(
        {
            "id": "t1",
            "topicName": "das-tde-probabilistic",
            "workerId": "w",
            "retries": retries,
            "processInstanceId": "pi1",
            "activityId": "tde",
            "activityInstanceId": "tde:ai1",
            "businessKey": None,
            "priority": 0,
            "variables": {
                k: {"type": "Json", "value": json.dumps(v)}
                if isinstance(v, dict)
                else {"type": "String", "value": v}
                for k, v in variables.items()
            },
        }
    )


def result(stop_reason: str, status: str = "failed") -> TdeResult:
    return TdeResult(status=status, stop_reason=stop_reason, message="why")


@pytest.mark.parametrize(
    "stop,code",
    [
        ("max_iterations", "DAS_GUARDRAIL"),
        ("timeout", "DAS_GUARDRAIL"),
        ("max_tokens", "DAS_GUARDRAIL"),
        ("max_cost_usd", "DAS_GUARDRAIL"),
        ("max_tool_calls", "DAS_GUARDRAIL"),
        ("invalid_output", "DAS_INVALID_OUTPUT"),
        ("policy_denied", "DAS_POLICY_DENIED"),
    ],
)
def test_stops_become_bpmn_errors_with_the_result(stop: str, code: str) -> None:
    out = outcome_for_result(task(), result(stop), Policy())
    assert out.kind == "bpmn_error" and out.error_code == code
    assert out.variables["tdeResult"].value["stop_reason"] == stop
    assert out.variables["tdeStatus"] == "failed"


def test_success_completes_with_json_and_flat_status() -> None:
    out = outcome_for_result(task(), result("completed", "succeeded"), Policy())
    assert out.kind == "complete"
    assert out.variables["tdeStatus"] == "succeeded"
    assert out.variables["tdeResult"].value["status"] == "succeeded"


def test_technical_failure_uses_policy_retries_then_counts_down() -> None:
    policy = Policy(retries=3, retry_backoff_s=2.5)
    first = outcome_for_result(task(), result("error"), policy)
    assert (first.kind, first.retries, first.retry_timeout_ms) == ("failure", 3, 2500)
    assert outcome_for_result(task(retries=3), result("error"), policy).retries == 2
    assert outcome_for_result(task(retries=1), result("error"), policy).retries == 0  # -> incident
    assert failure_retries(task(retries=0), policy) == 0


def test_a_failure_retrying_cannot_fix_raises_an_incident_at_once() -> None:
    """A permanent provider error (bad key) or a side effect of unknown outcome: 0 retries."""
    permanent = TdeResult(status="failed", stop_reason="error", message="auth", retryable=False)
    out = outcome_for_result(task(), permanent, Policy(retries=5))
    assert (out.kind, out.retries) == ("failure", 0)


def test_spec_gets_correlation_and_idempotency_defaults() -> None:
    t = task(taskSpec={"task_type": "summarize", "prompt": "p"}, correlationId="c-1")
    spec = parse_task_spec(t, correlation_of(t))
    assert spec.correlation_id == "c-1"
    # the activity instance: the namespace (who owns the key) comes from the engine, not the key
    assert spec.idempotency_key == default_idempotency_key(t) == "tde:ai1"
    own = task(taskSpec={"task_type": "s", "prompt": "p", "idempotency_key": "mine", "correlation_id": "x"})
    spec = parse_task_spec(own, correlation_of(own))
    assert (spec.idempotency_key, spec.correlation_id) == ("mine", "x")


def test_bad_spec_is_invalid_input_naming_the_field() -> None:
    with pytest.raises(InvalidInput, match="prompt"):
        parse_task_spec(task(taskSpec={"task_type": "s"}), "c")
    with pytest.raises(InvalidInput, match="missing"):
        parse_task_spec(task(), "c")


def test_human_gate_sets_tde_needs_review_only_when_it_applies() -> None:
    gated = TdeResult(status="succeeded", stop_reason="completed", needs_review=True)
    plain = TdeResult(status="succeeded", stop_reason="completed")
    assert outcome_for_result(task(), gated, Policy()).variables["tdeNeedsReview"] is True
    out = outcome_for_result(task(), plain, Policy())
    assert out.kind == "complete" and "tdeNeedsReview" not in out.variables
    assert out.variables["tdeStatus"] == "succeeded"


def test_json_logs_mask_secret_values(monkeypatch) -> None:
    import logging

    from das.engine.metrics import JsonFormatter

    monkeypatch.setenv("DAS_ENGINE_PASSWORD", "hunter2-very-secret")
    record = logging.LogRecord(
        "das.worker", logging.ERROR, __file__, 1, "failed: hunter2-very-secret", None, None
    )
    record.error = "auth with hunter2-very-secret refused"
    line = JsonFormatter().format(record)
    assert "hunter2-very-secret" not in line and line.count("[SECRET]") == 2


def test_a_drafted_step_builds_its_spec_from_the_registry_and_mapped_variables() -> None:
    t = ExternalTask.from_json(
        {
            "id": "t1",
            "topicName": "das-tde-probabilistic",
            "workerId": "w",
            "retries": None,
            "processInstanceId": "pi1",
            "activityId": "s1",
            "activityInstanceId": "s1:ai1",
            "businessKey": None,
            "priority": 0,
            "variables": {
                "taskType": {"type": "String", "value": "classify"},
                "tdeInputs": {"type": "String", "value": '{"text": "ticketText", "labels": "labels"}'},
                "tdeOutputs": {"type": "String", "value": '{"label": "ticketLabel"}'},
                "ticketText": {"type": "String", "value": "charged twice"},
                "labels": {"type": "Json", "value": '["billing", "other"]'},
                "correlationId": {"type": "String", "value": "c-9"},
            },
        }
    )
    spec = parse_task_spec(t, correlation_of(t))
    assert (spec.task_type, spec.inputs, spec.correlation_id) == (
        "classify",
        {"text": "charged twice", "labels": ["billing", "other"]},
        "c-9",
    )
    assert spec.idempotency_key == "s1:ai1" and spec.prompt
    from das.engine.step_spec import mapped_outputs

    done = TdeResult(status="succeeded", stop_reason="completed", outputs={"label": "billing", "reason": "r"})
    assert mapped_outputs(t.variables, done) == {"ticketLabel": "billing"}
    assert mapped_outputs(t.variables, result("max_iterations")) == {}


def test_a_conflicting_correlation_id_in_a_task_spec_is_not_used() -> None:
    t = task(taskSpec={"task_type": "s", "prompt": "p", "correlation_id": "forged"}, correlationId="c-real")
    assert parse_task_spec(t, correlation_of(t)).correlation_id == "c-real"


def test_a_step_whose_mapped_inputs_fail_the_schema_is_a_bpmn_error(das_home) -> None:
    from das.engine.handlers import HandlerContext, handle_tde

    t = ExternalTask.from_json(
        {
            "id": "t1",
            "topicName": "das-tde-probabilistic",
            "workerId": "w",
            "retries": None,
            "processInstanceId": "pi1",
            "activityId": "s1",
            "activityInstanceId": "s1:ai1",
            "businessKey": None,
            "priority": 0,
            "variables": {
                "taskType": {"type": "String", "value": "classify"},
                "tdeInputs": {"type": "String", "value": '{"text": "missing"}'},
            },
        }
    )
    out = handle_tde(t, HandlerContext(model="test/auto"))
    assert (out.kind, out.error_code) == ("bpmn_error", "DAS_INVALID_INPUT") and "inputs" in out.message


def test_a_steps_own_retries_and_backoff_are_honoured() -> None:
    """What a nightly add_retry refactor writes (retries, retryBackoff) is what the worker uses."""

    def step(**variables: str) -> ExternalTask:
        t = task()
        t.variables.update(variables)
        return t

    policy = Policy(retries=5, retry_backoff_s=2)
    first = outcome_for_result(step(retries="3", retryBackoff="PT5M"), result("error"), policy)
    assert (first.retries, first.retry_timeout_ms) == (3, 300_000)
    # a variable may only tighten: never more retries, never a shorter backoff than the policy's
    loose = outcome_for_result(step(retries="1000", retryBackoff="PT0S"), result("error"), policy)
    assert (loose.retries, loose.retry_timeout_ms) == (5, 2000)
    assert outcome_for_result(step(retries="junk"), result("error"), policy).retries == 5


def test_step_outputs_never_overwrite_control_variables() -> None:
    """Tried: a step (or a starter-supplied tdeOutputs) mapping an output onto tdeNeedsReview,
    tdeStatus or correlationId, and a taskSpec in scope hijacking a drafted step."""
    from das.engine.handlers import HandlerContext, handle_tde

    def step(**variables: str) -> ExternalTask:
        t = task()
        t.variables.update(variables)
        return t

    for target in ("tdeNeedsReview", "tdeStatus", "correlationId", "taskSpec"):
        out = handle_tde(
            step(taskType="classify", tdeInputs="{}", tdeOutputs=f'{{"label": "{target}"}}'),
            HandlerContext(model="test/auto"),
        )
        assert (out.kind, out.error_code) == ("bpmn_error", "DAS_INVALID_INPUT") and target in out.message
    hijack = step(
        taskType="classify",
        tdeInputs='{"text": "t", "labels": "l"}',
        t="x",
        l=["a", "b"],
        taskSpec={"task_type": "summarize", "prompt": "say hi"},
    )
    spec = parse_task_spec(hijack, correlation_of(hijack))
    assert spec.task_type == "classify" and spec.prompt != "say hi"


def test_a_stop_after_a_side_effect_requires_compensation_and_the_compensator_fails_loudly(
    das_home, tmp_path
):
    """A loop that POSTed and then ran out of iterations: compensate_required (completed, so the
    template routes to compensation); das-tde-compensate without an adapter is an incident that
    lists the effect; with the entry's compensating adapter it completes."""
    import yaml

    from das.adapters import adapters
    from das.agents.tde_loop import run_tde
    from das.contracts import TaskSpec
    from das.engine.handlers import HandlerContext, handle_compensate
    from das.llm.testmodel import register_script
    from das.store.keys import scoped_key
    from das.tools import registry
    from das.tools.base import Tool

    facts = FakeFacts()
    facts.instances["pi1"] = {"id": "pi1", "rootProcessInstanceId": "pi1", "superProcessInstanceId": None}
    namespace = facts.scope("pi1").namespace  # the worker runs the loop under the task's namespace
    box = {
        **registry.TOOLS,
        "pay": Tool("pay", "pays", {"type": "object"}, lambda ctx, args: {"paid": True}, side_effecting=True),
    }
    ops = tmp_path / "ops.yaml"
    ops.write_text("allowed_tools: [finish, pay]\nmax_iterations: 2\n")
    model = register_script(
        "pay-then-loop", [{"tool_calls": [{"name": "pay", "arguments": {"n": 1}}]}, {"text": "thinking"}]
    )
    res = run_tde(
        TaskSpec(task_type="payer", prompt="pay", idempotency_key="comp-1"),
        model=model,
        policy_file=str(ops),
        tools=box,
        namespace=namespace,
    )
    assert (res.status, res.stop_reason) == ("compensate_required", "max_iterations")
    out = outcome_for_result(task(), res, Policy())
    assert out.kind == "complete" and out.variables["tdeStatus"] == "compensate_required"

    def comp_task() -> ExternalTask:
        t = task()
        t.variables.update(tdeResult=res.model_dump(mode="json"), taskType="payer")
        return t

    loud = handle_compensate(comp_task(), HandlerContext(facts=facts))
    assert loud.kind == "failure" and loud.retries == 0 and "by hand" in loud.message
    assert f"{scoped_key(namespace, 'comp-1')}:" in loud.message
    undone = []
    refund = Tool(
        "refund_for_tests",
        "refunds",
        {"type": "object"},
        lambda ctx, args: undone.append(args["effects"]) or {"ok": True},
    )
    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / "payer.yaml").write_text(
        yaml.safe_dump(
            {"task_type": "payer", "executor": {"kind": "probabilistic", "compensate": "refund_for_tests"}}
        )
    )
    done = handle_compensate(
        comp_task(), HandlerContext(adapters={**adapters(), "refund_for_tests": refund}, facts=facts)
    )
    assert done.kind == "complete" and done.variables["tdeStatus"] == "compensated"
    assert undone and undone[0][0]["tool"] == "pay"


def test_a_transient_failure_under_retry_at_process_completes_with_status_retry() -> None:
    transient = TdeResult(status="failed", stop_reason="error", message="provider down", retryable=True)
    out = outcome_for_result(task(), transient, Policy(retry_at="process"))
    assert out.kind == "complete" and out.variables["tdeStatus"] == "retry"
    assert outcome_for_result(task(), transient, Policy()).kind == "failure"
    permanent = transient.model_copy(update={"retryable": False})
    assert outcome_for_result(task(), permanent, Policy(retry_at="process")).kind == "failure"
