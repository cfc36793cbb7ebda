"""The must-show run: the engine, `peo_example`, and the worker with the embedded local model
(real inference, no scripted behaviour, no network)."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
from engine_helpers import wait_for

from das.config import resource_dir
from das.engine.handlers import TOPIC_TDE
from das.engine.kernel import deploy_processes

pytestmark = [pytest.mark.engine, pytest.mark.local_model]

SCHEMA = {"type": "object", "properties": {"category": {"enum": ["billing", "technical", "other"]},
                                           "reason": {"type": "string", "minLength": 5, "maxLength": 120}},
          "required": ["category", "reason"], "additionalProperties": False}


def test_peo_example_completes_with_the_embedded_model(engine, engine_client, run_worker, unique):
    if not os.environ.get("DAS_REQUIRE_LOCAL_MODEL"):  # in CI the model is required, never skipped
        pytest.importorskip("llama_cpp")
    assert (resource_dir("processes") / "peo_example.bpmn").is_file()
    deploy_processes(engine_client)
    run_worker(TOPIC_TDE, model="local/smollm2", workers=1)
    spec = {"task_type": "triage_ticket", "prompt": "Classify the ticket as billing, technical or other.",
            "inputs": {"ticket": "I was charged twice for invoice INV-1042."}, "output_schema": SCHEMA,
            "policy": {"max_iterations": 3}}
    pid = engine_client.start_process("peo_example", {"taskSpec": spec, "correlationId": f"local-{unique}"})["id"]

    def finished():
        state = engine_client.history_process_instances(processInstanceId=pid)[0]["state"]
        return state if state != "ACTIVE" else None

    assert wait_for(finished, 240, what="peo_example with the local model") == "COMPLETED"
    found = engine_client.history_variables(processInstanceId=pid, variableName="tdeResult")
    assert found, "tdeResult is in history"
    value = found[0]["value"]
    result = json.loads(value) if isinstance(value, str) else value
    assert result["status"] == "succeeded" and result["model"] == "local/smollm2"
    jsonschema.validate(result["outputs"], SCHEMA)
