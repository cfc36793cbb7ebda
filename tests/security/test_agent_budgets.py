"""Red team: make a budget silently switch off, or make the run forget what it spent."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from agent_helpers import spec

from das.agents import deadline
from das.agents.tde_loop import run_tde
from das.errors import PolicyDenied
from das.guardrails import resolve_policy
from das.llm.testmodel import register_script
from das.store import open_store


def test_agent_runs_on_a_model_nobody_can_price(das_home):
    """Tried: `max_cost_usd` with an external model litellm has no price for: refused before
    any call (exit 3, the model named), through the CLI."""
    das_home.mkdir(parents=True, exist_ok=True)
    spec_file = das_home / "spec.json"
    spec_file.write_text(spec("never_declared_anywhere").model_dump_json())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "das",
            "tde",
            "run",
            "--spec",
            str(spec_file),
            "--model",
            "openai/das-unpriced-model-x",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3, out.stderr
    result = json.loads(out.stdout)
    assert result["stop_reason"] == "policy_denied" and "openai/das-unpriced-model-x" in result["message"]
    assert "no known price" in result["message"] and result["usage"]["model_calls"] == 0


def test_operator_declared_price_counts_and_a_spec_cannot_declare_one(tmp_path, monkeypatch):
    """Tried: a spec declares the model free; then the operator declares a real price, and the
    price check passes (the network switch is what stops the call here)."""
    with pytest.raises(PolicyDenied, match="only the operator"):
        resolve_policy(
            spec("x", policy={"model_prices": {"openai/m": {"input_per_mtok": 0, "output_per_mtok": 0}}})
        )
    ops = tmp_path / "ops.yaml"
    ops.write_text("model_prices: {openai/das-unpriced-model-x: {input_per_mtok: 3, output_per_mtok: 15}}\n")
    result = run_tde(
        spec("never_declared_anywhere"), model="openai/das-unpriced-model-x", policy_file=str(ops)
    )
    assert result.stop_reason == "policy_denied" and "network model requests are off" in (
        result.message or ""
    )


def test_agent_stuck_calls_are_bounded_and_their_late_usage_is_kept():
    """Tried: 50 tasks whose model call ignores its timeout and hangs past the deadline. Live
    call threads stay bounded; every late reply's tokens are recorded, none dropped."""
    model = register_script(
        "stuck", [{"sleep_s": 1.2, "ignore_timeout": True, "usage": {"input_tokens": 7, "output_tokens": 3}}]
    )
    peak = 0
    results = []
    for i in range(50):
        results.append(
            run_tde(
                spec("never_declared_anywhere", key=f"stuck-{i}", policy={"timeout_s": 0.05}), model=model
            )
        )
        peak = max(peak, deadline.live_call_threads())
    assert {r.stop_reason for r in results} == {"timeout"}
    assert peak <= deadline.MAX_CALL_THREADS, peak
    for _ in range(100):  # the stuck calls end; their usage arrives late
        if deadline.live_call_threads() == 0:
            break
        time.sleep(0.1)
    assert deadline.live_call_threads() == 0
    rows = open_store().db.execute("SELECT detail_json FROM audit_log WHERE action = 'late_usage'").fetchall()
    late = [json.loads(r[0]) for r in rows]
    started = sum(1 for r in results if r.usage.model_calls == 0)  # calls that got a thread
    assert late and all(d["input_tokens"] == 7 and d["output_tokens"] == 3 for d in late)
    assert len(late) <= 50 and len(late) >= deadline.MAX_CALL_THREADS, (len(late), started)


def test_agent_reply_that_lands_just_after_the_deadline_is_counted():
    """Tried: a reply arriving a moment after timeout_s: the stop is `timeout`, and its tokens
    are in the result's usage."""
    model = register_script(
        "late", [{"sleep_s": 0.35, "ignore_timeout": True, "usage": {"input_tokens": 11, "output_tokens": 4}}]
    )
    result = run_tde(spec("never_declared_anywhere", policy={"timeout_s": 0.2}), model=model)
    assert result.stop_reason == "timeout"
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.model_calls) == (11, 4, 1)


def test_agent_auth_failure_is_not_retried(monkeypatch):
    """Tried: a provider that answers "authentication failed" (and a missing key arriving as a
    connection error): one call, no retries, stop `error` with the reason on one line."""
    calls = []
    model = register_script("auth-fail", [{"raise": "auth"}])
    import das.llm.providers as providers

    litellm = providers.ensure_registered()
    real = litellm.completion

    def counting(**kwargs):
        calls.append(kwargs["model"])
        return real(**kwargs)

    monkeypatch.setattr(litellm, "completion", counting)
    result = run_tde(spec("never_declared_anywhere"), model=model)
    assert result.stop_reason == "error" and len(calls) == 1 and "\n" not in (result.message or "")
    assert result.retryable is False  # the worker raises an incident at once instead of retrying
    from das.llm.gateway import _is_transient

    missing_key = litellm.exceptions.APIConnectionError(
        message="OpenAIException - Missing credentials. Please pass an `api_key`",
        llm_provider="openai",
        model="gpt-4o-mini",
    )
    assert not _is_transient(missing_key)
    assert _is_transient(
        litellm.exceptions.APIConnectionError(
            message="Connection reset by peer", llm_provider="openai", model="gpt-4o-mini"
        )
    )
