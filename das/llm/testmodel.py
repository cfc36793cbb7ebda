"""The scripted test model, addressable as ``test/<script>``.

It goes through litellm's own provider path (a registered custom provider), so tests
exercise exactly the code a real provider does. Which behaviour is scripted is explicit:
a script is a list of steps, and the step played for a call is chosen by how many assistant
turns the conversation already has, so the model is stateless and safe under concurrency.

A step may contain:
  ``text``        assistant text (may be malformed JSON on purpose)
  ``tool_calls``  ``[{"name": ..., "arguments": {...}}]`` (native tool calling)
  ``auto_finish`` true: call ``finish`` with the smallest outputs valid for the finish
                  tool's schema (what a perfectly obedient model would do)
  ``sleep_s``     delay before answering (to test timeouts); the call's own timeout cuts it
                  short, like a real provider's, unless ``ignore_timeout`` is true (a stuck call)
  ``raise``       ``timeout`` | ``rate_limit`` | ``server_error`` | ``auth`` | ``bad_request``
                  (``message``: the provider's text, to play a particular server's error)
  ``usage``       ``{"input_tokens": n, "output_tokens": m}`` (default 10 / 5)
  ``cost_usd``    the cost this call reports

A script may set ``"native_tools": false`` to play a model without native tool calling, so
the loop's JSON-action fallback is exercised through the same provider path, and
``"structured": "prompt"`` to play a model without structured output (the gateway puts the
schema in the prompt, parses and validates the text, and asks again when it does not fit);
``"structured"`` may also name any mode of ``das.llm.capabilities.MODES`` (default
``"grammar"`` = ``json_object_schema``). ``"refuses": [modes]`` plays a server that answers
400 to those ``response_format`` shapes, ``"refuses_tools": true`` one that answers 400 to
``tools``, so the gateway's learning and fallbacks run through the provider path too.

Scripts are found, in order: registered in-process with ``register_script``; a JSON file
``<name>.json`` in ``$DAS_TEST_SCRIPTS`` or ``$DAS_HOME/test_scripts``; the built-ins below.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from das.errors import UsageError

BUILTIN_SCRIPTS: dict[str, dict[str, Any]] = {
    # finishes at once with schema-valid outputs
    "auto": {"steps": [{"auto_finish": True}]},
    # thinks forever and never finishes
    "loop": {"steps": [{"text": "Still thinking about it."}], "repeat_last": True},
    # calls a tool each turn and never finishes
    "tool-loop": {
        "steps": [{"tool_calls": [{"name": "json_query", "arguments": {"data": {"a": 1}, "path": "a"}}]}],
        "repeat_last": True,
    },
    "invalid-json": {"steps": [{"text": "{not json at all"}], "repeat_last": True},
    "sleep-5": {"steps": [{"sleep_s": 5, "auto_finish": True}]},
    "fail-transient": {"steps": [{"raise": "server_error"}], "repeat_last": True},
    "fail-permanent": {"steps": [{"raise": "auth"}], "repeat_last": True},
    "expensive": {
        "steps": [
            {"text": "thinking", "cost_usd": 0.2, "usage": {"input_tokens": 900, "output_tokens": 300}}
        ],
        "repeat_last": True,
    },
}


class ScriptRegistry:
    """Where ``test/<name>`` scripts come from: in-process registrations, then
    ``<name>.json`` in ``$DAS_TEST_SCRIPTS`` or ``$DAS_HOME/test_scripts``, then the built-ins.

    One instance serves the process's test provider (``SCRIPTS``); tests may build their own."""

    def __init__(self, builtins: dict[str, dict[str, Any]] | None = None) -> None:
        self._builtins = dict(BUILTIN_SCRIPTS if builtins is None else builtins)
        self._scripts: dict[str, dict[str, Any]] = {}

    def register(
        self, name: str, steps: list[dict[str, Any]], repeat_last: bool = True, **options: Any
    ) -> str:
        """Register a script; returns the model string ``test/<name>``."""
        self._scripts[name] = {"steps": steps, "repeat_last": repeat_last, **options}
        return f"test/{name}"

    def load(self, name: str) -> dict[str, Any]:
        if name in self._scripts:
            return self._scripts[name]
        dirs = [os.environ.get("DAS_TEST_SCRIPTS")]
        if os.environ.get("DAS_HOME"):
            dirs.append(str(Path(os.environ["DAS_HOME"]) / "test_scripts"))
        for d in dirs:
            if d and (Path(d) / f"{name}.json").is_file():
                data = json.loads((Path(d) / f"{name}.json").read_text())
                return data if isinstance(data, dict) else {"steps": data, "repeat_last": True}
        if name in self._builtins:
            return self._builtins[name]
        raise UsageError(
            f"unknown test model script {name!r}: register it, put {name}.json in $DAS_TEST_SCRIPTS, "
            f"or use a built-in ({', '.join(sorted(self._builtins))})"
        )


