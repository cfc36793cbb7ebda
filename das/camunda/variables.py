"""Camunda 7 variable typing: Python values <-> ``{"value": ..., "type": ...}`` dicts.

The REST API needs an explicit type per variable. JSON documents travel as Spin ``Json``
with a serialized string value, so gateways can use ``S(var)`` and JUEL can test flat
``String``/``Boolean`` routing variables next to them.
"""

from __future__ import annotations

import json
from typing import Any

_INT32 = (-(2**31), 2**31 - 1)


class Json:
    """Marks a value to be sent as a Spin ``Json`` variable even if it is a str or number."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def json_var(value: Any) -> dict[str, Any]:
    """A Spin ``Json`` variable holding ``value`` (any JSON-serialisable object)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return {"value": json.dumps(value, default=str, separators=(",", ":")), "type": "Json"}


def java_list_var(items: list[Any]) -> dict[str, Any]:
    """A ``java.util.ArrayList`` (JSON-serialized) variable: what a multi-instance
    ``camunda:collection`` needs, since a Spin ``Json`` value is not a Java collection."""
    return {
        "value": json.dumps(items, default=str),
        "type": "Object",
        "valueInfo": {"objectTypeName": "java.util.ArrayList", "serializationDataFormat": "application/json"},
    }


def typed(value: Any) -> dict[str, Any]:
    """One Python value as a typed Camunda variable (dict/list/pydantic -> Json)."""
    if isinstance(value, Json):
        return json_var(value.value)
    if isinstance(value, dict) and set(value) >= {"value", "type"} and isinstance(value["type"], str):
        return value  # already typed
    if value is None:
        return {"value": None, "type": "Null"}
    if isinstance(value, bool):
        return {"value": value, "type": "Boolean"}
    if isinstance(value, int):
        kind = "Integer" if _INT32[0] <= value <= _INT32[1] else "Long"
        return {"value": value, "type": kind}
    if isinstance(value, float):
        return {"value": value, "type": "Double"}
    if isinstance(value, str):
        return {"value": value, "type": "String"}
    if isinstance(value, (dict, list, tuple)) or hasattr(value, "model_dump"):
        return json_var(value)
    raise TypeError(f"cannot send {type(value).__name__} as an engine variable")


def to_variables(values: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A dict of Python values as the ``variables`` object of a REST request."""
    return {name: typed(v) for name, v in (values or {}).items()}


def from_variable(var: dict[str, Any]) -> Any:
    """One typed variable from the REST API as a Python value (Json/Object parsed)."""
    kind = (var.get("type") or "").lower()
    value = var.get("value")
    if kind in ("json", "object") and isinstance(value, str):
        info = var.get("valueInfo") or {}
        fmt = info.get("serializationDataFormat", "application/json")
        if kind == "json" or fmt == "application/json":
            try:
                return json.loads(value)
            except ValueError:
                return value
    return value


def from_variables(variables: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The ``variables`` object of a REST answer as plain Python values."""
    return {name: from_variable(v) for name, v in (variables or {}).items()}
