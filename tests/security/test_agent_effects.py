"""Red team: make a side effect happen twice under one idempotency key."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from agent_helpers import FINISH, Listener, http_step, spec

from das.agents.tde_loop import run_tde
from das.identity import os_principal
from das.llm.testmodel import register_script
from das.store import open_store
from das.store.keys import principal_namespace, scoped_key


def mine(key: str) -> str:
    """The scoped key a run by this OS account stores its effects under."""
    return scoped_key(principal_namespace(os_principal().name), key)


def _ops(tmp_path, url: str, timeout_s: float = 2.0) -> str:
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        yaml.safe_dump(
            {
                "allowed_endpoints": [url],
                "allowed_methods": ["GET", "POST"],
                "allowed_tools": ["finish", "http_request"],
                "timeout_s": timeout_s,
            }
        )
    )
    return str(ops)


def test_agent_reruns_a_post_whose_response_timed_out(tmp_path, das_home):
    """Tried: POST to a server that acts but answers after the task's deadline (read timeout),
    then run the same idempotency key again. The server must see the POST once, until an
    operator says it did not happen."""
    slow = Listener(delay_s=4.0)
    try:
        ops = _ops(tmp_path, slow.url)
        model = register_script("post-once", [http_step(slow.url, "POST", {"pay": 100}), FINISH])
        first = run_tde(spec("never_declared_anywhere", key="pay-1"), model=model, policy_file=ops)
        assert first.stop_reason == "error" and "outcome is unknown" in (first.message or "")
        assert "das effects resolve" in first.message and len(slow.requests) == 1 and first.retryable is False
        assert slow.requests[0][2].get("Idempotency-Key", "").startswith(mine("pay-1") + ":")
        again = run_tde(spec("never_declared_anywhere", key="pay-1"), model=model, policy_file=ops)
        assert again.stop_reason == "error" and "not repeated" in (again.message or "")
        assert len(slow.requests) == 1
        [effect] = open_store().effects("unknown")
        # the operator checked the remote side: it did not happen, so a re-run may send it
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "das",
                "effects",
                "resolve",
                effect["call_key"],
                "--as",
                "not-done",
                "--note",
                "no payment 100 in the ledger",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and json.loads(out.stdout)["resolved_as"] == "not-done", out.stderr
        slow_fast = register_script("post-once-fast", [http_step(slow.url, "POST", {"pay": 100}), FINISH])
        slow.requests.clear()
        third = run_tde(
            spec("never_declared_anywhere", key="pay-1"),
            model=slow_fast,
            policy_file=_ops(tmp_path, slow.url, timeout_s=10),
        )
        assert third.status == "succeeded" and len(slow.requests) == 1
        audit = open_store().db.execute(
            "SELECT actor, detail_json FROM audit_log WHERE action = 'effect.resolve'"
        )
        assert "no payment 100" in audit.fetchone()["detail_json"]
    finally:
        slow.close()


def test_agent_get_that_times_out_may_be_retried(tmp_path):
    """Tried (the allowed case): a GET has no side effect by HTTP's rules; its timeout goes back
    to the model as an observation, the run does not stop on an unknown outcome."""
    slow = Listener(delay_s=3.0)
    try:
        model = register_script("get-slow", [http_step(slow.url), FINISH])
        result = run_tde(
            spec("never_declared_anywhere", key="get-1"),
            model=model,
            policy_file=_ops(tmp_path, slow.url, timeout_s=1.5),
        )
        assert "outcome is unknown" not in (result.message or "")
        assert any("ReadTimeout" in (s.error or "") for s in result.trace)
    finally:
        slow.close()


def test_agent_worker_killed_mid_post_leaves_a_claim_that_blocks_a_repeat(tmp_path):
    """Tried: a claim left `started` (a worker died between claim and record): the re-run must
    not send the POST again."""
    listener = Listener()
    try:
        from das.tools.base import call_key

        args = {"url": listener.url, "method": "POST", "json": {"n": 1}}
        open_store().claim_effect(call_key(mine("kill-1"), "http_request", args), "http_request")
        model = register_script(
            "post-after-kill", [{"tool_calls": [{"name": "http_request", "arguments": args}]}, FINISH]
        )
        result = run_tde(
            spec("never_declared_anywhere", key="kill-1"),
            model=model,
            policy_file=_ops(tmp_path, listener.url),
        )
        assert result.stop_reason == "error" and "not repeated" in (result.message or "")
        assert listener.connections == 0
    finally:
        listener.close()
