"""TDE wrappers for task types a draft uses but the registry does not know yet.

A wrapper is a registry entry (processes/tde/*.yaml shape): input and output JSON Schemas,
executor, policy. Each is checked with jsonschema before it is filed with the proposal. Its
policy names its tools (tools are default-deny): ``finish`` and the read-only ones for the loop,
``finish`` alone for an adapter (the adapter is its own tool), so the reviewer sees exactly what
approving grants.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from das.errors import InvalidInput
from das.guardrails import READ_ONLY_TOOLS
from das.names import is_task_type, task_type_problem
from das.registry import load_registry

_TASK_TYPE = re.compile(
    r'(?:name|target)="taskType"[^>]*>([^<]+)<|taskType="([^"]+)"|'
    r'<camunda:inputParameter name="taskType">([^<]+)</camunda:inputParameter>'
)


def task_types_in(xml: str) -> list[str]:
    found = []
    for match in _TASK_TYPE.finditer(xml):
        value = next(g for g in match.groups() if g)
        value = value.strip()
        if value and not value.startswith("$") and value not in found:
            found.append(value)
    return found


def wrapper_for(task_type: str, mode: str = "probabilistic") -> dict[str, Any]:
    problem = task_type_problem(task_type)
    if problem:
        raise InvalidInput(problem)
    wrapper = {
        "task_type": task_type,
        "description": f"Drafted wrapper for {task_type}; review the schemas before approving.",
        "executor": {"kind": "probabilistic"}
        if mode == "probabilistic"
        else {"kind": "adapter", "topic": f"das-tde-{task_type}"},
        "input_schema": {"type": "object", "additionalProperties": True},
        "output_schema": {
            "type": "object",
            "properties": {"result": {"type": "string", "minLength": 1, "maxLength": 2000}},
            "required": ["result"],
        },
        "policy": {
            "max_iterations": 4,
            "allowed_tools": list(READ_ONLY_TOOLS) if mode == "probabilistic" else ["finish"],
        },
    }
    jsonschema.Draft202012Validator.check_schema(wrapper["input_schema"])
    jsonschema.Draft202012Validator.check_schema(wrapper["output_schema"])
    return wrapper


def draft_wrappers(xml: str) -> list[dict[str, Any]]:
    """Wrappers for unknown task types; a non-identifier task type gets none (validation reports
    it as ``governance.task-type``), so it can never become a file name."""
    known = load_registry()
    return [wrapper_for(t) for t in task_types_in(xml) if t not in known and is_task_type(t)]
