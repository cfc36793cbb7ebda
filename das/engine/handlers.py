"""Topic handlers: turn one locked external task into one engine answer (an ``Outcome``).

The mapping (docs/engine.md, "The worker"):

* succeeded                                   -> complete with ``tdeResult`` (Json) + flat
                                                 ``tdeStatus`` (String) for JUEL gateways, and
                                                 ``tdeNeedsReview=true`` when the policy's human_gate
                                                 applies (test it with execution.getVariable)
* guardrail stop (max_iterations, timeout, max_tokens, max_cost_usd, max_tool_calls)
                                              -> BPMN error ``DAS_GUARDRAIL`` + ``tdeResult``
* invalid_output                              -> BPMN error ``DAS_INVALID_OUTPUT``
* policy_denied                               -> BPMN error ``DAS_POLICY_DENIED``
* technical failure (stop_reason ``error``, or an ``UpstreamError``)
                                              -> handleFailure; retries left = policy.retries
                                                 on the first failure, then the task's retries
                                                 minus one; retryTimeout = retry_backoff_s; at 0
                                                 the engine raises an incident
  ... unless the result is not ``retryable`` (a permanent provider error such as a bad key, or a
  side effect of unknown outcome): then 0 retries, an incident at once
* a transient failure under ``retry_at: process`` -> complete with tdeStatus ``retry`` (the
                                                 template loops; ``tdeRetryKey`` makes the next
                                                 pass continue the same idempotency key)
* a stop after a side effect happened (status compensate_required)
                                              -> complete with tdeStatus, so the template compensates
* a drafted step whose mapped inputs fail the registry input schema
                                              -> BPMN error ``DAS_INVALID_INPUT``
* a task spec that cannot be run (InvalidInput) -> handleFailure with 0 retries: an incident at
                                                 once, since retrying the same input cannot help

Every key is used under the namespace the engine gives the task (``das/engine/keys.py``).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from das.adapters import adapter_for, adapters, deterministic_entries
from das.agents.tde_loop import run_tde
from das.agents.team import select_task
from das.camunda.client import EngineClient, ExternalTask
from das.camunda.variables import Json
from das.contracts import GUARDRAIL_STOPS, Policy, TaskSpec, TdeResult, TraceStep, parse_external
from das.engine.keys import RETRY_KEY_VAR, EngineFacts, EngineScope, default_idempotency_key, retry_chain
from das.engine.step_spec import (
    StepInputInvalid,
    adapter_inputs,
    is_step_task,
    mapped_outputs,
    spec_from_step,
)
from das.errors import DasError, InvalidInput, ModelRetry, PolicyDenied, UpstreamError
from das.guardrails import resolve_policy
from das.registry import lookup
from das.store import open_store
from das.store.keys import check_key, scoped_key, workspace_dir
from das.tools.base import Tool, ToolContext
from das.tools.effects import EffectBlocked, run_once

log = logging.getLogger("das.worker")

TOPIC_TDE = "das-tde-probabilistic"
TOPIC_PEO_SELECT = "das-peo-select"
TOPIC_NIGHTLY = "das-nightly"
TOPIC_COMPENSATE = "das-tde-compensate"

BPMN_ERROR_BY_STOP = {
    **{reason: "DAS_GUARDRAIL" for reason in GUARDRAIL_STOPS},
    "invalid_output": "DAS_INVALID_OUTPUT",
    "policy_denied": "DAS_POLICY_DENIED",
}


@dataclass
class Outcome:
    """What to tell the engine about one task."""

    kind: Literal["complete", "bpmn_error", "failure"]
    variables: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    message: str | None = None
    details: str | None = None
    retries: int = 0
    retry_timeout_ms: int = 0
    stop_reason: str | None = None
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    task_type: str | None = None  # for per-task-type metrics


@dataclass
class HandlerContext:
    """What the worker gives a handler besides the task."""

    model: str | None = None
    policy_file: str | None = None
    heartbeat: Callable[[], None] | None = None
    correlation_id: str | None = None
    adapters: Mapping[str, Tool] = field(default_factory=adapters, repr=False)  # adapter name -> Tool
    facts: EngineFacts = field(default_factory=EngineFacts, repr=False)  # who owns a key: the engine says


Handler = Callable[[ExternalTask, HandlerContext], Outcome]


@dataclass
class TopicHandler:
    """A handler and the variables it needs fetched (a fetchAndLock filter)."""

    handle: Handler
    variables: list[str] | None = None


def correlation_of(task: ExternalTask) -> str:
    """The task's correlationId: the variable, else taskSpec.correlation_id, else the instance."""
    spec = task.variables.get("taskSpec")
    from_spec = spec.get("correlation_id") if isinstance(spec, dict) else None
    return str(
        task.variables.get("correlationId") or from_spec or task.business_key or task.process_instance_id
    )


