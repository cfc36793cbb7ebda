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

from das.llm.schema_check import LinearValidator

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def schema_hint(schema: dict[str, Any]) -> str:
    """The instruction appended to the system message (the schema, minified)."""
    return (
        "Reply with one JSON value only (no prose, no code fences) that is valid against this JSON Schema:\n"
        + json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    )


def with_schema_hint(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    hint = schema_hint(schema)
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content') or ''}\n\n{hint}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": hint}, *messages]


def extract_json(text: str | None, bare_key: str | None = None) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost {...}/[...].

    ``bare_key``: the key a caller's objects lead with (``"task"`` in drafting outlines), so
    ``{"Check stock", "by": ..}`` can be read as ``{"task": "Check stock", ..}``.
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
            candidates.append(body[start : end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates + [_relaxed(c) for c in candidates]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = error or exc
        except RecursionError:
            raise ValueError("the reply is nested too deeply") from None
    opening = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=0)
    rebalanced = _rebalanced(_relaxed(body[opening:]), bare_key)
    if rebalanced is not None:
        return rebalanced
    if error is None:  # pragma: no cover - every candidate either parsed or set error
        raise ValueError("the reply is not valid JSON")
    raise ValueError(f"the reply is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")


_LINE_COMMENT = re.compile(r'("(?:[^"\\\n]|\\.)*")|//[^\n]*|#[^\n]*')
_TRAILING_COMMA = re.compile(r'("(?:[^"\\\n]|\\.)*")|,(\s*[}\]])')


def _relaxed(text: str) -> str:
    """What small models get wrong most: comments and trailing commas (strings left alone)."""
    text = _LINE_COMMENT.sub(lambda m: m.group(1) or "", text)
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)


MAX_BRACKET_FIXES = 6


def _rebalanced(text: str, bare_key: str | None = None) -> Any | None:
    """Fix the bracket slips a small model makes in deep JSON, then parse; None if it still fails.

    Slips measured on the embedded Qwen drafting outlines: a container closed too early
    (``{"if": .., "then": [..]}, "else": [..]}`` or ``"parallel": [[..]], [..]}``), so a key
    turns up inside an array or a value where a key belongs; the closer then missing further
    on; closers missing at the end (the reply stopped early); and, given ``bare_key``, an
    object that starts with a value and no key. At most ``MAX_BRACKET_FIXES`` fixes."""
    for _ in range(MAX_BRACKET_FIXES):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            fixed = _fix_once(text, exc, bare_key)
        except RecursionError:
            return None
        if fixed is None or fixed == text:
            return None
        text = fixed
    return None


def _before(text: str, pos: int) -> tuple[str, int]:
    """The last non-blank character before ``pos`` and its index ("" and -1 if none)."""
    i = pos - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    return (text[i], i) if i >= 0 else ("", -1)


def _fix_once(text: str, exc: json.JSONDecodeError, bare_key: str | None) -> str | None:
    pos = exc.pos
    here = text[pos] if pos < len(text) else ""
    if exc.msg == "Extra data":  # a complete value, then prose or a closing code fence
        return text[:pos]
    if exc.msg == "Expecting ',' delimiter" and here in "}]" and here:
        # the closer of a container closed too early elsewhere: the other closer belongs here
        return text[:pos] + ("]" if here == "}" else "}") + text[pos:]
    if exc.msg.startswith("Expecting property name") and here in "[{" and here:
        comma, i = _before(text, pos)
        closer, j = _before(text, i)
        if comma == "," and closer == "]":  # ``[[a]], [b]``: the outer list was closed early
            return text[:j] + text[j + 1 :]
        return None
    if exc.msg == "Expecting ':' delimiter" and bare_key:
        start = text.rfind('"', 0, text.rfind('"', 0, pos))
        if _before(text, start)[0] == "{":  # ``{"Check stock", ...}``: the leading key is missing
            return text[:start] + json.dumps(bare_key) + ": " + text[start:]
        return None
    if exc.msg == "Expecting ',' delimiter" and here == ":":
        # a key inside an array: drop the '}' that closed its object too early
        key_start = text.rfind('"', 0, text.rfind('"', 0, pos))
        comma = text.rstrip(" \t\r\n")[:key_start].rstrip(" \t\r\n")
        if comma.endswith(","):
            before = comma[:-1].rstrip(" \t\r\n")
            if before.endswith("}"):
                cut = len(before) - 1
                return text[:cut] + text[cut + 1 :]
        return None
    if pos >= len(text.rstrip()):  # ran out: close what is open, innermost first
        stack: list[str] = []
        for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
            t = token.group(0)
            if t in "[{":
                stack.append("]" if t == "[" else "}")
            elif t in "]}" and stack and stack[-1] == t:
                stack.pop()
        return text.rstrip().rstrip(",") + "".join(reversed(stack)) if stack else None
    return None


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    """Patterns go through a linear-time engine: a task's schema can't make a reply hang here."""
    validator: jsonschema.Draft202012Validator = LinearValidator(json.loads(schema_json))
    return validator


def problems(value: Any, schema: dict[str, Any], limit: int = 5) -> list[str]:
    """Schema violations as short lines (path: message), best-matching first."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.path), e.message))[:limit]
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message[:200]}" for e in errors]


def repair_message(reasons: list[str]) -> dict[str, str]:
    return {
        "role": "user",
        "content": "Your reply is not valid:\n"
        + "\n".join(f"- {r}" for r in reasons)
        + "\nAnswer again with the corrected JSON only.",
    }