SCRIPTS = ScriptRegistry()


def register_script(name: str, steps: list[dict[str, Any]], repeat_last: bool = True) -> str:
    """Register a script with the process's test provider; returns ``test/<name>``."""
    return SCRIPTS.register(name, steps, repeat_last)


def load_script(name: str) -> dict[str, Any]:
    return SCRIPTS.load(name)


def sent_mode(fmt: dict[str, Any]) -> str:
    """Which structured-output mode a ``response_format`` asks for (``none`` when absent)."""
    if fmt.get("type") == "json_schema":
        return "json_schema_strict" if (fmt.get("json_schema") or {}).get("strict") else "json_schema"
    if fmt.get("type") == "json_object":
        return "json_object_schema" if fmt.get("schema") else "json_object"
    return "none"


def sent_schema(fmt: dict[str, Any]) -> dict[str, Any] | None:
    """The schema a ``response_format`` carries, in either spelling."""
    if isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    inner = fmt.get("json_schema") or {}
    return inner.get("schema") if isinstance(inner, dict) and isinstance(inner.get("schema"), dict) else None


def pick_step(script: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    steps = script["steps"]
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    if turn < len(steps):
        return steps[turn]
    if script.get("repeat_last", True):
        return steps[-1]
    return steps[turn % len(steps)]


def minimal_instance(schema: dict[str, Any] | None) -> Any:
    """The smallest value valid for a (simple) JSON Schema: what ``auto_finish`` returns."""
    schema = schema or {}
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal_instance(schema[key][0])
    if "allOf" in schema:
        out: dict[str, Any] = {}
        for sub in schema["allOf"]:
            value = minimal_instance(sub)
            if isinstance(value, dict):
                out.update(value)
        return out
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: minimal_instance(props.get(k, {})) for k in schema.get("required", list(props))}
    if kind == "array":
        return [minimal_instance(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * max(schema.get("minLength", 1), 1)
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def play(
    step: dict[str, Any],
    tools: list[dict[str, Any]] | None,
    response_schema: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Turn a script step into a reply: ``{text, tool_calls, usage, cost_usd}``.

    Like a real provider, a call honours its own ``timeout_s``: a step that sleeps longer
    raises a timeout at that moment instead of holding its thread.
    """
    if step.get("sleep_s"):
        sleep_s = float(step["sleep_s"])
        if timeout_s is not None and sleep_s > timeout_s and not step.get("ignore_timeout"):
            time.sleep(max(timeout_s, 0.0))
            raise ScriptedError("timeout")
        time.sleep(sleep_s)
    if step.get("raise"):
        raise ScriptedError(step["raise"], step.get("message"))
    tool_calls = list(step.get("tool_calls") or [])
    text = step.get("text")
    if step.get("auto_finish"):
        finish = next((t["function"] for t in tools or [] if t["function"]["name"] == "finish"), None)
        args = minimal_instance(finish["parameters"]) if finish else {"outputs": {}}
        if finish is None and response_schema is not None:
            text = json.dumps(minimal_instance(response_schema))
        elif finish is None:
            text = json.dumps({"tool": "finish", "arguments": args})
        else:
            tool_calls.append({"name": "finish", "arguments": args})
    usage = step.get("usage") or {}
    return {
        "text": text,
        "tool_calls": tool_calls,
        "input_tokens": int(usage.get("input_tokens", 10)),
        "output_tokens": int(usage.get("output_tokens", 5)),
        "cost_usd": float(step.get("cost_usd", 0.0)),
    }


class ScriptedError(Exception):
    """A failure the script asked for; the provider maps it to litellm's exception types."""

    def __init__(self, kind: str, message: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message or f"scripted {kind}"