MAX_STEP_RETRIES = 10  # a step's own `retries` (approved BPMN, e.g. a nightly refactor) is capped here


def _step_int(value: Any) -> int | None:
    try:
        return max(0, min(int(str(value).strip()), MAX_STEP_RETRIES)) if value not in (None, "") else None
    except ValueError:
        return None


def _iso_seconds(value: Any) -> float | None:
    """``PT5M``, ``PT30S``, ``PT1H30M`` -> seconds (None if not such a duration)."""
    match = re.fullmatch(r"PT(?:(\d{1,3})H)?(?:(\d{1,4})M)?(?:(\d{1,5})S)?", str(value or "").strip())
    if not match or not any(match.groups()):
        return None
    h, m, s = (int(g or 0) for g in match.groups())
    return float(min(h * 3600 + m * 60 + s, 86400))


def failure_retries(task: ExternalTask, policy: Policy) -> int:
    """Retries left after this failure: at first the step's own ``retries`` input (what the
    drafted or nightly-refactored BPMN says) but never more than the policy allows (a variable
    may only tighten); then one less each time."""
    if task.retries is None:
        declared = _step_int(task.variables.get("retries"))
        return min(declared, max(0, policy.retries)) if declared is not None else max(0, policy.retries)
    return max(0, task.retries - 1)


def retry_backoff_ms(task: ExternalTask, policy: Policy) -> int:
    """The longer of the step's ``retryBackoff`` (ISO duration, e.g. PT5M) and the policy's."""
    declared = _iso_seconds(task.variables.get("retryBackoff"))
    return int(max(declared or 0.0, policy.retry_backoff_s) * 1000)


def failure_outcome(
    task: ExternalTask,
    policy: Policy | None,
    message: str,
    details: str | None,
    *,
    final: bool = False,
    result: TdeResult | None = None,
) -> Outcome:
    policy = policy or Policy()
    retries = 0 if final else failure_retries(task, policy)
    out = Outcome(
        "failure",
        message=message,
        details=details,
        retries=retries,
        retry_timeout_ms=retry_backoff_ms(task, policy),
        stop_reason=result.stop_reason if result else "error",
    )
    if result is not None:
        _usage_into(out, result)
    return out


def _usage_into(out: Outcome, result: TdeResult) -> None:
    out.iterations = result.usage.iterations
    out.input_tokens = result.usage.input_tokens
    out.output_tokens = result.usage.output_tokens
    out.cost_usd = result.usage.cost_usd


