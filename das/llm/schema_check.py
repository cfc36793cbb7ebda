"""JSON Schema validation that cannot run away: linear-time regexes, checked against a deadline.

Why: a TaskSpec's ``output_schema`` is written by whoever writes the process, and a model's
outputs are validated against it. With Python's backtracking ``re``, ``"pattern": "^(a+)+$"``
against ``"aaaa…!"`` takes exponential time, outside every deadline of the loop. Here
``pattern``, ``patternProperties`` and ``additionalProperties`` (which consults the latter)
match with RE2 (google-re2): linear time, and what needs backtracking (backreferences,
lookaround) cannot compile, so such a schema is refused when it is checked. Every keyword also
checks the deadline ``validate_within`` sets, so a large instance against a large schema ends
in time too (``SchemaTimeout``).

Schemas may only point into themselves (``_local_refs_only``): a ``$ref`` to a URL or file
would make the validator fetch it outside every egress rule.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

import jsonschema
import re2
from jsonschema.exceptions import ValidationError
from referencing import Registry

MAX_ERRORS = 50  # errors collected per validation (the loop reports the first five)
_VALIDATORS: dict[str, Any] = {}
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("das_schema_deadline", default=None)
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})  # values there are data, not schemas
# keywords whose value maps names (any name, "enum" included) to subschemas
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is our SchemaError, not a line on stderr


class SchemaTimeout(Exception):
    """Validation did not finish within its deadline."""


# RE2's refusal -> what is not supported, and what to write instead
_UNSUPPORTED = (
    (
        "invalid repetition size",
        "repeat counts above 1000 (in total, nested repeats multiplied) are not supported; "
        'bound the length with minLength/maxLength instead, e.g. "pattern": "^[A-Za-z0-9+/]*={0,2}$" with '
        '"maxLength": 4096 rather than {4,4096}, or drop "^.{0,5000}$" for "maxLength": 5000',
    ),
    (
        "invalid perl operator",
        "lookahead and lookbehind ((?=...), (?!...), (?<=...), (?<!...)) are not supported; "
        "express the condition with allOf/not and a second pattern",
    ),
    (
        "invalid escape sequence",
        "backreferences (\\1, \\k<name>) and the escapes \\u{...} and \\cX are not "
        "supported; write the character itself or \\x{HHHH}",
    ),
    ("missing ]", "the ECMA classes [] and [^] are not supported; write [\\s\\S] for any character"),
    (
        "bad repetition operator",
        "a repeat of a repeat (a**, possessive a*+) is not supported; use one quantifier",
    ),
    (
        "pattern too large",
        "the compiled pattern is too large; use smaller repeat counts or minLength/maxLength",
    ),
)


@lru_cache(maxsize=1024)
def linear_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2; ``SchemaError`` (saying what is not supported and what to
    write instead) if it needs a backtracking engine or exceeds RE2's bounds."""
    # ECMA-262's \uXXXX is RE2's \x{XXXX}
    translated = re.sub(r"(?<!\\)((?:\\\\)*)\\u([0-9A-Fa-f]{4})", r"\1\\x{\2}", pattern)
    try:
        return re2.compile(translated, options=_OPTIONS)
    except re2.error as exc:
        why = (
            exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        )
        hint = next((h for key, h in _UNSUPPORTED if key in why), "this construct is not in RE2's syntax")
        raise jsonschema.SchemaError(
            f"pattern {pattern[:100]!r} is not allowed: task schemas are matched in linear time by RE2, "
            f"so that no pattern can hang validation; RE2 says {why!r}: {hint}"
        ) from None


