"""The probabilistic TDE loop: TaskSpec in, TdeResult out.

analyse (one model call) -> act (tool calls) -> evaluate (finished? outputs valid?) until
success or a guardrail stops it. Limits are checked by ``Limits`` outside the model; a
``GuardrailStop`` becomes the stop_reason. Errors the model caused (unknown tool, bad
arguments, invalid JSON, invalid outputs) go back to it as observations, a bounded number of
times in a row; bugs raise. Results are stored per idempotency key and returned again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationError

from das import tracing
from das.agents.deadline import DeadlineExceeded, call_with_deadline
from das.checks import OutputCheck, failed_checks
from das.config import default_model
from das.contracts import Policy, TaskSpec, TdeResult, TraceStep, Usage, describe_validation_error
from das.errors import (
    GuardrailStop,
    InvalidInput,
    ModelRetry,
    PolicyDenied,
    TransientUpstreamError,
    UpstreamError,
)
from das.guardrails import Limits, resolve_policy
from das.identity import os_principal
from das.llm import gateway
from das.llm.schema_check import SchemaTimeout, validate_within, validator_for
from das.prompts import render
from das.registry import lookup
from das.secrets import scrub
from das.store import Store, open_store
from das.store.keys import as_key, check_key, principal_namespace, scoped_key, workspace_dir
from das.tools.base import Tool, ToolContext, digest
from das.tools.effects import EffectBlocked, run_once
from das.tools.registry import TOOLS, allowed

MAX_REPAIRS = 3  # invalid model outputs in a row before stopping with invalid_output
HTTP_TIMEOUT_S = 10.0  # a tool's HTTP call also ends by the task's own deadline
LATE_GRACE_S = 0.5  # how long past the deadline a reply may still arrive and be counted in the result
DEFAULT_OUTPUT_SCHEMA: dict[str, Any] = {"type": "object"}


class _Stop(Exception):
    def __init__(self, reason: str, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return name + ":" + json.dumps(arguments, sort_keys=True, default=str)


class TdeLoop:
    """One run of the loop. Build with ``run_tde``; kept as a class so state stays explicit."""

    def __init__(
        self,
        spec: TaskSpec,
        policy: Policy,
        model: str,
        output_schema: dict[str, Any],
        store: Store | None,
        workspace: Path,
        heartbeat: Callable[[], None] | None,
        checks: list[OutputCheck] | None = None,
        toolbox: Mapping[str, Tool] = TOOLS,
        scoped: str | None = None,
    ) -> None:
        self.spec, self.policy, self.model = spec, policy, model
        self.scoped = scoped  # the store key of this task: its namespace + idempotency key, digested
        self.output_schema = output_schema
        self.validator = validator_for(output_schema)
        self.checks = checks or []
        self.store, self.heartbeat = store, heartbeat
        self.limits = Limits(policy)
        self.usage = self.limits.usage
        self.trace: list[TraceStep] = []
        self.toolbox = toolbox
        self.tools: dict[str, Tool] = {t.name: t for t in allowed(policy.allowed_tools, toolbox)}
        self.native = gateway.supports_native_tools(model)
        self.ctx = ToolContext(policy, workspace, scoped, spec.correlation_id)
        self.messages: list[dict[str, Any]] = []
        self.invalid_in_a_row = 0
        self._seen_calls: dict[str, str] = {}  # read-only call (tool + arguments) -> its result text
        self.outputs: dict[str, Any] | None = None
        self.started = time.monotonic()

    # -- prompt -----------------------------------------------------------------------------
    def _finish_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"outputs": self.output_schema}, "required": ["outputs"]}

    def _tool_schemas(self) -> list[dict[str, Any]]:
        finish = {
            "type": "function",
            "function": {
                "name": "finish",
                "description": "Return the final outputs; ends the task.",
                "parameters": self._finish_schema(),
            },
        }
        return [t.openai_schema() for t in self.tools.values()] + [finish]

    def _action_schema(self) -> dict[str, Any]:
        """JSON fallback for models without native tool calling: one action per reply."""
        options = [
            {
                "type": "object",
                "properties": {
                    "thought": {"type": "string", "maxLength": 200},
                    "tool": {"const": "finish"},
                    "arguments": self._finish_schema(),
                },
                "required": ["thought", "tool", "arguments"],
            }
        ]
        for tool in self.tools.values():
            options.append(
                {
                    "type": "object",
                    "properties": {
                        "thought": {"type": "string", "maxLength": 200},
                        "tool": {"const": tool.name},
                        "arguments": tool.parameters,
                    },
                    "required": ["thought", "tool", "arguments"],
                }
            )
        return options[0] if len(options) == 1 else {"anyOf": options}

    def _initial_messages(self) -> list[dict[str, Any]]:
        system = render("tde_system")
        if not self.native and not self.tools:  # only finish: show the shape of the answer
            system += "\n" + render(
                "tde_json_finish", skeleton=json.dumps(skeleton(self.output_schema), ensure_ascii=False)
            )
        elif not self.native:
            lines = "\n".join(f"- {t.name}: {t.description}" for t in self.tools.values())
            system += "\n" + render(
                "tde_json_actions",
                tools=lines,
                skeleton=json.dumps(skeleton(self.output_schema), ensure_ascii=False),
            )
        user = render(
            "tde_task",
            task_type=self.spec.task_type,
            prompt=self.spec.prompt or "",
            inputs=json.dumps(self.spec.inputs, default=str, ensure_ascii=False)[:20000],
            output_schema=json.dumps(self.output_schema),
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _observe(self, content: str, tool_call_id: str | None = None) -> None:
        if tool_call_id and self.native:
            self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})
        else:
            self.messages.append({"role": "user", "content": content})

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> TdeResult:
        with tracing.span(
            f"das.tde {self.spec.task_type}",
            **{
                tracing.TASK_TYPE: self.spec.task_type,
                tracing.IDEMPOTENCY_KEY: self.spec.idempotency_key,
                tracing.CORRELATION: self.spec.correlation_id,
                "gen_ai.request.model": self.model,
            },
        ) as current:
            result = self._run()
            tracing.set_attributes(
                current,
                **{
                    "das.status": result.status,
                    "das.stop_reason": result.stop_reason,
                    "das.iterations": result.usage.iterations,
                    "gen_ai.usage.input_tokens": result.usage.input_tokens,
                    "gen_ai.usage.output_tokens": result.usage.output_tokens,
                    "das.cost_usd": result.usage.cost_usd,
                },
            )
            return result

    def _run(self) -> TdeResult:
        started = self.started = time.monotonic()
        self.messages = self._initial_messages()
        stop_reason, message, status = "completed", None, "succeeded"
        retryable = True
        try:
            while self.outputs is None:
                self.limits.check_time(time.monotonic() - started)
                self.limits.check_before_iteration()
                self.usage.iterations += 1
                if self.heartbeat:
                    self.heartbeat()
                self._iteration(self.usage.iterations, started)
        except GuardrailStop as stop:
            stop_reason, message, status = stop.limit, stop.message, "failed"
        except _Stop as stop:
            stop_reason, message, status, retryable = stop.reason, stop.message, "failed", stop.retryable
        except PolicyDenied as exc:
            stop_reason, message, status = "policy_denied", exc.message, "failed"
        except UpstreamError as exc:
            stop_reason, message, status = "error", exc.message, "failed"
            retryable = isinstance(exc, TransientUpstreamError)
        self.usage.wall_s = round(time.monotonic() - started, 4)
        if (
            status == "failed"
            and stop_reason != "error"
            and self.store
            and self.scoped
            and self.store.done_effects(self.scoped)
        ):
            # it stopped after a side effect happened: the process must undo it, not just fail
            status = "compensate_required"
            message = f"{message} (side effects happened before the stop: compensation required)"
        if stop_reason != "completed":
            self.trace.append(
                TraceStep(
                    iteration=self.usage.iterations, phase="stop", evaluation=stop_reason, error=message
                )
            )
        return TdeResult(
            status=status,
            outputs=self.outputs or {},
            trace=self.trace,
            usage=self.usage,
            stop_reason=stop_reason,
            message=message,
            model=self.model,
            needs_review=self.policy.human_gate,
            retryable=retryable,
            correlation_id=self.spec.correlation_id,
            idempotency_key=self.spec.idempotency_key,
        )

    def _iteration(self, n: int, started: float) -> None:
        remaining_s = self.policy.timeout_s - (time.monotonic() - started)
        max_out = max(min(self.policy.max_output_tokens, self.limits.remaining_tokens()), 1)
        tools = self._tool_schemas() if self.native else None
        schema = None if self.native else self._action_schema()
        try:
            reply = call_with_deadline(
                lambda: gateway.complete(
                    self.model,
                    self.messages,
                    policy=self.policy,
                    tools=tools,
                    response_schema=schema,
                    schema_in_prompt=bool(self.tools),
                    max_tokens=max_out,
                    timeout_s=max(remaining_s, 0.1),
                    retries=0 if remaining_s < 5 else 2,
                ),
                remaining_s,
                grace_s=LATE_GRACE_S,
                on_late=self._record_late,
            )
        except gateway.ToolsRefused as exc:
            if not self.native:
                raise
            self._fall_back_to_json_actions(n, exc.message)
            return
        except DeadlineExceeded as exc:
            if exc.late_value is not None:  # finished just late: its tokens and cost still count
                self._count(exc.late_value)
                self.trace.append(
                    TraceStep(
                        iteration=n,
                        phase="analyse",
                        evaluation="reply arrived after the deadline",
                        input_tokens=exc.late_value.input_tokens,
                        output_tokens=exc.late_value.output_tokens,
                    )
                )
            raise GuardrailStop(
                "timeout", round(time.monotonic() - started, 3), self.policy.timeout_s
            ) from None
        self._count(reply)
        self.messages.append(reply.raw_message)
        self.trace.append(
            TraceStep(
                iteration=n,
                phase="analyse",
                thought=(reply.text or "")[:500] or None,
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                latency_ms=round(reply.latency_ms, 2),
            )
        )
        self.limits.check_tokens()
        self.limits.check_cost()
        calls = [(c.name, c.arguments, c.error, c.id) for c in reply.tool_calls]
        if not calls:
            action = self._parse_text_action(n, reply.text)
            if action is None:
                return
            calls = [action]
        for name, arguments, error, call_id in calls:
            if self.outputs is not None:
                break
            self._act(n, name, arguments, error, call_id)

    def _fall_back_to_json_actions(self, n: int, reason: str) -> None:
        """The server refused native tools (learned by the gateway): restate the task in the
        JSON-action form and go on; what the model already did stays in the trace."""
        self.native = False
        done = [m for m in self.messages[2:] if m.get("role") != "tool" and not m.get("tool_calls")]
        self.messages = self._initial_messages() + done
        self.trace.append(
            TraceStep(
                iteration=n,
                phase="repair",
                error=reason[:500],
                evaluation="native tool calls refused: switched to JSON actions",
            )
        )

    def _count(self, reply: Any) -> None:
        self.usage.model_calls += 1
        self.usage.input_tokens += reply.input_tokens
        self.usage.output_tokens += reply.output_tokens
        self.usage.cost_usd += reply.cost_usd

    def _record_late(self, reply: Any) -> None:
        """A call abandoned at the deadline finished later: record its usage, never drop it."""
        self._count(reply)
        if self.store is not None:
            self.store.audit(
                "das",
                "late_usage",
                self.scoped or self.spec.correlation_id,
                {
                    "model": self.model,
                    "input_tokens": reply.input_tokens,
                    "output_tokens": reply.output_tokens,
                    "cost_usd": reply.cost_usd,
                    "task_type": self.spec.task_type,
                    "correlation_id": self.spec.correlation_id,
                },
            )

    def _parse_text_action(self, n: int, text: str | None) -> tuple[str, Any, str | None, str | None] | None:
        """JSON fallback: read {"tool", "arguments"} from text; prose from a native model is a thought."""
        stripped = (
            (text or "").strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
        )
        if self.native and not stripped.startswith("{"):
            self._evaluate(n, "no tool call; asked the model to act or finish")
            self._observe("Call a tool, or call finish with the outputs when you are done.")
            return None
        try:
            data = json.loads(stripped, strict=False)  # a raw newline inside a string is still its text
            if not isinstance(data, dict) or "tool" not in data:
                raise ValueError('expected an object with "tool" and "arguments"')
        except (ValueError, RecursionError) as exc:
            self._invalid(n, f"reply is not a valid JSON action: {str(exc)[:200]}")
            return None
        args = data.get("arguments")
        tool = str(data["tool"])
        if (
            tool != "finish"
            and tool not in self.toolbox
            and tool not in self.tools
            and isinstance(args, dict)
            and "outputs" in args
        ):
            tool = "finish"  # no such tool, but an answer: read it as finish (always allowed, still checked)
        return (
            tool,
            args if isinstance(args, dict) else None,
            None if isinstance(args, dict) else "arguments must be a JSON object",
            None,
        )

    def _act(
        self, n: int, name: str, arguments: dict[str, Any] | None, error: str | None, call_id: str | None
    ) -> None:
        if error is not None or arguments is None:
            self.trace.append(
                TraceStep(iteration=n, phase="act", tool=name, error=error or "missing arguments")
            )
            self._invalid(n, f"tool call {name} rejected: {error or 'missing arguments'}", call_id)
            return
        if name == "finish":
            self._finish(n, arguments, call_id)
            return
        try:
            if name not in self.tools and name not in self.toolbox:  # invented: say what exists, not "policy"
                raise ModelRetry(
                    f"there is no tool {name!r}; available: {', '.join([*self.tools, 'finish'])}. "
                    + ("Read the inputs yourself and call finish with the outputs." if not self.tools else "")
                )
            self.limits.check_tool_allowed(name)
            if name not in self.tools:
                raise ModelRetry(f"unknown tool {name!r}; available: {', '.join([*self.tools, 'finish'])}")
            self.limits.check_tool_call()
            self.usage.tool_calls += 1
            seen = self._seen_calls.get(call_key := _call_key(name, arguments))
            if seen is not None and not self.tools[name].side_effecting:
                raise ModelRetry(
                    f"you already called {name} with exactly these arguments; the result is the same: "
                    f"{seen[:2000]}\nDo not call it again: use the result, or call finish with the "
                    "outputs now."
                )
            self.ctx.http_timeout_s = max(
                0.5, min(HTTP_TIMEOUT_S, self.policy.timeout_s - (time.monotonic() - self.started))
            )
            t0 = time.perf_counter()
            result = self._run_tool(self.tools[name], arguments)
        except PolicyDenied as exc:
            self.trace.append(
                TraceStep(
                    iteration=n,
                    phase="act",
                    tool=name,
                    arguments=arguments,
                    error=f"refused by policy rule {exc.rule}: {exc.message}",
                )
            )
            self._observe(f"Refused by policy: {exc.message}", call_id)
            return
        except ModelRetry as exc:
            self.trace.append(
                TraceStep(iteration=n, phase="act", tool=name, arguments=arguments, error=exc.message)
            )
            self._invalid(n, exc.message, call_id, count=False)
            return
        except (GuardrailStop, _Stop):
            raise
        except Exception as exc:  # a failing tool is reported to the model, not a crash
            self.trace.append(
                TraceStep(
                    iteration=n,
                    phase="act",
                    tool=name,
                    arguments=arguments,
                    error=f"tool failed: {type(exc).__name__}: {exc}",
                )
            )
            self._observe(f"Tool {name} failed: {type(exc).__name__}: {exc}", call_id)
            return
        self.invalid_in_a_row = 0
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if self.tools[name].side_effecting:
            self._seen_calls.clear()  # the world changed: an earlier read may read differently now
        else:
            self._seen_calls[call_key] = text
        self.trace.append(
            TraceStep(
                iteration=n,
                phase="act",
                tool=name,
                arguments=arguments,
                result_digest=digest(result),
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            )
        )
        self._observe(text[:8000], call_id)

    def _run_tool(self, tool: Tool, arguments: dict[str, Any]) -> Any:
        """Side-effecting calls run at most once per idempotency key (das/tools/effects.py)."""
        try:
            with tracing.span(
                f"execute_tool {tool.name}",
                **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name},
            ):
                return run_once(self.store, tool, self.ctx, arguments)
        except EffectBlocked as exc:
            raise _Stop("error", exc.message, retryable=False) from exc

    def _finish(self, n: int, arguments: dict[str, Any], call_id: str | None) -> None:
        outputs = arguments.get("outputs")
        try:
            errors = validate_within(
                self.validator, outputs, self.policy.timeout_s - (time.monotonic() - self.started)
            )
        except SchemaTimeout:
            raise GuardrailStop(
                "timeout", round(time.monotonic() - self.started, 3), self.policy.timeout_s
            ) from None
        except (
            RecursionError,
            jsonschema.exceptions._RefResolutionError,
        ) as exc:  # the spec's schema, not the model
            raise _Stop(
                "error", f"the output schema cannot be evaluated: {type(exc).__name__}", retryable=False
            ) from None
        if not isinstance(outputs, dict):
            errors_text = "finish.outputs must be a JSON object"
        elif errors:
            errors_text = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(outputs)'}: {e.message}" for e in errors[:5]
            )
        else:
            failed = failed_checks(self.checks, outputs, self.spec.inputs)
            if not failed:
                self.outputs = outputs
                self._evaluate(
                    n,
                    "finished; outputs valid against the output schema"
                    + (f" and {len(self.checks)} check(s)" if self.checks else ""),
                )
                return
            self._invalid(n, "outputs fail checks: " + "; ".join(failed[:5]), call_id)
            return
        self._invalid(n, f"outputs do not match the output schema: {errors_text}", call_id)

    def _evaluate(self, n: int, evaluation: str) -> None:
        self.trace.append(TraceStep(iteration=n, phase="evaluate", evaluation=evaluation))

    def _invalid(self, n: int, problem: str, call_id: str | None = None, count: bool = True) -> None:
        """A model mistake: tell the model, and stop after MAX_REPAIRS in a row."""
        if count:
            self.invalid_in_a_row += 1
        self.trace.append(TraceStep(iteration=n, phase="repair" if count else "evaluate", evaluation=problem))
        if self.invalid_in_a_row >= MAX_REPAIRS:
            raise _Stop(
                "invalid_output", f"invalid output {self.invalid_in_a_row} times in a row; last: {problem}"
            )
        self._observe(f"Error: {problem}. Fix it and try again.", call_id)


def _output_schema(spec: TaskSpec) -> tuple[dict[str, Any], dict[str, Any] | None]:
    entry = lookup(spec.task_type)
    if entry and entry.executor.kind == "probabilistic":
        try:
            validator_for(entry.input_schema).validate(spec.inputs)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(inputs)"
            raise InvalidInput(f"invalid taskSpec: inputs.{where.replace('/', '.')}: {exc.message}") from exc
    if spec.output_schema is not None:
        try:
            validator_for(spec.output_schema)
        except jsonschema.SchemaError as exc:
            raise InvalidInput(
                f"invalid taskSpec: output_schema is not a valid JSON Schema: {exc.message}"
            ) from exc
        return spec.output_schema, entry.policy if entry else None
    if entry:
        return _with_choices(entry.output_schema, entry.output_choices, spec.inputs), entry.policy
    return DEFAULT_OUTPUT_SCHEMA, None


def skeleton(schema: Any, depth: int = 0) -> Any:
    """The shape of a valid answer with typed placeholders, for models without a grammar."""
    if not isinstance(schema, dict) or depth > 4:
        return "..."
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(str(v) for v in schema["enum"][:8])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: skeleton(v, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [skeleton(schema.get("items", {}), depth + 1)]
    if kind in ("integer", "number"):
        return f"<{kind}>"
    if kind == "boolean":
        return "<true|false>"
    return f"<{schema.get('format', 'text')}>"


def _checks(spec: TaskSpec) -> list[OutputCheck]:
    """The registry entry's checks plus the spec's own (a spec adds checks, never removes)."""
    entry = lookup(spec.task_type)
    try:
        extra = [OutputCheck.model_validate(c) for c in spec.checks]
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, "taskSpec.checks")) from exc
    return [*(entry.checks if entry else []), *extra]


def _with_choices(schema: dict[str, Any], choices: dict[str, str], inputs: dict[str, Any]) -> dict[str, Any]:
    """The registry's output schema with each chosen field limited to the values offered in the
    inputs (classify's label must be one of inputs.labels): schema-valid then means right kind."""
    if not choices:
        return schema
    out = json.loads(json.dumps(schema))
    for field, source in choices.items():
        offered = inputs.get(source)
        if isinstance(offered, list) and offered and all(isinstance(v, str | int | float) for v in offered):
            out.setdefault("properties", {}).setdefault(field, {})["enum"] = list(dict.fromkeys(offered))
    return out


def run_tde(
    spec: TaskSpec,
    *,
    model: str | None = None,
    policy_file: str | None = None,
    heartbeat: Callable[[], None] | None = None,
    store: Store | None = None,
    workspace: Path | None = None,
    tools: Mapping[str, Tool] | None = None,
    namespace: str | None = None,
) -> TdeResult:
    """Run one probabilistic task under its merged policy and return its result.

    ``namespace``: who owns the spec's idempotency key, proven by the caller (the engine
    worker: the calling process instance; the CLI: the OS account, the default). The stored
    result, side-effect claims and workspace live under a digest of namespace + key, so a
    spec can never reach another owner's result, effects or any path by its key.
    ``tools``: the toolbox the policy's ``allowed_tools`` picks from (default: DAS's own).
    Raises ``InvalidInput`` for a bad spec or policy file; every other outcome, including
    guardrail stops, policy denial and provider failure, is a ``TdeResult``.
    """
    if spec.mode != "probabilistic":
        raise InvalidInput(f"task {spec.task_type!r} is deterministic; run it with its adapter, not the loop")
    if spec.idempotency_key is not None:
        check_key(spec.idempotency_key)  # also for a spec built without validation (model_construct/copy)
    namespace = namespace or principal_namespace(os_principal().name)
    model = model or default_model()
    store = store or open_store()
    scoped = scoped_key(namespace, spec.idempotency_key) if spec.idempotency_key else None
    if scoped:
        stored = store.get_result(scoped)
        if stored is not None:
            return TdeResult.model_validate(stored)
    output_schema, registry_policy = _output_schema(spec)
    policy = resolve_policy(spec, policy_file, registry_policy)
    ws = workspace or workspace_dir(
        scoped or scoped_key(namespace, as_key(spec.correlation_id or uuid.uuid4().hex))
    )
    try:
        gateway.check_call_allowed(policy, model)  # data class and price, before any call
    except PolicyDenied as exc:
        result = TdeResult(
            status="failed",
            stop_reason="policy_denied",
            message=exc.message,
            model=model,
            usage=Usage(),
            correlation_id=spec.correlation_id,
            idempotency_key=spec.idempotency_key,
            trace=[TraceStep(iteration=0, phase="stop", evaluation="policy_denied", error=exc.message)],
        )
    else:
        gateway.warm()  # import litellm before the clock starts: start-up is not the task's time
        result = TdeLoop(
            spec,
            policy,
            model,
            output_schema,
            store,
            ws,
            heartbeat,
            _checks(spec),
            TOOLS if tools is None else tools,
            scoped,
        ).run()
    dumped = result.model_dump_json()
    scrubbed = scrub(dumped)
    clean = json.loads(scrubbed)
    stored = store.save_run(
        scoped,
        spec.task_type,
        spec.correlation_id,
        result.status,
        result.stop_reason,
        clean,
        keep_result=result.stop_reason != "error",
    )
    if stored is clean and scrubbed == dumped:
        return result  # nothing was masked and no earlier result won: no need to re-validate
    return TdeResult.model_validate(stored)
