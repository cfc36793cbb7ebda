"""Deterministic adapters: what serves a registry task type whose executor is an ``adapter``.

An adapter is a ``Tool`` (name, argument schema, function, side effects) found by entry point
(``[project.entry-points."das.adapters"]``; a plug-in package adds its own the same way) (the set
a worker serves is a value it is given: ``HandlerContext.adapters``, default ``adapters()``). DAS ships ``http`` (the egress policy applies), ``json_transform``
and ``render_template``. Each deterministic registry entry is served on its topic
(``das-tde-<task_type>`` unless the entry names another) by ``das serve``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from das.errors import UsageError
from das.registry import TaskType, load_registry
from das.tools.base import Tool

ENTRY_POINT_GROUP = "das.adapters"


def adapters() -> dict[str, Tool]:
    """The installed adapters: every ``das.adapters`` entry point."""
    found: dict[str, Tool] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        tool = ep.load()
        if not isinstance(tool, Tool):
            raise UsageError(f"adapter entry point {ep.name} ({ep.value}) is not a das Tool")
        found[ep.name] = tool
    return found


def topic_of(entry: TaskType) -> str:
    return entry.executor.topic or f"das-tde-{entry.task_type}"


def deterministic_entries() -> dict[str, TaskType]:
    """Topic -> registry entry for every task type an adapter serves."""
    return {topic_of(e): e for e in load_registry().values() if e.executor.kind == "adapter"}


def adapter_for(entry: TaskType, available: Mapping[str, Tool] | None = None) -> Tool:
    """The adapter serving ``entry``, from ``available`` (default: the installed ones)."""
    known = adapters() if available is None else available
    name = entry.executor.adapter or entry.task_type
    tool = known.get(name)
    if tool is None:
        raise UsageError(
            f"task type {entry.task_type} needs adapter {name!r}, which is not installed "
            f"(installed: {', '.join(sorted(known)) or 'none'})"
        )
    return tool


__all__ = ["adapter_for", "adapters", "deterministic_entries", "topic_of"]