def outcome_for_result(task: ExternalTask, result: TdeResult, policy: Policy) -> Outcome:
    """Map a finished loop to complete / BPMN error / failure (see the module docstring)."""
    variables: dict[str, Any] = {
        "tdeResult": Json(result.model_dump(mode="json")),
        "tdeStatus": result.status,
    }
    if result.needs_review:  # policy human_gate: route to a user task (set only when it applies,
        variables["tdeNeedsReview"] = True  # so the common case writes one variable fewer)
    if task.variables.get(RETRY_KEY_VAR) is not None:  # the retried task is over: a later pass is a new task
        variables[RETRY_KEY_VAR] = None
    if result.stop_reason == "error" and result.retryable and policy.retry_at == "process":
        # the next pass of the process's retry loop continues this task under the same key,
        # so a side effect this pass made is replayed from its record, never sent again
        variables[RETRY_KEY_VAR] = Json(retry_chain(task, result.idempotency_key))
        out = Outcome("complete", variables={**variables, "tdeStatus": "retry"}, stop_reason="error")
        _usage_into(out, result)
        return out
    if result.stop_reason == "error":
        return failure_outcome(
            task,
            policy,
            f"TDE technical failure: {result.message or 'error'}",
            _trace_tail(result),
            result=result,
            final=not result.retryable,
        )
    if result.status == "compensate_required":  # the process routes it to its compensation path
        out = Outcome("complete", variables=variables, stop_reason=result.stop_reason)
        _usage_into(out, result)
        return out
    code = BPMN_ERROR_BY_STOP.get(result.stop_reason)
    if code:
        out = Outcome(
            "bpmn_error",
            variables=variables,
            error_code=code,
            message=f"{result.stop_reason}: {result.message or ''}".strip(": "),
            stop_reason=result.stop_reason,
        )
    else:
        out = Outcome("complete", variables=variables, stop_reason=result.stop_reason)
    _usage_into(out, result)
    return out


def _trace_tail(result: TdeResult) -> str:
    steps = [s.model_dump(mode="json", exclude_none=True) for s in result.trace[-5:]]
    return "\n".join(str(s) for s in steps)[:8000]


def parse_task_spec(task: ExternalTask, correlation_id: str, facts: EngineFacts | None = None) -> TaskSpec:
    """The TaskSpec of a task: an explicit ``taskSpec`` variable, or built from a drafted step's
    ``taskType``/``tdeInputs`` and the registry. The process's ``correlationId`` is the one id
    on the engine path: a different id inside a taskSpec is kept in the log, not used.
    ``facts``: the engine facts a default key may need (das/engine/keys.py)."""

    default_key = default_idempotency_key(task, facts.multi_instance if facts else None)
    if is_step_task(task.variables):
        return spec_from_step(task.variables, correlation_id, default_key)
    raw = task.variables.get("taskSpec")
    if raw is None:
        raise InvalidInput(
            "invalid taskSpec variable: missing (the task needs a Json taskSpec, or a taskType "
            "input parameter naming a registry task type)"
        )
    spec = parse_external(TaskSpec, raw, "taskSpec variable")
    updates: dict[str, Any] = {}
    process_id = task.variables.get("correlationId")
    if process_id and spec.correlation_id and spec.correlation_id != process_id:
        log.warning(
            "taskSpec correlation_id %r differs from the process correlationId %r; using the process's",
            spec.correlation_id,
            process_id,
            extra={"correlation_id": process_id},
        )
        updates["correlation_id"] = str(process_id)
    elif not spec.correlation_id:
        updates["correlation_id"] = correlation_id
    if not spec.idempotency_key:
        updates["idempotency_key"] = default_key
    return spec.model_copy(update=updates) if updates else spec


def resolve_task_policy(spec: TaskSpec, policy_file: str | None) -> Policy:
    """The merged policy the loop will use (for retries and backoff of a failure)."""

    entry = lookup(spec.task_type)
    return resolve_policy(spec, policy_file, entry.policy if entry else None)


def denied_result(spec: TaskSpec, exc: PolicyDenied) -> TdeResult:

    return TdeResult(
        status="failed",
        stop_reason="policy_denied",
        message=exc.message,
        correlation_id=spec.correlation_id,
        idempotency_key=spec.idempotency_key,
        trace=[TraceStep(iteration=0, phase="stop", evaluation="policy_denied", error=exc.message)],
    )


def engine_scope(task: ExternalTask, ctx: HandlerContext) -> EngineScope | Outcome:
    """The task's key namespace from the engine, or the failure to report (retried: the
    engine may be briefly unreachable; nothing runs without knowing whose task it is)."""
    try:
        return ctx.facts.scope(task.process_instance_id)
    except UpstreamError as exc:
        return failure_outcome(task, None, f"cannot tell whose task this is: {exc.message}", None)


