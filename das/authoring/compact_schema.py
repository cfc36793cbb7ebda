"""A compact subset of the authoring form for small local models.

The full schema (every step kind, three nesting levels, boundaries, ids) turns into a grammar
so large that a 135M model wanders in it and emits long, broken drafts. This subset keeps the
shape that matters for a first draft: tasks (TDE, external, user), one level of exclusive
choices with structured conditions, and parallel blocks. Every document valid here is valid
for the full schema, so the same compiler, validator and simulator check it.
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "minLength": 3, "maxLength": 40, "pattern": "^[A-Z][a-z]+( [a-zA-Z]+){0,5}$"}
_KEY = {"type": "string", "minLength": 3, "maxLength": 30, "pattern": "^[a-z][a-z_]{2,29}$"}


def _task_kinds() -> list[dict[str, Any]]:
    # "name" comes first: the grammar follows property order, and a model that has just
    # written a meaningful name picks a fitting type; the other way round it echoes the type
    tde = {
        "type": "object",
        "properties": {
            "name": _NAME,
            "type": {"const": "tde"},
            "task_type": _KEY,
            "mode": {"enum": ["probabilistic", "deterministic"]},
        },
        "required": ["name", "type", "task_type", "mode"],
        "additionalProperties": False,
    }
    user = {
        "type": "object",
        "properties": {"name": _NAME, "type": {"const": "user"}},
        "required": ["name", "type"],
        "additionalProperties": False,
    }
    external = {
        "type": "object",
        "properties": {"name": _NAME, "type": {"const": "external"}, "topic": _KEY},
        "required": ["name", "type", "topic"],
        "additionalProperties": False,
    }
    return [tde, user, external]


def compact_authoring_schema() -> dict[str, Any]:
    simple_steps = {"type": "array", "items": {"anyOf": _task_kinds()}, "minItems": 1, "maxItems": 3}
    condition = {
        "type": "object",
        "properties": {
            "variable": {
                "type": "string",
                "minLength": 2,
                "maxLength": 20,
                "pattern": "^[a-z][a-zA-Z]{1,19}$",
            },
            "op": {"enum": ["==", "!=", "<", ">"]},
            "value": {
                "anyOf": [
                    {"type": "integer"},
                    {"type": "boolean"},
                    {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^[a-zA-Z0-9 ]{1,20}$"},
                ]
            },
        },
        "required": ["variable", "op", "value"],
        "additionalProperties": False,
    }
    choice = {
        "type": "object",
        "properties": {
            "name": _NAME,
            "type": {"const": "choice"},
            "branches": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"condition": condition, "steps": simple_steps},
                    "required": ["condition", "steps"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["name", "type", "branches"],
        "additionalProperties": False,
    }
    parallel = {
        "type": "object",
        "properties": {
            "name": _NAME,
            "type": {"const": "parallel"},
            "branches": {
                "type": "array",
                "minItems": 2,
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {"steps": simple_steps},
                    "required": ["steps"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["name", "type", "branches"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "key": _KEY,
            "name": _NAME,
            "steps": {
                "type": "array",
                "minItems": 2,
                "maxItems": 6,
                "items": {"anyOf": [*_task_kinds(), choice, parallel]},
            },
        },
        "required": ["key", "name", "steps"],
        "additionalProperties": False,
    }