def _local_refs_only(node: Any, depth: int = 0) -> None:
    """A schema from a TaskSpec may only point into itself: a ``$ref`` to a URL or a file would
    make the validator fetch it (SSRF, file read) outside every egress rule."""
    if depth > 64:
        raise jsonschema.SchemaError("schema nested deeper than 64 levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef", "$recursiveRef") and not (
                isinstance(value, str) and value.startswith("#")
            ):
                raise jsonschema.SchemaError(
                    f"{key} {str(value)[:100]!r} is not allowed: only local references (#...)"
                )
            if key == "$id":
                raise jsonschema.SchemaError("$id is not allowed in a task's schema")
            _local_refs_only(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _local_refs_only(value, depth + 1)


def _check_patterns(node: Any, seen: set[str], depth: int = 0, schema: bool = True) -> None:
    """Compile every ``pattern`` and ``patternProperties`` key with RE2; note the keywords that
    the RE2 keywords below do not cover. ``schema`` false: ``node`` maps names to subschemas
    (``properties`` …), so a property named ``enum`` or ``pattern`` is a subschema like any other."""
    if depth > 64:
        return
    if isinstance(node, dict) and not schema:
        for value in node.values():
            _check_patterns(value, seen, depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _DATA_KEYWORDS:  # data (an enum's values may hold a "pattern" key)
                continue
            if key == "pattern" and isinstance(value, str):
                linear_regex(value)
            if key == "patternProperties" and isinstance(value, dict):
                seen.add(key)
                for pattern in value:
                    linear_regex(pattern)
            if key == "unevaluatedProperties":
                seen.add(key)
            _check_patterns(value, seen, depth + 1, key not in _SCHEMA_MAPS)
    elif isinstance(node, list):
        for value in node:
            _check_patterns(value, seen, depth + 1)


# ---- keywords ------------------------------------------------------------------------------
def _pattern(validator: Any, patrn: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not linear_regex(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = linear_regex(pattern)
        for k, v in instance.items():
            if regex.search(k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional_properties(
    validator: Any, ap: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    regexes = [linear_regex(p) for p in schema.get("patternProperties", {})]
    extras = {k for k in instance if k not in properties and not any(r.search(k) for r in regexes)}
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        listed = ", ".join(repr(e) for e in sorted(extras, key=str))
        if "patternProperties" in schema:
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(
                f"{listed} {'does' if len(extras) == 1 else 'do'} not match any of the regexes: {patterns}"
            )
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({listed} "
                f"{'was' if len(extras) == 1 else 'were'} unexpected)"
            )


KeywordFn = Callable[[Any, Any, Any, dict[str, Any]], Iterable[ValidationError] | None]


def _timed(fn: KeywordFn) -> KeywordFn:
    """The keyword, after a look at the deadline ``validate_within`` set."""

    def keyword(
        validator: Any, value: Any, instance: Any, schema: dict[str, Any]
    ) -> Iterator[ValidationError]:
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() > deadline:
            raise SchemaTimeout("schema validation did not finish within the task's deadline")
        yield from fn(validator, value, instance, schema) or ()

    return keyword


_KEYWORDS: dict[str, KeywordFn] = {
    **jsonschema.Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}
LinearValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={name: _timed(fn) for name, fn in _KEYWORDS.items()},
    version="das-linear-2020-12",
)


def validator_for(schema: dict[str, Any]) -> Any:
    """A checked, compiled validator per distinct schema (checking a schema costs ~1.5 ms):
    local references only, every regex RE2 (``SchemaError`` otherwise).

    Its reference registry is empty and cannot retrieve anything: no network, no files.
    """
    key = json.dumps(schema, sort_keys=True, default=str)
    validator = _VALIDATORS.get(key)
    if validator is None:
        _local_refs_only(schema)
        jsonschema.Draft202012Validator.check_schema(schema)
        seen: set[str] = set()
        _check_patterns(schema, seen)
        if {"patternProperties", "unevaluatedProperties"} <= seen:
            raise jsonschema.SchemaError(
                "patternProperties together with unevaluatedProperties is not supported "
                "in a task's schema; use additionalProperties"
            )
        if len(_VALIDATORS) > 512:
            _VALIDATORS.clear()
        validator = _VALIDATORS[key] = LinearValidator(schema, registry=Registry())
    return validator


def validate_within(
    validator: Any, instance: Any, deadline_s: float, limit: int = MAX_ERRORS
) -> list[ValidationError]:
    """``instance``'s errors (at most ``limit``, by path), or ``SchemaTimeout`` once
    ``deadline_s`` seconds have passed; ``validator`` comes from ``validator_for``."""
    token = _DEADLINE.set(time.monotonic() + max(deadline_s, 0.0))
    try:
        errors = list(itertools.islice(validator.iter_errors(instance), limit))
    finally:
        _DEADLINE.reset(token)
    return sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])


__all__ = ["LinearValidator", "SchemaTimeout", "linear_regex", "validate_within", "validator_for"]
