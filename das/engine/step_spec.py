"""A drafted TDE step as a contract the worker honours.

A compiled ``tde`` step carries ``taskType`` and, as JSON input parameters, ``tdeInputs``
(input field -> process variable) and ``tdeOutputs`` (output field -> process variable). The
worker builds the TaskSpec from the TDE registry entry (its prompt, output schema and policy)
and the mapped variables, checks them against the entry's ``input_schema`` and, on success,
writes the mapped output fields back as process variables. A hand-written process may still
pass a whole ``taskSpec`` variable instead.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from das.contracts import TaskSpec, TdeResult
from das.errors import InvalidInput
from das.registry import TaskType, lookup

# variables the worker itself sets or reads to run a step: a step's outputs never overwrite them
RESERVED = frozenset(
    {
        "taskSpec",
        "taskType",
        "correlationId",
        "retries",
        "retryBackoff",
        "mode",
        "policy",
        "context",
        "candidates",
        "decision",
        "nextTaskType",
    }
)


def reserved(name: str) -> bool:
    return name in RESERVED or name.startswith("tde")


class StepInputInvalid(InvalidInput):
    """The process variables a step maps in do not satisfy its task type's input schema:
    a modelling error the process can route (BPMN error ``DAS_INVALID_INPUT``)."""


def _mapping(raw: Any, name: str) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise InvalidInput(f"{name} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InvalidInput(f'{name} must map names to names, e.g. {{"text": "ticketText"}}')
    return data


def is_step_task(variables: dict[str, Any]) -> bool:
    """A drafted step: ``taskType`` with its mapping contract (which then wins over any
    ``taskSpec`` variable in scope), or ``taskType`` without any ``taskSpec``."""
    if not isinstance(variables.get("taskType"), str):
        return False
    return "tdeInputs" in variables or "tdeOutputs" in variables or variables.get("taskSpec") is None


def output_mapping(variables: dict[str, Any]) -> dict[str, str]:
    """``tdeOutputs`` checked before any work is done: no target may be a control variable."""
    try:
        mapping = _mapping(variables.get("tdeOutputs"), "tdeOutputs")
    except InvalidInput as exc:
        raise StepInputInvalid(exc.message) from exc
    bad = sorted(t for t in mapping.values() if reserved(t))
    if bad:
        raise StepInputInvalid(f"tdeOutputs may not write {', '.join(bad)}: the worker sets those itself")
    return mapping


def spec_from_step(variables: dict[str, Any], correlation_id: str | None, idempotency_key: str) -> TaskSpec:
    task_type = str(variables["taskType"])
    entry = lookup(task_type)
    if entry is None:
        raise StepInputInvalid(f"task type {task_type!r} is not in the TDE registry (`das tde list`)")
    if entry.executor.kind != "probabilistic":
        raise StepInputInvalid(f"task type {task_type!r} is deterministic; its topic is das-tde-{task_type}")
    output_mapping(variables)
    try:
        mapping = _mapping(variables.get("tdeInputs"), "tdeInputs")
    except InvalidInput as exc:
        raise StepInputInvalid(exc.message) from exc
    inputs = {
        field: variables.get(source) for field, source in mapping.items() if variables.get(source) is not None
    }
    errors = sorted(
        jsonschema.Draft202012Validator(entry.input_schema).iter_errors(inputs), key=lambda e: e.path
    )
    if errors:
        where = "; ".join(
            f"inputs.{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:200]}"
            for e in errors[:5]
        )
        raise StepInputInvalid(f"task {task_type}: mapped inputs do not match its input schema: {where}")
    prompt = entry.prompt or entry.description or f"Perform the task {task_type} on the inputs."
    return TaskSpec(
        task_type=task_type,
        prompt=prompt,
        inputs=inputs,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
    )


def adapter_inputs(variables: dict[str, Any], entry: TaskType) -> dict[str, Any]:
    """A deterministic step's arguments: its ``tdeInputs`` mapping, else an ``inputs`` Json
    variable; checked against the entry's input schema."""
    output_mapping(variables)
    try:
        mapping = _mapping(variables.get("tdeInputs"), "tdeInputs")
    except InvalidInput as exc:
        raise StepInputInvalid(exc.message) from exc
    if mapping:
        inputs = {
            field: variables.get(source)
            for field, source in mapping.items()
            if variables.get(source) is not None
        }
    else:
        raw = variables.get("inputs")
        inputs = raw if isinstance(raw, dict) else {}
    errors = sorted(
        jsonschema.Draft202012Validator(entry.input_schema).iter_errors(inputs), key=lambda e: e.path
    )
    if errors:
        where = "; ".join(
            f"inputs.{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:200]}"
            for e in errors[:5]
        )
        raise StepInputInvalid(f"task {entry.task_type}: inputs do not match its input schema: {where}")
    return inputs


def mapped_outputs(variables: dict[str, Any], result: TdeResult) -> dict[str, Any]:
    """Process variables to set from a successful result's outputs (``tdeOutputs``)."""
    if result.status != "succeeded":
        return {}
    return {
        target: result.outputs[field]
        for field, target in output_mapping(variables).items()
        if field in result.outputs
    }
