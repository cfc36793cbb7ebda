"""Every tool DAS has, by name. A policy's ``allowed_tools`` selects from these."""

from __future__ import annotations

from das.tools.base import Tool
from das.tools.files import READ_FILE, WRITE_FILE
from das.tools.http import HTTP_REQUEST
from das.tools.jsonq import JSON_QUERY

TOOLS: dict[str, Tool] = {t.name: t for t in (HTTP_REQUEST, READ_FILE, WRITE_FILE, JSON_QUERY)}


def allowed(names: list[str]) -> list[Tool]:
    return [TOOLS[n] for n in names if n in TOOLS]