def handle_tde(task: ExternalTask, ctx: HandlerContext) -> Outcome:
    """``das-tde-probabilistic``: run the guarded loop for the task's ``taskSpec``, under the
    namespace of the process that called it (das/engine/keys.py)."""

    correlation_id = ctx.correlation_id or correlation_of(task)
    try:
        spec = parse_task_spec(task, correlation_id, ctx.facts)
        policy = resolve_task_policy(spec, ctx.policy_file)
    except StepInputInvalid as exc:  # the process mapped the wrong variables: let it route that
        return Outcome(
            "bpmn_error",
            variables={"tdeStatus": "failed"},
            error_code="DAS_INVALID_INPUT",
            message=exc.message,
            stop_reason="invalid_input",
        )
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    except PolicyDenied as exc:  # e.g. the spec tries to loosen the policy
        return outcome_for_result(task, denied_result(spec, exc), Policy())
    except UpstreamError as exc:  # the engine could not say what the default key continues
        return failure_outcome(task, None, f"cannot tell which task this continues: {exc.message}", None)
    scope = engine_scope(task, ctx)
    if isinstance(scope, Outcome):
        return scope
    try:
        result = run_tde(
            spec,
            model=ctx.model,
            policy_file=ctx.policy_file,
            heartbeat=ctx.heartbeat,
            namespace=scope.namespace,
        )
    except PolicyDenied as exc:
        return outcome_for_result(task, denied_result(spec, exc), policy)
    except InvalidInput as exc:
        return failure_outcome(task, policy, exc.message, None, final=True)
    except DasError as exc:
        return failure_outcome(task, policy, f"{type(exc).__name__}: {exc.message}", None)
    except Exception as exc:  # a bug: report it to the engine (incident after retries), keep serving
        return failure_outcome(
            task, policy, f"DAS worker bug: {type(exc).__name__}: {exc}", traceback.format_exc()[-8000:]
        )
    out = outcome_for_result(task, result, policy)
    out.task_type = spec.task_type
    if out.kind == "complete" and is_step_task(task.variables):  # a hand-written taskSpec maps nothing
        out.variables.update(mapped_outputs(task.variables, result))
    return out


def handle_select(task: ExternalTask, ctx: HandlerContext) -> Outcome:
    """``das-peo-select``: an LLM team picks the next task among ``candidates``.

    Completes with ``decision`` (Json) and the flat ``nextTaskType`` (the chosen candidate's
    task_type, or ``ESCALATE``) for the orchestrator's gateway; bad candidates are an incident.
    """

    candidates = task.variables.get("candidates")
    context = task.variables.get("context")
    try:
        decision = select_task(
            candidates,
            context if isinstance(context, dict) else {},
            models=[ctx.model] if ctx.model else None,
            policy_file=ctx.policy_file,
        )
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    except DasError as exc:
        return failure_outcome(task, None, f"{type(exc).__name__}: {exc.message}", None)
    if decision.stop_reason == "error":
        return failure_outcome(task, None, "team selection: every model call failed", None)
    chosen = decision.chosen or {}
    out = Outcome(
        "complete",
        variables={
            "decision": Json(decision.model_dump(mode="json")),
            "nextTaskType": str(chosen.get("task_type") or "ESCALATE"),
        },
        stop_reason=decision.stop_reason,
    )
    out.input_tokens, out.output_tokens = decision.usage.input_tokens, decision.usage.output_tokens
    return out


def handle_nightly(task: ExternalTask, ctx: HandlerContext) -> Outcome:
    """``das-nightly``: variables ``since`` (ISO), ``keys`` (list or "a,b"), ``dryRun``; completes
    with ``nightlyReport`` (Json) and ``nightlyFiled`` (count). Bad input is an incident at once;
    an unreachable engine or store is retried."""
    from das.nightly.run import keys_var, parse_since, run_nightly  # the nightly stack loads only here

    try:
        since = parse_since(task.variables.get("since"))
        keys = keys_var(task.variables.get("keys"))
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    try:
        with EngineClient() as client:
            report = run_nightly(
                client, since=since, keys=keys, model=ctx.model, dry_run=bool(task.variables.get("dryRun"))
            )
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    except DasError as exc:
        return failure_outcome(task, None, f"{type(exc).__name__}: {exc.message}", None)
    except Exception as exc:  # a bug: an incident after retries, with the traceback for the operator
        return failure_outcome(
            task, None, f"DAS nightly bug: {type(exc).__name__}: {exc}", traceback.format_exc()[-8000:]
        )
    return Outcome(
        "complete",
        variables={"nightlyReport": Json(report.model_dump(mode="json")), "nightlyFiled": len(report.filed)},
        stop_reason="completed",
    )


