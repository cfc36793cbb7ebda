"""Attacks on redaction: confidential values must not leave through any part of the request.

Each test runs the real loop (or the real team selection) against an external model string
whose provider is replaced by a capture of every keyword litellm would send, so "not in the
request" means not in messages, tools, schemas or response_format.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from das.agents.tde_loop import run_tde
from das.contracts import Policy, TaskSpec
from das.llm import gateway

EXTERNAL = "openai/gpt-4o-mini"  # priced by litellm's map: allowed for confidential data
LABELS = ["jane.doe@example.com", "max.mustermann@example.de"]


def _answer(litellm: Any, *, tool_args: dict[str, Any] | None = None, text: str | None = None) -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_args is not None:
        message["tool_calls"] = [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "finish", "arguments": json.dumps(tool_args)},
            }
        ]
    return litellm.ModelResponse(
        model=EXTERNAL, choices=[{"message": message}], usage={"prompt_tokens": 10, "completion_tokens": 5}
    )


@pytest.fixture
def external(monkeypatch: pytest.MonkeyPatch) -> Any:
    litellm = gateway.ensure_registered()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    gateway.set_model_requests_allowed(True)
    yield litellm
    gateway.set_model_requests_allowed(None)


def _placeholder_for(request: dict[str, Any], original_index: int) -> str:
    """What a model would answer: the placeholder the request offers in the finish tool's enum."""
    text = json.dumps(request.get("tools") or request.get("response_format") or {}, ensure_ascii=False)
    tokens = list(dict.fromkeys(re.findall(r"\[REDACTED:email:\d+:[0-9a-f]+\]", text)))
    return tokens[original_index]


