"""render_template: fill ``$name`` placeholders of a text from values (no code, no lookups)."""

from __future__ import annotations

import string
from typing import Any

from das.errors import ModelRetry
from das.tools.base import Tool, ToolContext


def _render(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    template = string.Template(args["template"])
    values = {k: v if isinstance(v, str) else str(v) for k, v in (args.get("values") or {}).items()}
    try:
        text = template.substitute(values) if args.get("strict", True) else template.safe_substitute(values)
    except KeyError as exc:
        raise ModelRetry(f"the template needs a value for {exc.args[0]!r}") from exc
    except ValueError as exc:
        raise ModelRetry(f"invalid template: {exc}") from exc
    return {"text": text}


RENDER_TEMPLATE = Tool(
    name="render_template",
    description="Fill $name placeholders in a text template from values.",
    parameters={
        "type": "object",
        "properties": {
            "template": {"type": "string", "maxLength": 100_000},
            "values": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "strict": {"type": "boolean"},
        },
        "required": ["template"],
        "additionalProperties": False,
    },
    func=_render,
)
