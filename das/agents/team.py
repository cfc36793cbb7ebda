"""LLM-team task selection: several members vote; DAS aggregates into one Decision.

The decision is always one of the offered candidates or an explicit escalation: member
output is validated against a schema whose ``choice`` is an enum of the offered indices (or
-1), so no member can invent a task. A strict majority of the distinct votes wins; otherwise
the team escalates. Members share one budget (tokens, cost, wall clock) enforced outside the
model.

How members differ (so that more members means more independent opinions, not copies):

* persona: member *i* takes ``PERSONAS[i]``, a distinct perspective (operations, risk and
  compliance, customer, process owner, cost, data quality, security); there is one for every
  seat up to ``MAX_MEMBERS`` (the CLI's ``--members`` maximum);
* sampling: member 0 is greedy (temperature 0, no seed); member *i* > 0 samples at a small
  temperature (``TEMPERATURES[i]``, 0.3-0.7) with its own seed (``seed + i``);
* model: ``models`` is a per-member list (member *i* uses ``models[i % len(models)]``; the
  CLI's repeatable ``--model``), or pass ``team`` to set model, persona, temperature and seed
  member by member. A provider that does not accept a temperature or seed (e.g. Anthropic
  has no seed; reasoning models take only their default temperature) gets the call without
  it, and the Vote records what was really sent (None = not sent).

One call, one vote. Each member's call is keyed by (model, persona, temperature, seed,
prompt); a greedy call (temperature 0) sends no seed, since the seed cannot change its answer,
and temperatures are rounded to 0.01. When two members would make the identical call, the
call is made once and counts as one vote: the later members are listed in that vote's
``merged`` and do not count towards the majority, so configuring the same member several
times cannot stuff the ballot. Two *different* calls that return the same answer are
independent and count as two votes. ``aggregate`` applies the same rule to votes that carry
the same ``call`` key. ``Decision.configured_members`` is the team size as configured;
``len(votes)`` is the number of distinct calls that voted.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from das.config import default_model
from das.contracts import Decision, Policy, TaskSpec, Usage, Vote
from das.errors import GuardrailStop, InvalidInput, PolicyDenied, UpstreamError
from das.guardrails import Limits, resolve_policy
from das.llm import gateway
from das.llm.providers import OFFLINE_PROVIDERS
from das.prompts import render
from das.secrets import scrub

MAX_MEMBERS = 7  # the CLI's `das select --members` range is 1..7
PERSONAS = [
    "operations lead: finish the case reliably and on time, with the fewest hand-offs and rework loops",
    "risk officer: avoid compliance, financial and data-protection risk; prefer what can be audited",
    "customer advocate: the best outcome for the customer, their waiting time and the clarity of what they get",
    "process owner: the step that moves the case toward the process's stated goal, in the designed order",
    "cost controller: the lowest total cost (model calls, human effort, external services) that still does the job",
    "data steward: the inputs the step needs are present and trustworthy; avoid acting on incomplete or "
    "unverified data",
    "security officer: the least exposure; avoid steps that send data out or act on untrusted input without checks",
]
TEMPERATURES = [0.0, 0.3, 0.38, 0.46, 0.54, 0.62, 0.7]  # member 0 greedy, the others sample a little
MAX_CANDIDATES = 20
MAX_PERSONA_CHARS = 300


@dataclass(frozen=True)
class Member:
    """One seat on the team: which model answers, from which perspective, how it samples."""

    model: str
    persona: str
    temperature: float | None = 0.0  # None: the provider refuses the parameter
    seed: int | None = None

    @property
    def label(self) -> str:
        return self.persona.split(":")[0].strip()[:60]


def plan_team(members: int = 3, models: list[str] | None = None, *, seed: int = 0) -> list[Member]:
    """The default team: distinct personas, member 0 greedy, the others seeded at a small temperature."""
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= MAX_MEMBERS:
        raise InvalidInput(f"members must be 1..{MAX_MEMBERS}, got {members!r}")
    models = list(models or []) or [default_model()]
    return [_member({"model": models[i % len(models)]}, i, seed) for i in range(members)]


def _member(spec: Member | dict[str, Any], i: int, seed: int = 0) -> Member:
    """Validate one member's configuration (a Member or a dict with the same keys)."""
    if isinstance(spec, Member):
        spec = {
            "model": spec.model,
            "persona": spec.persona,
            "temperature": spec.temperature,
            "seed": spec.seed,
        }
    if not isinstance(spec, dict):
        raise InvalidInput(f"team[{i}] must be an object with model, persona, temperature, seed")
    unknown = sorted(set(spec) - {"model", "persona", "temperature", "seed"})
    if unknown:
        raise InvalidInput(f"team[{i}]: unknown keys {unknown}; allowed: model, persona, temperature, seed")
    model = spec.get("model") or default_model()
    persona = " ".join(
        str(spec.get("persona") or PERSONAS[i % len(PERSONAS)]).split()
    )  # whitespace is no new persona
    temperature = spec.get("temperature", TEMPERATURES[i % len(TEMPERATURES)])
    member_seed = spec.get("seed", None if i == 0 else seed + i)
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput(f"team[{i}].model must be a model name")
    if not persona or len(persona) > MAX_PERSONA_CHARS:
        raise InvalidInput(f"team[{i}].persona must be 1..{MAX_PERSONA_CHARS} characters")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise InvalidInput(f"team[{i}].temperature must be a number in 0..2, got {temperature!r}")
    if member_seed is not None and (
        isinstance(member_seed, bool) or not isinstance(member_seed, int) or not 0 <= member_seed < 2**31
    ):
        raise InvalidInput(f"team[{i}].seed must be an integer in 0..2^31-1 or null, got {member_seed!r}")
    temperature = round(float(temperature), 2) + 0.0  # 0.3 and 0.3000001 are the same call; -0.0 is 0.0
    if temperature == 0:
        member_seed = None  # greedy: the seed cannot change the answer, so it is not part of the call
    return Member(model=model.strip(), persona=persona, temperature=temperature, seed=member_seed)


