"""Declarative output checks: what "right" means beyond "schema-valid".

A schema cannot say "the summary mentions the customer" or "this is not placeholder text";
a registry entry (and a TaskSpec) can list ``checks`` that the loop runs after the schema
passes. A failed check is the model's mistake: it goes back to the model within the task's
limits (smolagents' rule), and a task that never passes ends ``invalid_output``, not
``succeeded``. Every probabilistic task also gets the built-in placeholder check on its
string outputs (``finish.outputs:[{"`` is not a step of a process).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The one placeholder rule (the loop's checks and the evals' scorer both use it).
# A whole value that is only a template marker or a filler word ("step 1", "<name>", "n/a").
_PLACEHOLDER_WHOLE = re.compile(
    r"^\s*(|\.{2,}|…|-+|_+|\?+|n/?a|none|null|todo|tbd|x+|string|text|value|example|sample|description"
    r"|placeholder|foo|bar|baz|lorem ipsum.*|<[^<>]{0,40}>|\[[^\[\]]{0,40}\]|\{[^{}]{0,40}\}"
    r"|(step|item|output|answer|action|task|point)\s*#?\s*\d*)\s*[.:)]?\s*$",
    re.I,
)
# A marker anywhere in the value: an ellipsis, a <slot>, xxx, TODO/TBD/FIXME, lorem ipsum.
_PLACEHOLDER_ANYWHERE = re.compile(
    r"\.\.\.|…|<[A-Za-z_][^<>]{0,60}>|x{3,}|\b(todo|tbd|lorem|ipsum|fixme)\b", re.I
)
# What is never an answer, even where "none" or "n/a" may be a label (the built-in check).
_SURE_PLACEHOLDER = re.compile(r"^\s*(\.{2,}|…|todo|tbd|string|lorem ipsum.*|<[^<>]{0,40}>)\s*$", re.I)
_JSON_DEBRIS = re.compile(r"[\[{]\s*[\"{\[]|[\"']\s*:\s*[\[{]|\b(finish|outputs|arguments)\s*[.:]\s*[\[{\"]")


class OutputCheck(BaseModel):
    """One assertion on the value at ``path`` (dot path into the outputs; ``*`` = every item)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_*]+(\.[A-Za-z0-9_*]+)*$")
    rule: Literal["non_empty", "from_enum", "mentions_input", "no_placeholder", "min_items", "min_words"]
    values: list[str | int | float | bool] = Field(
        default_factory=list, description="from_enum: allowed values"
    )
    input: str | None = Field(None, description="mentions_input: the input field whose words must appear")
    n: int = Field(1, ge=0, le=1000, description="min_items / min_words")


def _at(value: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        return [v for item in items for v in _at(item, rest)]
    if isinstance(value, dict) and head in value:
        return _at(value[head], rest)
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        return _at(value[int(head)], rest)
    return [_Missing]


class _MissingType:
    def __repr__(self) -> str:
        return "(missing)"


_Missing = _MissingType()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def is_placeholder(text: object, *, strict: bool = True) -> bool:
    """Text no reader would accept as an answer: template markers, JSON debris; ``strict`` also
    empty or None, "n/a", "none", "step 1", an ellipsis or TODO anywhere (the built-in check is
    not strict: "none" may be a label). Non-text values (numbers, booleans) are never placeholders."""
    if not isinstance(text, str):
        return strict and text is None
    if _JSON_DEBRIS.search(text):
        return True
    if not strict:
        return bool(_SURE_PLACEHOLDER.match(text))
    return bool(_PLACEHOLDER_WHOLE.match(text) or _PLACEHOLDER_ANYWHERE.search(text))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def check_one(check: OutputCheck, outputs: dict[str, Any], inputs: dict[str, Any]) -> str | None:
    """None when the check passes, else the reason in words a model can act on."""
    for value in _at(outputs, check.path.split(".")):
        where = f"outputs.{check.path}"
        if value is _Missing:
            return f"{where} is missing"
        if check.rule == "non_empty" and (
            value in ("", None, [], {}) or (isinstance(value, str) and not value.strip())
        ):
            return f"{where} is empty"
        if check.rule == "from_enum" and value not in check.values:
            return f"{where} must be one of {check.values}, not {value!r}"
        if check.rule == "no_placeholder":
            bad = [s for s in _strings(value) if is_placeholder(s, strict=check is not BUILTIN_CHECK)]
            if bad:
                return f"{where} holds placeholder text or JSON fragments instead of content: {bad[0][:60]!r}"
        if check.rule == "min_items" and (not isinstance(value, list) or len(value) < check.n):
            return f"{where} must list at least {check.n} item(s)"
        if check.rule == "min_words":
            short = [s for s in _strings(value) if len(s.split()) < check.n]
            if short:
                return f"{where} needs at least {check.n} words per entry, got {short[0][:60]!r}"
        if check.rule == "mentions_input":
            source = " ".join(_strings(inputs.get(check.input or "", "")))
            wanted = _words(source)
            if wanted and not (wanted & _words(" ".join(_strings(value)))):
                return f"{where} must mention the input {check.input} (e.g. {sorted(wanted)[0]!r})"
    return None


BUILTIN_CHECK = OutputCheck(path="*", rule="no_placeholder")
DEFAULT_CHECKS = [BUILTIN_CHECK]


def failed_checks(checks: list[OutputCheck], outputs: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    """Every failed check's reason (the built-in placeholder check first)."""
    reasons = []
    for check in [*DEFAULT_CHECKS, *checks]:
        if check.path == "*" and not outputs:
            continue
        reason = check_one(check, outputs, inputs)
        if reason:
            reasons.append(reason)
    return reasons