def handle_adapter(task: ExternalTask, ctx: HandlerContext) -> Outcome:
    """``das-tde-<type>``: run the deterministic adapter of the registry entry for this topic.

    Inputs come from a drafted step's ``tdeInputs`` mapping or an ``inputs`` Json variable and
    must match the entry's input schema (else BPMN error ``DAS_INVALID_INPUT``); a policy
    denial is ``DAS_POLICY_DENIED``; an adapter that refuses its arguments is
    ``DAS_ADAPTER_FAILED``; side effects run at most once per idempotency key.
    """

    entry = deterministic_entries().get(task.topic)
    if entry is None:
        return failure_outcome(
            task, None, f"no deterministic task type is served on topic {task.topic}", None, final=True
        )
    correlation_id = ctx.correlation_id or correlation_of(task)
    scope = engine_scope(task, ctx)
    if isinstance(scope, Outcome):
        return scope
    try:
        key = default_idempotency_key(task, ctx.facts.multi_instance)
    except UpstreamError as exc:
        return failure_outcome(task, None, f"cannot tell which task this continues: {exc.message}", None)
    scoped = scoped_key(scope.namespace, key)
    spec = TaskSpec(
        task_type=entry.task_type, mode="deterministic", correlation_id=correlation_id, idempotency_key=key
    )
    try:
        policy = resolve_task_policy(spec, ctx.policy_file)
        inputs = adapter_inputs(task.variables, entry)
        tool = adapter_for(entry, ctx.adapters)
    except StepInputInvalid as exc:
        return Outcome(
            "bpmn_error",
            variables={"tdeStatus": "failed"},
            error_code="DAS_INVALID_INPUT",
            message=exc.message,
            stop_reason="invalid_input",
        )
    except PolicyDenied as exc:
        return outcome_for_result(task, denied_result(spec, exc), Policy())
    except DasError as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    tool_ctx = ToolContext(policy, workspace_dir(scoped), scoped, correlation_id)
    try:
        value = run_once(open_store(), tool, tool_ctx, inputs)
    except PolicyDenied as exc:
        return outcome_for_result(task, denied_result(spec, exc), policy)
    except ModelRetry as exc:
        return Outcome(
            "bpmn_error",
            variables={"tdeStatus": "failed"},
            error_code="DAS_ADAPTER_FAILED",
            message=f"{entry.task_type}: {exc.message}",
            stop_reason="error",
        )
    except EffectBlocked as exc:
        return failure_outcome(task, policy, exc.message, None, final=True)
    except Exception as exc:  # the adapter failed technically: retries per policy, then an incident
        return failure_outcome(
            task,
            policy,
            f"adapter {tool.name} failed: {type(exc).__name__}: {exc}",
            traceback.format_exc()[-4000:],
        )
    outputs = value if isinstance(value, dict) else {"result": value}
    result = TdeResult(
        status="succeeded",
        stop_reason="completed",
        outputs=outputs,
        model=f"adapter/{tool.name}",
        correlation_id=correlation_id,
        idempotency_key=key,
        trace=[TraceStep(iteration=1, phase="act", tool=tool.name, arguments=inputs)],
    )
    out = outcome_for_result(task, result, policy)
    out.variables.update(mapped_outputs(task.variables, result))
    return out


