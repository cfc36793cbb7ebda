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
        message["tool_calls"] = [{"id": "c1", "type": "function",
                                  "function": {"name": "finish", "arguments": json.dumps(tool_args)}}]
    return litellm.ModelResponse(model=EXTERNAL, choices=[{"message": message}],
                                 usage={"prompt_tokens": 10, "completion_tokens": 5})


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
    tokens = list(dict.fromkeys(re.findall(r"\[REDACTED:email:\d+\]", text)))
    return tokens[original_index]


def test_classify_labels_do_not_leave_through_the_finish_tool_enum(external: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tried: classify confidential text whose labels are e-mail addresses through an external
    provider; the finish tool's ``enum`` is built from the labels. Nothing original may be sent,
    and the placeholder the model answers with must come back as the real label."""
    sent: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return _answer(external, tool_args={"outputs": {"label": _placeholder_for(kwargs, 1),
                                                        "reason": "the mail names the German office"}})

    monkeypatch.setattr(external, "completion", capture)
    spec = TaskSpec(task_type="classify", prompt="Which office should handle the mail?", inputs={"text": "Please forward to max.mustermann@example.de today",
                                                   "labels": LABELS},
                    policy={"data_class": "confidential"})
    result = run_tde(spec, model=EXTERNAL)
    assert sent, "the provider was never called"
    wire = json.dumps([{k: v for k, v in call.items() if k not in ("api_key",)} for call in sent],
                      ensure_ascii=False, default=str)
    for label in LABELS:
        assert label not in wire, f"{label} reached the external provider"
    assert "[REDACTED:email:" in wire
    assert result.status == "succeeded", result.message
    assert result.outputs["label"] == LABELS[1]  # mapped back before validation against the real enum


def test_a_response_schema_enum_does_not_leave_and_the_answer_maps_back(external: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Tried: a structured call (no tools) whose response schema carries confidential values
    in ``enum`` and ``description``; the reply's placeholder must validate as the real value."""
    sent: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return _answer(external, text=json.dumps({"to": _placeholder_for(kwargs, 0)}))

    monkeypatch.setattr(external, "completion", capture)
    schema = {"type": "object", "properties": {"to": {"enum": LABELS, "description": "one of " + ", ".join(LABELS)}},
              "required": ["to"], "additionalProperties": False}
    reply = gateway.complete(EXTERNAL, [{"role": "user", "content": "Whom? " + LABELS[0]}],
                             policy=Policy(data_class="confidential"), response_schema=schema)
    wire = json.dumps(sent, ensure_ascii=False, default=str)
    assert all(label not in wire for label in LABELS)
    assert json.loads(reply.text or "{}") == {"to": LABELS[0]}


def test_team_candidates_do_not_leave_through_the_vote_schema(external: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tried: team selection over candidates whose task types are confidential values; the
    vote tool/schema built from the candidates must carry placeholders only."""
    from das.agents.team import select_task

    sent: list[str] = []

    def capture(**kwargs: Any) -> Any:
        sent.append(json.dumps({k: v for k, v in kwargs.items() if k != "api_key"}, ensure_ascii=False, default=str))
        raise external.exceptions.BadRequestError(message="stop here", model=EXTERNAL, llm_provider="openai")

    monkeypatch.setattr(external, "completion", capture)
    candidates = [{"task_type": "notify", "inputs": {"to": LABELS[0]}},
                  {"task_type": "notify", "inputs": {"to": LABELS[1]}}]
    try:
        select_task(candidates, {}, models=[EXTERNAL], members=1, policy=Policy(data_class="confidential"))
    except Exception:  # noqa: BLE001 - the capture stops the call; what was sent is the point
        pass
    assert sent, "the provider was never called"
    for label in LABELS:
        assert all(label not in s for s in sent), f"{label} reached the external provider"
