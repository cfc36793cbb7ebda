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
    idempotency_key: str | None = None  # the task's scoped key (das/store/keys.py), never the spec's text
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
    # what the call means, for its at-most-once key: spellings of one request get one key
    canonical: Callable[[dict[str, Any]], Any] | None = None

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

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


def _canonical_numbers(value: Any) -> Any:
    """10 and 10.0 are one amount; dict order never matters (json sort_keys)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    return value


def call_key(idempotency_key: str, tool: str | Tool, arguments: dict[str, Any]) -> str:
    """The at-most-once key of one call: the task's key plus what the call means."""
    name = tool.name if isinstance(tool, Tool) else tool
    meaning = tool.canonical(arguments) if isinstance(tool, Tool) and tool.canonical else arguments
    blob = json.dumps([name, _canonical_numbers(meaning)], sort_keys=True, default=str)
    return f"{idempotency_key}:{hashlib.sha256(blob.encode()).hexdigest()[:24]}"