@lru_cache(maxsize=64)
def _sampling(model: str, temperature: float | None, seed: int | None) -> tuple[float | None, int | None]:
    """The (temperature, seed) this model accepts: drop what its provider refuses, keep the rest."""
    if gateway.provider_of(model) in OFFLINE_PROVIDERS:
        return temperature, seed  # test/ and local/ (llama.cpp) honour both
    try:
        litellm = gateway.ensure_registered()
        from litellm.utils import get_optional_params

        name, provider, *_ = litellm.get_llm_provider(model)
    except Exception:  # unknown to litellm: let the call itself report
        return temperature, seed
    for t, s in dict.fromkeys([(temperature, seed), (temperature, None), (None, seed), (None, None)]):
        kwargs: dict[str, Any] = {k: v for k, v in (("temperature", t), ("seed", s)) if v is not None}
        try:
            get_optional_params(model=name, custom_llm_provider=provider, **kwargs)
            return t, s
        except litellm.UnsupportedParamsError:
            continue
        except Exception:  # the probe itself failed: send what was configured
            return temperature, seed
    return None, None


def _call_key(member: Member, messages: list[dict[str, Any]]) -> str:
    """The identity of a member's call: identical keys are one call and one vote."""
    raw = json.dumps(
        [member.model, member.persona, member.temperature, member.seed, messages],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


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
    return {
        "type": "object",
        "properties": {
            "choice": {"enum": [*range(n), -1]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rationale": {"type": "string", "minLength": 3, "maxLength": 200},
        },
        "required": ["choice", "confidence", "rationale"],
        "additionalProperties": False,
    }


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
                raise InvalidInput(
                    f"candidates[{i}] is not a valid task spec: {exc.errors()[0]['msg']}"
                ) from exc
        out.append(c)
    return out


def _ask(
    member: str,
    model: str,
    messages: list[dict[str, Any]],
    n: int,
    limits: Limits,
    deadline: float,
    temperature: float | None = None,
    seed: int | None = None,
) -> tuple[Vote, Usage]:
    usage = Usage()
    for attempt in range(2):  # one repair
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GuardrailStop(
                "timeout", round(limits.policy.timeout_s - remaining, 2), limits.policy.timeout_s
            )
        reply = gateway.complete(
            model,
            messages,
            policy=limits.policy,
            response_schema=_schema(n),
            max_tokens=200,
            timeout_s=remaining,
            temperature=temperature,
            seed=seed,
        )
        usage.model_calls += 1
        usage.input_tokens += reply.input_tokens
        usage.output_tokens += reply.output_tokens
        usage.cost_usd += reply.cost_usd
        limits.usage.add(
            Usage(
                model_calls=1,
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                cost_usd=reply.cost_usd,
            )
        )
        limits.check_tokens()
        limits.check_cost()
        try:
            answer = _MemberAnswer.model_validate_json(reply.text or "")
            if answer.choice != -1 and not 0 <= answer.choice < n:
                raise ValueError(f"choice {answer.choice} is not one of the offered indices 0..{n - 1} or -1")
            return Vote(
                member=member,
                choice=None if answer.choice == -1 else answer.choice,
                confidence=answer.confidence,
                rationale=answer.rationale,
            ), usage
        except (ValidationError, ValueError) as exc:
            problem = str(exc).splitlines()[0][:200]
            messages = [
                *messages,
                {"role": "assistant", "content": reply.text or ""},
                {"role": "user", "content": f"Invalid answer: {problem}. Answer with the JSON object only."},
            ]
            if attempt == 1:
                return Vote(
                    member=member,
                    choice=None,
                    confidence=0.0,
                    rationale=f"abstained: invalid answer twice ({problem})",
                ), usage
    raise AssertionError("unreachable")


SELECT_TASK_TYPE = "peo_select"  # its policy: guardrails/default.yaml < task_types.yaml entry < operator file


def select_task(
    candidates: list[Any] | Any,
    context: dict[str, Any] | None = None,
    *,
    models: list[str] | None = None,
    members: int = 3,
    policy: Policy | None = None,
    policy_file: str | None = None,
    team: list[Member | dict[str, Any]] | None = None,
    seed: int = 0,
) -> Decision:
    """Let ``members`` LLM members vote on the candidates; return one explainable Decision.

    ``models`` is the per-member model list (cycled); ``team`` sets each member's model,
    persona, temperature and seed instead (and then ``members``/``models`` are not used);
    ``seed`` shifts the default members' seeds. Identical members make one call and one vote
    (see the module docstring). The policy is the same merged guardrails policy the TDE loop
    uses (task type ``peo_select``), unless one is passed; data-class rules and redaction
    apply to the context.
    """
    offered = validate_candidates(candidates)
    if team is not None:
        if not isinstance(team, list) or not 1 <= len(team) <= MAX_MEMBERS:
            raise InvalidInput(f"team must be a list of 1..{MAX_MEMBERS} members")
        seats = [_member(spec, i, seed) for i, spec in enumerate(team)]
    else:
        seats = plan_team(members, models, seed=seed)
    if policy is None:
        policy = resolve_policy(TaskSpec(task_type=SELECT_TASK_TYPE, mode="deterministic"), policy_file)
    context_json = json.dumps(context or {}, default=str)[:4000]
    described = _describe(offered)
    calls: dict[
        str, tuple[str, Member, list[dict[str, Any]], list[str]]
    ] = {}  # key -> (label, member, msgs, merged)
    for i, seat in enumerate(seats):
        temperature, member_seed = _sampling(seat.model, seat.temperature, seat.seed)
        sent = Member(seat.model, seat.persona, temperature, member_seed)  # key what is really sent
        prompt = render("team_member", persona=sent.persona, context=context_json, candidates=described)
        messages = [{"role": "user", "content": prompt}]
        label = f"member{i + 1} ({sent.label}, {sent.model})"
        key = _call_key(sent, messages)
        if key in calls:
            calls[key][3].append(label)  # the identical call: no second call, no second vote
        else:
            calls[key] = (label, sent, messages, [])
    limits = Limits(policy)
    deadline = time.monotonic() + policy.timeout_s
    started = time.monotonic()
    votes: list[Vote] = []
    stop_reason = "completed"
    try:
        for key, (label, seat, messages, merged) in calls.items():
            gateway.check_call_allowed(policy, seat.model)
            vote, _ = _ask(
                label,
                seat.model,
                messages,
                len(offered),
                limits,
                deadline,
                temperature=seat.temperature,
                seed=seat.seed,
            )
            votes.append(
                vote.model_copy(
                    update={
                        "persona": seat.persona,
                        "model": seat.model,
                        "temperature": seat.temperature,
                        "seed": seat.seed,
                        "call": key,
                        "merged": merged,
                    }
                )
            )
    except GuardrailStop as stop:
        stop_reason = stop.limit
    except PolicyDenied:
        stop_reason = "policy_denied"
    except UpstreamError:
        stop_reason = "error"
    limits.usage.wall_s = round(time.monotonic() - started, 3)
    decision = aggregate(offered, votes, limits.usage, stop_reason, configured_members=len(seats))
    return Decision.model_validate_json(
        scrub(decision.model_dump_json())
    )  # secrets never leave in a rationale


def _one_vote_per_call(votes: list[Vote]) -> list[Vote]:
    """Votes that carry the same ``call`` key are one vote: the first, with the others merged into it."""
    out: list[Vote] = []
    seen: dict[str, int] = {}
    for v in votes:
        if v.call is None or v.call not in seen:
            if v.call is not None:
                seen[v.call] = len(out)
            out.append(v)
            continue
        first = out[seen[v.call]]
        out[seen[v.call]] = first.model_copy(update={"merged": [*first.merged, v.member, *v.merged]})
    return out


def aggregate(
    offered: list[dict[str, Any]],
    votes: list[Vote],
    usage: Usage,
    stop_reason: str,
    *,
    configured_members: int | None = None,
) -> Decision:
    """A strict majority of the distinct votes wins; anything else escalates to a human."""
    votes = _one_vote_per_call(votes)
    if configured_members is None:
        configured_members = sum(1 + len(v.merged) for v in votes)
    tally: dict[int, list[Vote]] = {}
    for v in votes:
        if v.choice is not None:
            tally.setdefault(v.choice, []).append(v)
    total = max(len(votes), 1)
    best = max(tally.items(), key=lambda kv: (len(kv[1]), sum(v.confidence for v in kv[1])), default=None)
    if stop_reason == "completed" and best and len(best[1]) * 2 > total:
        index, backers = best
        dissent = [
            f"{v.member}: {'escalate' if v.choice is None else v.choice} — {v.rationale}"
            for v in votes
            if v.choice != index
        ]
        mode = "unanimous" if len(backers) == total else "majority"
        if total == 1:
            mode = "single"
        confidence = round(sum(v.confidence for v in backers) / total, 3)
        rationale = "; ".join(v.rationale for v in backers)[:1000]
        return Decision(
            chosen_index=index,
            chosen=offered[index],
            mode=mode,
            rationale=rationale,
            confidence=confidence,
            votes=votes,
            dissent=dissent,
            stop_reason=stop_reason,
            usage=usage,
            configured_members=configured_members,
        )
    reason = "no strict majority" if stop_reason == "completed" else f"stopped early ({stop_reason})"
    return Decision(
        chosen_index=None,
        chosen=None,
        mode="escalated",
        rationale=f"escalated to a human: {reason}",
        confidence=0.0,
        votes=votes,
        dissent=[f"{v.member}: {v.choice} — {v.rationale}" for v in votes],
        stop_reason=stop_reason,
        usage=usage,
        configured_members=configured_members,
    )
