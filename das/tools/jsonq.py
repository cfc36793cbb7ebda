"""json_query: read a value from JSON by a dotted path (``a.b[0].c``), optionally picking keys.

Small on purpose: models need a way to extract and reshape data without running code.
"""

from __future__ import annotations

import re
from typing import Any

from das.errors import ModelRetry
from das.tools.base import Tool, ToolContext

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\-?\d+)\]")


def query(data: Any, path: str) -> Any:
    current = data
    for name, index in _TOKEN.findall(path or ""):
        if name:
            if not isinstance(current, dict) or name not in current:
                raise ModelRetry(f"path {path!r}: key {name!r} not found")
            current = current[name]
        else:
            if not isinstance(current, list):
                raise ModelRetry(f"path {path!r}: [{index}] applied to a non-list")
            try:
                current = current[int(index)]
            except IndexError as exc:
                raise ModelRetry(f"path {path!r}: index {index} out of range") from exc
    return current


def _run(ctx: ToolContext, args: dict[str, Any]) -> Any:
    value = query(args["data"], args.get("path", ""))
    pick = args.get("pick")
    if pick:
        if not isinstance(value, dict):
            raise ModelRetry("pick needs the path to select an object")
        value = {k: value[k] for k in pick if k in value}
    return value


JSON_QUERY = Tool(
    name="json_query",
    description="Select a value from JSON by dotted path like 'a.b[0]'; optionally pick keys.",
    parameters={
        "type": "object",
        "properties": {
            "data": {},
            "path": {"type": "string", "maxLength": 500},
            "pick": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
        },
        "required": ["data"],
        "additionalProperties": False,
    },
    func=_run,
)
