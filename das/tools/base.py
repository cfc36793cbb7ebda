"""The tool surface: a name, a JSON Schema for arguments, a function, and whether it has
side effects (side-effecting calls are recorded per idempotency key and never repeated)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from das.contracts import Policy
from das.errors import ModelRetry


@dataclass
class ToolContext:
    """What a tool may see: the policy (hosts) and its sandbox workspace."""

    policy: Policy
    workspace: Path
    idempotency_key: str | None = None
    correlation_id: str | None = None
    call_key: str | None = None  # set per side-effecting call: sent as Idempotency-Key
    http_timeout_s: float | None = None


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[[ToolContext, dict[str, Any]], Any]
    side_effecting: bool = False

    def openai_schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def run(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        """Validate arguments (a model mistake -> ModelRetry), then call the function."""
        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(arguments)"
            raise ModelRetry(f"bad arguments for {self.name} at {where}: {exc.message}") from exc
        return self.func(ctx, arguments)


def digest(value: Any, limit: int = 300) -> str:
    """A short, loggable summary of a tool result: its start and a hash of the whole."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    h = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{text[:limit]}{'…' if len(text) > limit else ''} (sha256:{h}, {len(text)} chars)"


def call_key(idempotency_key: str, tool: str, arguments: dict[str, Any]) -> str:
    blob = json.dumps([tool, arguments], sort_keys=True, default=str)
    return f"{idempotency_key}:{hashlib.sha256(blob.encode()).hexdigest()[:24]}"
