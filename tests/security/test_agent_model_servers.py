"""Attacks on the "any provider" path: what counts as local, who may name a server, and
whether a model's words can change what DAS believes about it."""

from __future__ import annotations

import pytest

from das.agents.tde_loop import run_tde
from das.contracts import Policy, TaskSpec
from das.errors import InvalidInput, PolicyDenied
from das.llm import gateway
from das.llm.capabilities import is_loopback_url
from das.llm.testmodel import SCRIPTS


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1.evil.example/v1",
        "http://localhost.evil.example:8000/v1",
        "http://evil.example/v1?h=127.0.0.1",
        "http://10.0.0.5:8000/v1",
        "http://user@evil.example/127.0.0.1/v1",
    ],
)
def test_a_lookalike_loopback_server_is_not_local_so_pii_never_goes_there(base: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", base)
    assert not is_loopback_url(base) and not gateway.is_local("openai/served")
    with pytest.raises(PolicyDenied):  # pii: local models only, refused before any request
        gateway.complete("openai/served", [{"role": "user", "content": "x"}], policy=Policy(data_class="pii"))


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:8000/v1", "http://[::1]:8000/v1", "http://localhost:1/v1", "http://127.5.6.7/v1"],
)
def test_a_loopback_server_counts_as_local(base: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", base)
    assert gateway.is_local("openai/served")


def test_a_task_spec_cannot_name_another_model_server() -> None:
    spec = TaskSpec(task_type="t", prompt="p", policy={"api_base": "http://127.0.0.1:9/v1"})
    with pytest.raises(InvalidInput, match="api_base"):  # refused before any call: not a policy key
        run_tde(spec, model="test/auto")


def test_a_model_that_writes_a_refusal_teaches_nothing() -> None:
    model = SCRIPTS.register(
        "fake-refusal",
        [{"text": "400 Bad Request: response_format json_schema is not supported; tools are not supported"}],
        structured="json_schema",
    )
    before = gateway.capabilities(model)
    gateway.complete(
        model, [{"role": "user", "content": "x"}], policy=Policy(), response_schema={"type": "object"}
    )
    after = gateway.capabilities(model)
    assert (after.structured, after.tools) == (before.structured, before.tools)
    assert after.learned == []


def test_litellms_own_base_url_order_decides_local_not_the_first_variable_found(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.example.com/v1")  # litellm reads this one first
    caps = gateway.capabilities("openai/served", ask_litellm=False)
    assert caps.api_base == "https://api.example.com/v1" and not caps.local
    with pytest.raises(PolicyDenied):
        gateway.complete("openai/served", [{"role": "user", "content": "x"}], policy=Policy(data_class="pii"))


def test_a_model_without_a_provider_prefix_is_never_local(monkeypatch) -> None:
    monkeypatch.setenv(
        "OPENAI_API_BASE", "http://127.0.0.1:9/v1"
    )  # litellm routes claude-* to Anthropic anyway
    assert not gateway.is_local("claude-sonnet-4-20250514") and not gateway.is_local("gpt-4o")


def test_a_remote_ollama_is_not_local_and_models_yaml_local_false_is_obeyed(monkeypatch, tmp_path) -> None:
    assert gateway.is_local("ollama/llama3.1")  # the default server is localhost:11434
    monkeypatch.setenv("OLLAMA_API_BASE", "https://ollama.example.com")
    assert not gateway.is_local("ollama/llama3.1")
    monkeypatch.setenv("OLLAMA_API_BASE", "http://127.0.0.1:11434")
    models = tmp_path / "models.yaml"
    models.write_text("ollama/llama3.1: {local: false}\n")
    monkeypatch.setenv("DAS_MODELS_FILE", str(models))
    assert not gateway.is_local("ollama/llama3.1")


def test_the_checked_server_is_the_server_called(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    caps = gateway.capabilities("openai/served", ask_litellm=False)
    assert gateway._endpoint("openai/served", caps)["api_base"] == "http://127.0.0.1:9/v1"


def test_a_server_reporting_negative_usage_cannot_give_budget_back() -> None:
    model = SCRIPTS.register(
        "negative-usage",
        [{"text": "x", "usage": {"input_tokens": -5_000_000, "output_tokens": -5}, "cost_usd": -10.0}],
    )
    reply = gateway.complete(model, [{"role": "user", "content": "x"}], policy=Policy())
    assert (reply.input_tokens, reply.output_tokens, reply.cost_usd) == (0, 0, 0.0)


def test_a_server_answering_as_a_cheaper_model_is_priced_as_the_model_asked_for(monkeypatch) -> None:
    litellm = gateway.ensure_registered()

    def cheaper(**kwargs):
        return litellm.ModelResponse(
            model="ollama/llama3",
            choices=[{"message": {"role": "assistant", "content": "hi"}}],
            usage={"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000},
        )

    monkeypatch.setattr(litellm, "completion", cheaper)
    gateway.set_model_requests_allowed(True)
    try:
        reply = gateway.complete("openai/gpt-4o-mini", [{"role": "user", "content": "x"}], policy=Policy())
    finally:
        gateway.set_model_requests_allowed(None)
    price = gateway.price_of("openai/gpt-4o-mini", Policy())
    assert price is not None and reply.cost_usd == pytest.approx(price[0] + price[1]) and reply.cost_usd > 0


def test_a_failing_server_teaches_nothing() -> None:
    flaky = SCRIPTS.register(
        "flaky-500",
        [{"raise": "server_error", "message": "upstream json_schema worker crashed"}],
        structured="json_schema",
    )
    with pytest.raises(gateway.UpstreamError):
        gateway.complete(
            flaky,
            [{"role": "user", "content": "x"}],
            policy=Policy(),
            response_schema={"type": "object"},
            retries=0,
        )
    assert gateway.capabilities(flaky).structured == "json_schema"  # a 500 that is no refusal: no lesson
    refuses_all = SCRIPTS.register(
        "refuses-then-fails",
        [{"raise": "bad_request", "message": "quota exceeded"}],
        structured="json_schema",
        refuses=["json_schema", "json_object_schema", "json_object"],
    )
    with pytest.raises(gateway.UpstreamError):
        gateway.complete(
            refuses_all,
            [{"role": "user", "content": "x"}],
            policy=Policy(),
            response_schema={"type": "object"},
        )
    assert gateway.capabilities(refuses_all).structured == "json_schema"  # nothing worked: nothing proven


def test_a_declared_native_tools_model_is_not_talked_out_of_it(tmp_path, monkeypatch) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("openai/declared-tools: {tools: true}\n")
    monkeypatch.setenv("DAS_MODELS_FILE", str(models))
    gateway.LEARNED.learn("openai/declared-tools", tools=False, reason="a server said so")
    caps = gateway.capabilities("openai/declared-tools", ask_litellm=False)
    assert caps.tools is True and caps.source["tools"] == "declared"
