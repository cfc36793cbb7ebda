"""The nightly curator: asks a model to *explain* a prepared refactor, never to choose it.

Why so narrow: the refactor (edit ops, timeouts, retry counts) is policy and is computed
deterministically from engine history in ``das.nightly.proposals``. The model only writes the
reviewer-facing rationale. Its output is validated against a schema with one bounded repair;
anything invalid, a provider failure or a policy denial yields ``None`` and the caller keeps its
deterministic rationale. Every attempt is traced.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from das.contracts import Usage
from das.errors import DasError
from das.guardrails import service_policy
from das.llm import gateway
from das.prompts import render

CURATOR_TASK_TYPE = "das_curator"  # its policy (data class: confidential) is in guardrails/task_types.yaml

MAX_REPAIRS = 1
MAX_TOKENS = 400
TIMEOUT_S = 120.0


class CuratorNote(BaseModel):
    """What the model may contribute: words for the reviewer, nothing executable."""

    rationale: str = Field(min_length=20, max_length=1500)
    risks: list[str] = Field(default_factory=list, max_length=5)


def note_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["rationale", "risks"],
        "properties": {
            "rationale": {"type": "string", "minLength": 20, "maxLength": 1500},
            "risks": {
                "type": "array",
                "maxItems": 5,
                "items": {"type": "string", "minLength": 3, "maxLength": 300},
            },
        },
    }


@dataclass
class CuratorResult:
    note: CuratorNote | None
    trace: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def _parse(text: str | None, activity_id: str, activity_name: str | None) -> CuratorNote:
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", (text or "").strip())
    try:
        note = CuratorNote.model_validate(json.loads(body))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}") from exc
    names = {activity_id.lower()} | ({activity_name.lower()} if activity_name else set())
    if not any(n in note.rationale.lower() for n in names):
        raise ValueError(f"the rationale must name the activity {activity_id!r}")
    return note


def explain(
    model: str,
    *,
    key: str,
    version: str,
    finding: dict[str, Any],
    ops: list[dict[str, Any]],
    value: dict[str, Any],
    summary: str,
    max_repairs: int = MAX_REPAIRS,
) -> CuratorResult:
    """Ask ``model`` for a rationale of one prepared refactor; ``note`` is None when unusable."""
    activity_id = str(finding.get("activity_id"))
    activity_name = finding.get("activity_name")
    evidence = {k: v for k, v in (finding.get("evidence") or {}).items() if k != "durations_ms"}
    user = render(
        "curator_rationale",
        key=key,
        version=version,
        activity=f"{activity_id} ({activity_name})" if activity_name else activity_id,
        activity_id=activity_id,
        kind=str(finding.get("kind")),
        summary=summary,
        evidence=json.dumps(evidence, default=str)[:3000],
        refactor=str(finding.get("refactor")),
        ops=json.dumps(ops, indent=1)[:3000],
        value=json.dumps(value, default=str)[:1500],
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": render("curator_system")},
        {"role": "user", "content": user},
    ]
    result = CuratorResult(note=None)
    for attempt in range(max_repairs + 1):
        started = time.perf_counter()
        try:
            reply = gateway.complete(
                model,
                messages,
                policy=service_policy(CURATOR_TASK_TYPE),
                response_schema=note_schema(),
                max_tokens=MAX_TOKENS,
                timeout_s=TIMEOUT_S,
            )
        except DasError as exc:  # provider down, denied: the deterministic rationale stands
            result.trace.append(
                {"attempt": attempt, "ok": False, "error": f"{type(exc).__name__}: {exc.message}"}
            )
            return result
        result.usage.model_calls += 1
        result.usage.input_tokens += reply.input_tokens
        result.usage.output_tokens += reply.output_tokens
        result.usage.cost_usd += reply.cost_usd
        entry: dict[str, Any] = {
            "attempt": attempt,
            "model": model,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        try:
            result.note = _parse(reply.text, activity_id, activity_name)
            result.trace.append({**entry, "ok": True})
            return result
        except ValueError as exc:
            problem = str(exc)[:300]
            result.trace.append({**entry, "ok": False, "problem": problem})
            messages = [
                *messages,
                {"role": "assistant", "content": reply.text or ""},
                {"role": "user", "content": render("curator_repair", problem=problem)},
            ]
    return result