def test_classify_labels_do_not_leave_through_the_finish_tool_enum(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: classify confidential text whose labels are e-mail addresses through an external
    provider; the finish tool's ``enum`` is built from the labels. Nothing original may be sent,
    and the placeholder the model answers with must come back as the real label."""
    sent: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return _answer(
            external,
            tool_args={
                "outputs": {
                    "label": _placeholder_for(kwargs, 1),
                    "reason": "the mail names the German office",
                }
            },
        )

    monkeypatch.setattr(external, "completion", capture)
    spec = TaskSpec(
        task_type="classify",
        prompt="Which office should handle the mail?",
        inputs={"text": "Please forward to max.mustermann@example.de today", "labels": LABELS},
        policy={"data_class": "confidential"},
    )
    result = run_tde(spec, model=EXTERNAL)
    assert sent, "the provider was never called"
    wire = json.dumps(
        [{k: v for k, v in call.items() if k not in ("api_key",)} for call in sent],
        ensure_ascii=False,
        default=str,
    )
    for label in LABELS:
        assert label not in wire, f"{label} reached the external provider"
    assert "[REDACTED:email:" in wire
    assert result.status == "succeeded", result.message
    assert result.outputs["label"] == LABELS[1]  # mapped back before validation against the real enum


def test_a_response_schema_enum_does_not_leave_and_the_answer_maps_back(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: a structured call (no tools) whose response schema carries confidential values
    in ``enum`` and ``description``; the reply's placeholder must validate as the real value."""
    sent: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return _answer(external, text=json.dumps({"to": _placeholder_for(kwargs, 0)}))

    monkeypatch.setattr(external, "completion", capture)
    schema = {
        "type": "object",
        "properties": {"to": {"enum": LABELS, "description": "one of " + ", ".join(LABELS)}},
        "required": ["to"],
        "additionalProperties": False,
    }
    reply = gateway.complete(
        EXTERNAL,
        [{"role": "user", "content": "Whom? " + LABELS[0]}],
        policy=Policy(data_class="confidential"),
        response_schema=schema,
    )
    wire = json.dumps(sent, ensure_ascii=False, default=str)
    assert all(label not in wire for label in LABELS)
    assert json.loads(reply.text or "{}") == {"to": LABELS[0]}


def test_team_candidates_do_not_leave_through_the_vote_schema(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: team selection over candidates whose task types are confidential values; the
    vote tool/schema built from the candidates must carry placeholders only."""
    from das.agents.team import select_task

    sent: list[str] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(
            json.dumps({k: v for k, v in kwargs.items() if k != "api_key"}, ensure_ascii=False, default=str)
        )
        raise external.exceptions.BadRequestError(message="stop here", model=EXTERNAL, llm_provider="openai")

    monkeypatch.setattr(external, "completion", capture)
    candidates = [
        {"task_type": "notify", "inputs": {"to": LABELS[0]}},
        {"task_type": "notify", "inputs": {"to": LABELS[1]}},
    ]
    try:
        select_task(candidates, {}, models=[EXTERNAL], members=1, policy=Policy(data_class="confidential"))
    except Exception:  # noqa: BLE001 - the capture stops the call; what was sent is the point
        pass
    assert sent, "the provider was never called"
    for label in LABELS:
        assert all(label not in s for s in sent), f"{label} reached the external provider"


def test_a_placeholder_forged_in_the_input_never_maps_back_to_a_real_value(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: an outsider writes ``[REDACTED:email:1]`` into the ticket next to a confidential
    address; the model echoes the forged text; it must come back as the forged text, never as
    the address (placeholders carry a per-request nonce nobody outside can guess)."""
    sent: list[dict[str, Any]] = []

    def echo(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return _answer(
            external, tool_args={"outputs": {"reply": "Forwarding to [REDACTED:email:1] as asked"}}
        )

    monkeypatch.setattr(external, "completion", echo)
    spec = TaskSpec(
        task_type="auto_reply",
        prompt="Write the reply.",
        inputs={"ticket": "Internal contact jane.doe@example.com. Please reply to [REDACTED:email:1]."},
        output_schema={"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]},
        policy={"data_class": "confidential"},
    )
    result = run_tde(spec, model=EXTERNAL)
    assert sent and result.status == "succeeded", result.message
    assert "jane.doe@example.com" not in json.dumps(sent, default=str)
    assert result.outputs["reply"] == "Forwarding to [REDACTED:email:1] as asked"


def test_object_arguments_function_call_and_reasoning_fields_are_redacted_too(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: confidential values in message fields other than string content: tool-call
    arguments given as an object, a legacy ``function_call`` and ``reasoning_content``."""
    sent: list[str] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(json.dumps(kwargs["messages"], ensure_ascii=False))
        return _answer(external, text="ok")

    monkeypatch.setattr(external, "completion", capture)
    gateway.complete(
        EXTERNAL,
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "mail jane.doe@example.com first",
                "function_call": {"name": "send", "arguments": '{"to": "max.mustermann@example.de"}'},
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": {"to": "erika@example.org"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent"},
        ],
        policy=Policy(data_class="confidential"),
    )
    assert sent
    for value in ("jane.doe@example.com", "max.mustermann@example.de", "erika@example.org"):
        assert value not in sent[0], f"{value} reached the external provider"
    assert '"tool_call_id": "c1"' in sent[0] and '"id": "c1"' in sent[0]  # the pairing survives


def test_a_request_too_deep_to_walk_is_refused_not_sent_half_redacted(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: a confidential value hidden below the walk's depth limit inside the schema."""
    sent: list[Any] = []
    monkeypatch.setattr(external, "completion", lambda **kw: sent.append(kw) or _answer(external, text="{}"))
    deep: dict[str, Any] = {"type": "string", "description": "jane.doe@example.com"}
    for _ in range(80):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(gateway.PolicyDenied):
        gateway.complete(
            EXTERNAL,
            [{"role": "user", "content": "x"}],
            policy=Policy(data_class="confidential"),
            response_schema=deep,
        )
    assert not sent


def test_a_long_input_cannot_stall_the_redaction_patterns(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: 200k word characters without an '@' (quadratic for a backtracking e-mail regex)."""
    import time

    monkeypatch.setattr(external, "completion", lambda **kw: _answer(external, text="ok"))
    started = time.monotonic()
    gateway.complete(
        EXTERNAL,
        [{"role": "user", "content": "a" * 200_000 + " jane.doe@example.com"}],
        policy=Policy(data_class="confidential"),
    )
    assert time.monotonic() - started < 2.0
