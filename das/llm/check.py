"""``das models check``: one tiny structured call (and one tool call) to see what a model takes.

The calls go through the gateway like every other, so a server that refuses a mode teaches
the gateway the next weaker one on the spot; the report says which mode worked in the end.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from das.contracts import Policy
from das.errors import DasError
from das.guardrails import service_policy
from das.llm import gateway, structured
from das.llm.capabilities import ModelCapabilities, StructuredMode, lesson_key

PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "word": {"type": "string"}},
    "required": ["ok", "word"],
}
PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "record_word",
        "description": "Record one word.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    },
}


class ModelCheck(BaseModel):
    """What ``das models check`` found (also its ``--format json``)."""

    model: str
    structured_before: StructuredMode = Field(description="the mode the record named before the check")
    structured: StructuredMode = Field(
        description="the mode that worked (learned when the server refused one)"
    )
    structured_ok: bool = Field(description="the reply parsed and matched the probe schema")
    reply: str | None = None
    tools: bool = Field(description="native tool calls, as the record now says")
    tools_checked: bool = False
    tools_ok: bool | None = Field(None, description="a tool call came back when one was required")
    latency_ms: float = 0.0
    error: str | None = None
    capabilities: ModelCapabilities


def check_model(
    model: str,
    *,
    policy_file: str | None = None,
    tools: bool = True,
    relearn: bool = False,
    timeout_s: float = 60.0,
) -> ModelCheck:
    """Probe ``model``: a structured call with a two-field schema, then (``tools``) a call that
    must answer with a tool call. Learned results are remembered like any other call's."""
    if relearn:
        gateway.LEARNED.forget(lesson_key(model, gateway.capabilities(model, ask_litellm=False).api_base))
    policy = service_policy("das_models_check", policy_file)
    before = gateway.capabilities(model)
    messages = [{"role": "user", "content": 'Answer with JSON: {"ok": true, "word": "hello"}'}]
    started = time.perf_counter()
    error: str | None = None
    text: str | None = None
    ok = False
    try:
        reply = gateway.complete(
            model,
            messages,
            policy=policy,
            response_schema=PROBE_SCHEMA,
            max_tokens=40,
            timeout_s=timeout_s,
            retries=0,
        )
        text = reply.text
        problems = structured.problems(structured.extract_json(reply.text), PROBE_SCHEMA)
        ok = not problems
        if problems:
            error = f"the reply does not match the probe schema: {'; '.join(problems)[:300]}"
    except ValueError as exc:
        error = f"the reply is not the probe's JSON: {exc}"
    except DasError as exc:
        error = exc.message
    latency = round((time.perf_counter() - started) * 1000, 1)
    tools_ok: bool | None = None
    if tools and error is None:
        tools_ok = _tools_probe(
            model, policy, timeout_s, learn=before.source.get("tools") not in ("declared", "builtin")
        )
    after = gateway.capabilities(model)
    return ModelCheck(
        model=model,
        structured_before=before.structured,
        structured=after.structured,
        structured_ok=ok,
        reply=text,
        tools=after.tools,
        tools_checked=tools_ok is not None,
        tools_ok=tools_ok,
        latency_ms=latency,
        error=error,
        capabilities=after,
    )


def _tools_probe(model: str, policy: Policy, timeout_s: float, learn: bool) -> bool | None:
    """A call that must be answered with a tool call; the answer is remembered as learned unless
    the operator declared it (then the probe only reports)."""
    messages = [{"role": "user", "content": "Call record_word with the word hello."}]
    try:
        reply = gateway.complete(
            model,
            messages,
            policy=policy,
            tools=[PROBE_TOOL],
            max_tokens=40,
            timeout_s=timeout_s,
            retries=0,
            tool_choice="required",
        )
    except gateway.ToolsRefused:
        return False  # the gateway has learned it
    except DasError:
        return None
    called = any(c.name == "record_word" for c in reply.tool_calls)
    if not learn:
        return called
    gateway.LEARNED.learn(
        lesson_key(model, gateway.capabilities(model).api_base),
        tools=called,
        reason="das models check: "
        + ("a tool call came back" if called else "the server answered text when a tool call was required"),
    )
    return called


__all__ = ["ModelCheck", "check_model"]