def handle_compensate(task: ExternalTask, ctx: HandlerContext) -> Outcome:
    """``das-tde-compensate``: undo what a TDE did, with the compensating adapter its registry
    entry names (``executor.compensate``), or fail loudly: an incident listing the effects a
    person must undo, never a silent success.

    The key comes from the process's ``tdeResult`` (data); which effects it can reach is
    decided by the engine: those of this task's own namespace and of the instances its own
    process instance called, never another instance's."""

    raw_result, raw_spec = task.variables.get("tdeResult"), task.variables.get("taskSpec")
    result: dict[str, Any] = raw_result if isinstance(raw_result, dict) else {}
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    task_type = str(task.variables.get("taskType") or spec.get("task_type") or "")
    key = str(result.get("idempotency_key") or "")
    try:
        if key:
            check_key(key)
        namespaces = ctx.facts.compensation_namespaces(task)
    except InvalidInput as exc:
        return failure_outcome(task, None, f"tdeResult: {exc.message}", None, final=True)
    except UpstreamError as exc:
        return failure_outcome(task, None, f"cannot tell whose effects to undo: {exc.message}", None)
    store = open_store()
    effects = [e for ns in namespaces for e in store.done_effects(scoped_key(ns, key))] if key else []
    listed = "; ".join(f"{e['tool']} ({e['call_key']})" for e in effects) or "none recorded"
    entry = lookup(task_type) if task_type else None
    name = entry.executor.compensate if entry else None
    tool = ctx.adapters.get(name) if name else None
    if tool is None:
        return failure_outcome(
            task,
            None,
            f"no compensating adapter for task type {task_type or '(unknown)'}; "
            f"undo these side effects by hand, then resolve this incident: {listed}",
            None,
            final=True,
        )
    try:
        tool.run(
            ToolContext(
                resolve_task_policy(TaskSpec(task_type=task_type, mode="deterministic"), ctx.policy_file),
                workspace_dir(scoped_key(namespaces[0], "compensate")),
                scoped_key(namespaces[0], key) if key else None,
                correlation_of(task),
            ),
            {
                "effects": [{"tool": e["tool"], "call_key": e["call_key"]} for e in effects],
                "tdeResult": result,
            },
        )
    except Exception as exc:  # noqa: BLE001 - a failed compensation is an incident with its reason
        return failure_outcome(
            task,
            None,
            f"compensation {name} failed: {type(exc).__name__}: {exc}; still to undo: {listed}",
            None,
            final=True,
        )
    return Outcome("complete", variables={"tdeStatus": "compensated"}, stop_reason="completed")


class HandlerRegistry(Mapping[str, TopicHandler]):
    """Topic -> handler, as a value passed to the ``Worker`` (never a mutable module global).

    ``default_handlers()`` builds the built-in topics plus one per deterministic registry
    entry; ``with_handler`` returns a new registry, so one test's handler never leaks into
    another worker."""

    def __init__(self, handlers: Mapping[str, TopicHandler]) -> None:
        self._handlers = dict(handlers)

    def __getitem__(self, topic: str) -> TopicHandler:
        return self._handlers[topic]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def with_handler(
        self, topic: str, handle: Handler, variables: list[str] | None = None
    ) -> HandlerRegistry:
        """A copy in which ``topic`` is served by ``handle`` (added or replaced)."""
        return HandlerRegistry({**self._handlers, topic: TopicHandler(handle, variables)})


def builtin_handlers() -> HandlerRegistry:
    """DAS's own topics."""
    return HandlerRegistry(
        {
            # all variables: a drafted step's tdeInputs name the process variables it reads
            TOPIC_TDE: TopicHandler(handle_tde, variables=None),
            TOPIC_PEO_SELECT: TopicHandler(
                handle_select, variables=["candidates", "context", "correlationId"]
            ),
            TOPIC_COMPENSATE: TopicHandler(handle_compensate, variables=None),
            TOPIC_NIGHTLY: TopicHandler(
                handle_nightly, variables=["since", "keys", "dryRun", "correlationId"]
            ),
        }
    )


def default_handlers() -> HandlerRegistry:
    """The built-in topics plus one per deterministic registry entry (its adapter's topic)."""

    adapters_ = {topic: TopicHandler(handle_adapter, variables=None) for topic in deterministic_entries()}
    return HandlerRegistry({**adapters_, **builtin_handlers()})
