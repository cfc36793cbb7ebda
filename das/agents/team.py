"""LLM-team task selection: several members vote; DAS aggregates into one Decision.

The decision is always one of the offered candidates or an explicit escalation: member
output is validated against a schema whose ``choice`` is an enum of the offered indices (or
-1), so no member can invent a task. A strict majority wins; otherwise the team escalates.
Members share one budget (tokens, cost, wall clock) enforced outside the model.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from das.config import default_model
from das.contracts import Decision, Policy, TaskSpec, Usage, Vote
from das.errors import GuardrailStop, InvalidInput, PolicyDenied, UpstreamError
from das.guardrails import Limits
from das.llm import gateway
from das.prompts import render
from das.secrets import scrub

PERSONAS = [
    "operations lead: finish the case reliably and on time",
    "risk officer: avoid compliance, financial and data-protection risk",
    "customer advocate: the best outcome for the customer",
]
MAX_CANDIDATES = 20


class _MemberAnswer(BaseModel):
    choice: int
    confidence: float = Field(ge=0, le=1)
    rationale: str = Field(min_length=1, max_length=300)


def _describe(candidates: list[dict[str, Any]]) -> str:
    lines = []
    for i, c in enumerate(candidates):
        label = c.get("task_type") or c.get("name") or f"candidate {i}"
        detail = c.get("description") or c.get("prompt") or ""
        lines.append(f"{i}: {label}" + (f" — {str(detail)[:200]}" if detail else ""))
    return "\n".join(lines)


def _schema(n: int) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "choice": {"enum": [*range(n), -1]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "rationale": {"type": "string", "minLength": 3, "maxLength": 200}},
        "required": ["choice", "confidence", "rationale"], "additionalProperties": False}


def validate_candidates(candidates: Any) -> list[dict[str, Any]]:
    if not isinstance(candidates, list) or not candidates:
        raise InvalidInput("candidates must be a non-empty JSON list")
    if len(candidates) > MAX_CANDIDATES:
        raise InvalidInput(f"candidates: at most {MAX_CANDIDATES} are allowed, got {len(candidates)}")
    out = []
    for i, c in enumerate(candidates):
        if isinstance(c, str):
            c = {"task_type": c}
        if not isinstance(c, dict):
            raise InvalidInput(f"candidates[{i}] must be an object (a task spec) or a task type name")
        if "prompt" in c or "mode" in c:
            try:
                TaskSpec.model_validate({**c, "prompt": c.get("prompt") or "(selection candidate)"})
            except ValidationError as exc:
                raise InvalidInput(f"candidates[{i}] is not a valid task spec: {exc.errors()[0]['msg']}") from exc
        out.append(c)
    return out


def _ask(member: str, model: str, persona: str, messages: list[dict[str, Any]], n: int, limits: Limits,
         deadline: float) -> tuple[Vote, Usage]:
    usage = Usage()
    for attempt in range(2):  # one repair
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GuardrailStop("timeout", round(limits.policy.timeout_s - remaining, 2), limits.policy.timeout_s)
        reply = gateway.complete(model, messages, policy=limits.policy, response_schema=_schema(n), max_tokens=200,
                                 timeout_s=remaining)
        usage.model_calls += 1
        usage.input_tokens += reply.input_tokens
        usage.output_tokens += reply.output_tokens
        usage.cost_usd += reply.cost_usd
        limits.usage.add(Usage(model_calls=1, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                               cost_usd=reply.cost_usd))
        limits.check_tokens()
        limits.check_cost()
        try:
            answer = _MemberAnswer.model_validate_json(reply.text or "")
            if answer.choice != -1 and not 0 <= answer.choice < n:
                raise ValueError(f"choice {answer.choice} is not one of the offered indices 0..{n - 1} or -1")
            return Vote(member=member, choice=None if answer.choice == -1 else answer.choice,
                        confidence=answer.confidence, rationale=answer.rationale), usage
        except (ValidationError, ValueError) as exc:
            problem = str(exc).splitlines()[0][:200]
            messages = [*messages, {"role": "assistant", "content": reply.text or ""},
                        {"role": "user", "content": f"Invalid answer: {problem}. Answer with the JSON object only."}]
            if attempt == 1:
                return Vote(member=member, choice=None, confidence=0.0,
                            rationale=f"abstained: invalid answer twice ({problem})"), usage
    raise AssertionError("unreachable")


SELECT_TASK_TYPE = "peo_select"  # its policy: guardrails/default.yaml < task_types.yaml entry < operator file


def select_task(candidates: list[Any], context: dict[str, Any] | None = None, *, models: list[str] | None = None,
                members: int = 3, policy: Policy | None = None, policy_file: str | None = None) -> Decision:
    """Let ``members`` LLM members vote on the candidates; return one explainable Decision.

    The policy is the same merged guardrails policy the TDE loop uses (task type
    ``peo_select``), unless one is passed; data-class rules and redaction apply to the context.
    """
    offered = validate_candidates(candidates)
    if policy is None:
        from das.guardrails import resolve_policy

        policy = resolve_policy(TaskSpec(task_type=SELECT_TASK_TYPE, mode="deterministic"), policy_file)
    models = models or [default_model()]
    limits = Limits(policy)
    deadline = time.monotonic() + policy.timeout_s
    started = time.monotonic()
    votes: list[Vote] = []
    stop_reason = "completed"
    try:
        for i in range(members):
            model = models[i % len(models)]
            gateway.check_call_allowed(policy, model)
            persona = PERSONAS[i % len(PERSONAS)]
            prompt = render("team_member", persona=persona, context=json.dumps(context or {}, default=str)[:4000],
                            candidates=_describe(offered))
            vote, _ = _ask(f"member{i + 1} ({persona.split(':')[0]}, {model})", model, persona,
                           [{"role": "user", "content": prompt}], len(offered), limits, deadline)
            votes.append(vote)
    except GuardrailStop as stop:
        stop_reason = stop.limit
    except PolicyDenied:
        stop_reason = "policy_denied"
    except UpstreamError:
        stop_reason = "error"
    limits.usage.wall_s = round(time.monotonic() - started, 3)
    decision = aggregate(offered, votes, limits.usage, stop_reason)
    return Decision.model_validate_json(scrub(decision.model_dump_json()))  # secrets never leave in a rationale


def aggregate(offered: list[dict[str, Any]], votes: list[Vote], usage: Usage, stop_reason: str) -> Decision:
    """Strict majority of all members wins; anything else escalates to a human."""
    tally: dict[int, list[Vote]] = {}
    for v in votes:
        if v.choice is not None:
            tally.setdefault(v.choice, []).append(v)
    total = max(len(votes), 1)
    best = max(tally.items(), key=lambda kv: (len(kv[1]), sum(v.confidence for v in kv[1])), default=None)
    if stop_reason == "completed" and best and len(best[1]) * 2 > total:
        index, backers = best
        dissent = [f"{v.member}: {'escalate' if v.choice is None else v.choice} — {v.rationale}"
                   for v in votes if v.choice != index]
        mode = "unanimous" if len(backers) == total else "majority"
        if total == 1:
            mode = "single"
        confidence = round(sum(v.confidence for v in backers) / total, 3)
        rationale = "; ".join(v.rationale for v in backers)[:1000]
        return Decision(chosen_index=index, chosen=offered[index], mode=mode, rationale=rationale,
                        confidence=confidence, votes=votes, dissent=dissent, stop_reason=stop_reason, usage=usage)
    reason = "no strict majority" if stop_reason == "completed" else f"stopped early ({stop_reason})"
    return Decision(chosen_index=None, chosen=None, mode="escalated", rationale=f"escalated to a human: {reason}",
                    confidence=0.0, votes=votes, dissent=[f"{v.member}: {v.choice} — {v.rationale}" for v in votes],
                    stop_reason=stop_reason, usage=usage)
