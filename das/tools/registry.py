"""Every tool DAS has, by name. A policy's ``allowed_tools`` selects from these.

``TOOLS`` is read-only; a caller with more tools (a plug-in, a test) passes its own toolbox
to ``run_tde(tools=...)`` instead of adding to a module global."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from das.tools.base import Tool
from das.tools.files import READ_FILE, WRITE_FILE
from das.tools.http import HTTP_REQUEST
from das.tools.jsonq import JSON_QUERY

TOOLS: Mapping[str, Tool] = MappingProxyType(
    {t.name: t for t in (HTTP_REQUEST, READ_FILE, WRITE_FILE, JSON_QUERY)}
)


def allowed(names: list[str], toolbox: Mapping[str, Tool] = TOOLS) -> list[Tool]:
    """The tools of ``toolbox`` that ``names`` (a policy's ``allowed_tools``) lets run."""
    return [toolbox[n] for n in names if n in toolbox]
