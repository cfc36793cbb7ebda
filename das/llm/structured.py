"""Structured output without a grammar: the schema in the prompt, then parse, check, repair.

Used by the gateway for models that take no JSON Schema natively (the embedded Qwen models,
whose grammar sampling over a 152k vocabulary is too slow on a CPU). The model is told the
schema; its reply is cut out of prose or code fences, parsed and validated with jsonschema;
a reply that fails is sent back once or twice with the reason (bounded), so every caller gets
the same behaviour as from a provider with native structured output.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jsonschema

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def schema_hint(schema: dict[str, Any]) -> str:
    """The instruction appended to the system message (the schema, minified)."""
    return ("Reply with one JSON value only (no prose, no code fences) that is valid against this JSON Schema:\n"
            + json.dumps(schema, separators=(",", ":"), ensure_ascii=False))


def with_schema_hint(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    hint = schema_hint(schema)
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content') or ''}\n\n{hint}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": hint}, *messages]


def extract_json(text: str | None) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost {...}/[...].

    Raises ``ValueError`` with a short reason a model can act on.
    """
    body = (text or "").strip()
    if not body:
        raise ValueError("the reply is empty; answer with the JSON document")
    candidates = [body]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(body)]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = body.find(opener), body.rfind(closer)
        if 0 <= start < end:
            candidates.append(body[start:end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates + [_relaxed(c) for c in candidates]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = error or exc
        except RecursionError:
            raise ValueError("the reply is nested too deeply") from None
    assert error is not None
    raise ValueError(f"the reply is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")


_LINE_COMMENT = re.compile(r'("(?:[^"\\\n]|\\.)*")|//[^\n]*|#[^\n]*')
_TRAILING_COMMA = re.compile(r'("(?:[^"\\\n]|\\.)*")|,(\s*[}\]])')


def _relaxed(text: str) -> str:
    """What small models get wrong most: comments and trailing commas (strings left alone)."""
    text = _LINE_COMMENT.sub(lambda m: m.group(1) or "", text)
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json))


def problems(value: Any, schema: dict[str, Any], limit: int = 5) -> list[str]:
    """Schema violations as short lines (path: message), best-matching first."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.path), e.message))[:limit]
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message[:200]}" for e in errors]


def repair_message(reasons: list[str]) -> dict[str, str]:
    return {"role": "user", "content": "Your reply is not valid:\n" + "\n".join(f"- {r}" for r in reasons)
            + "\nAnswer again with the corrected JSON only."}
