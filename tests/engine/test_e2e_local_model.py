"""The must-show run, as an operator does it: `das kernel up`, `das serve` with the embedded
local model (real inference, nothing scripted, no network), then `peo_example` with a
probabilistic task spec ends COMPLETED with a `tdeResult` in history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import jsonschema
import pytest
from engine_helpers import wait_for
from needs import NO_LLAMA_CPP, needs_module

pytestmark = [pytest.mark.engine, pytest.mark.local_model]

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "technical", "other"]},
        "reason": {"type": "string", "minLength": 5, "maxLength": 120},
    },
    "required": ["category", "reason"],
    "additionalProperties": False,
}


def test_peo_example_completes_with_the_embedded_model(engine, engine_client, unique, tmp_path):
    needs_module("llama_cpp", "DAS_REQUIRE_LOCAL_MODEL", NO_LLAMA_CPP)  # in CI: required, never skipped
    env = {**os.environ, "DAS_HOME": str(tmp_path), "DAS_ENGINE_URL": engine.url}
    env.pop("DAS_MODEL", None)  # the embedded default
    up = subprocess.run(
        [sys.executable, "-m", "das", "kernel", "up", "--detach", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert up.returncode == 0, up.stderr
    assert any(d["file"] == "peo_example.bpmn" for d in json.loads(up.stdout)["deployments"])
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "das",
            "serve",
            "--topics",
            "das-tde-probabilistic",
            "--workers",
            "1",
            "--poll-ms",
            "1000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        spec = {
            "task_type": "triage_ticket",
            "prompt": "Classify the ticket as billing, technical or other.",
            "inputs": {"ticket": "I was charged twice for invoice INV-1042."},
            "output_schema": SCHEMA,
            "policy": {"max_iterations": 3},
        }
        pid = engine_client.start_process(
            "peo_example", {"taskSpec": spec, "correlationId": f"local-{unique}"}
        )["id"]

        def finished():
            state = engine_client.history_process_instances(processInstanceId=pid)[0]["state"]
            return state if state != "ACTIVE" else None

        assert wait_for(finished, 420, what="peo_example with the local model") == "COMPLETED"
    finally:
        serve.send_signal(signal.SIGTERM)
        _, logs = serve.communicate(timeout=60)
    assert serve.returncode == 0, logs[-2000:]
    found = engine_client.history_variables(processInstanceId=pid, variableName="tdeResult")
    assert found, "tdeResult is in history"
    value = found[0]["value"]
    result = json.loads(value) if isinstance(value, str) else value
    assert result["status"] == "succeeded" and result["model"] == "local/qwen2.5-coder-1.5b", result.get(
        "message"
    )
    assert result["outputs"]["category"] == "billing"  # right, not only schema-valid
    jsonschema.validate(result["outputs"], SCHEMA)
    assert f"local-{unique}" in logs  # correlationId carried into the worker's JSON logs
