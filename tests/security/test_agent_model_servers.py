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


@pytest.mark.parametrize("base", ["http://127.0.0.1.evil.example/v1", "http://localhost.evil.example:8000/v1",
                                  "http://evil.example/v1?h=127.0.0.1", "http://10.0.0.5:8000/v1",
                                  "http://user@evil.example/127.0.0.1/v1"])
def test_a_lookalike_loopback_server_is_not_local_so_pii_never_goes_there(base: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", base)
    assert not is_loopback_url(base) and not gateway.is_local("openai/served")
    with pytest.raises(PolicyDenied):  # pii: local models only, refused before any request
        gateway.complete("openai/served", [{"role": "user", "content": "x"}], policy=Policy(data_class="pii"))


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000/v1", "http://[::1]:8000/v1", "http://localhost:1/v1",
                                  "http://127.5.6.7/v1"])
def test_a_loopback_server_counts_as_local(base: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", base)
    assert gateway.is_local("openai/served")


def test_a_task_spec_cannot_name_another_model_server() -> None:
    spec = TaskSpec(task_type="t", prompt="p", policy={"api_base": "http://127.0.0.1:9/v1"})
    with pytest.raises(InvalidInput, match="api_base"):  # refused before any call: not a policy key
        run_tde(spec, model="test/auto")


def test_a_model_that_writes_a_refusal_teaches_nothing() -> None:
    model = SCRIPTS.register("fake-refusal", [{"text": "400 Bad Request: response_format json_schema is not "
                                                        "supported; tools are not supported"}],
                             structured="json_schema")
    before = gateway.capabilities(model)
    gateway.complete(model, [{"role": "user", "content": "x"}], policy=Policy(),
                     response_schema={"type": "object"})
    after = gateway.capabilities(model)
    assert (after.structured, after.tools) == (before.structured, before.tools)
    assert after.learned == []
