"""Red team on the real engine: an idempotency key is data; who may use it, the engine says.

The attacker writes process variables (a taskSpec, a tdeResult): reusing another instance's
key must not return its result, compensation with a forged key must not reach its effects,
and the TDE template's own retry loop must not repeat a side effect (issue 23, findings 3, 4).
These live beside the other engine tests to share the session's engine; the loop-level key
attacks are in tests/security/test_key_attacks.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from engine_helpers import deploy_tde_min, wait_for

from das.llm.testmodel import register_script

pytestmark = pytest.mark.engine

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SSN_SCHEMA = {"type": "object", "properties": {"ssn": {"type": "string"}}, "required": ["ssn"]}


def _listener():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
    from agent_helpers import Listener

    return Listener()


def _finish(name: str, outputs: dict) -> str:
    return register_script(name, [{"tool_calls": [{"name": "finish", "arguments": {"outputs": outputs}}]}])


def _state(client, pid: str) -> str:
    rows = client.history_process_instances(processInstanceId=pid)
    return rows[0]["state"] if rows else ""


def _var(client, pid: str, name: str):
    rows = client.history_variables(processInstanceId=pid, variableName=name)
    return rows[0]["parsedValue"] if rows else None


@pytest.mark.parametrize("started", ["template", "called_by_peo_example"])
def test_template_retry_loop_cannot_repeat_a_post(engine_client, run_worker, unique, tmp_path, started):
    """Tried (finding 4): under `retry_at: process` (the operator's policy file), the model
    POSTs, then the provider fails transiently, so the template loops; every pass has a new
    activity instance. The POST reaches the server once across the 3 passes."""
    listener = _listener()
    try:
        ops = tmp_path / "ops.yaml"
        ops.write_text(
            yaml.safe_dump(
                {
                    "retry_at": "process",
                    "allowed_endpoints": [listener.url],
                    "allowed_methods": ["POST"],
                    "allowed_tools": ["finish", "http_request"],
                }
            )
        )
        model = register_script(
            f"post-then-down-{unique}",
            [
                {
                    "tool_calls": [
                        {
                            "name": "http_request",
                            "arguments": {"url": listener.url, "method": "POST", "json": {"pay": 100}},
                        }
                    ]
                },
                {"raise": "server_error"},
            ],
            repeat_last=True,
        )
        engine_client.deploy(
            f"keys-retry-{unique}",
            {
                "tde_task_template.bpmn": (PROCESSES / "tde_task_template.bpmn").read_text(),
                "peo_example.bpmn": (PROCESSES / "peo_example.bpmn").read_text(),
            },
        )
        run_worker("das-tde-probabilistic", model=model, policy_file=str(ops))
        spec = {"task_type": f"payer_{unique}", "prompt": "Pay 100.", "output_schema": {"type": "object"}}
        key = "tde_task_template" if started == "template" else "peo_example"
        pid = engine_client.start_process(key, {"taskSpec": spec, "correlationId": f"k-{unique}"})["id"]
        wait_for(lambda: _state(engine_client, pid) == "COMPLETED", 240, what="the retry loop ended")
        template = (
            pid
            if started == "template"
            else engine_client.history_process_instances(superProcessInstanceId=pid)[0]["id"]
        )
        passes = [
            a
            for a in engine_client.history_activity_instances(processInstanceId=template)
            if a["activityId"] == "probabilistic_tde"
        ]
        assert len(passes) == 3 and len({a["id"] for a in passes}) == 3
        assert _var(engine_client, template, "tdeStatus") == "retry"
        posts = [r for r in listener.requests if r[0] == "POST"]
        assert len(posts) == 1, f"the POST was sent {len(posts)} times across {len(passes)} passes"
    finally:
        listener.close()


def test_second_instance_reusing_a_spec_key_does_not_get_the_first_ones_result(
    engine_client, run_worker, unique
):
    """Tried (finding 3): instance B's taskSpec reuses instance A's idempotency key to get A's
    stored result (PII) back. B's own task runs; A's result stays A's."""
    topic_a, topic_b = f"das-keys-a-{unique}", f"das-keys-b-{unique}"
    min_a, _ = deploy_tde_min(engine_client, f"a{unique}", topic_a)
    min_b, _ = deploy_tde_min(engine_client, f"b{unique}", topic_b)
    run_worker(topic_a, model=_finish(f"victim-{unique}", {"ssn": "078-05-1120"}))
    run_worker(topic_b, model=_finish(f"thief-{unique}", {"ssn": "none"}))
    spec = {
        "task_type": f"lookup_{unique}",
        "prompt": "Look the person up.",
        "idempotency_key": "case-4711",
        "output_schema": SSN_SCHEMA,
    }
    victim = engine_client.start_process(min_a, {"taskSpec": spec, "correlationId": f"a-{unique}"})["id"]
    wait_for(lambda: _state(engine_client, victim) == "COMPLETED", 60, what="the victim's instance")
    assert _var(engine_client, victim, "tdeResult")["outputs"] == {"ssn": "078-05-1120"}
    thief = engine_client.start_process(min_b, {"taskSpec": spec, "correlationId": f"b-{unique}"})["id"]
    wait_for(lambda: _state(engine_client, thief) == "COMPLETED", 60, what="the thief's instance")
    stolen = _var(engine_client, thief, "tdeResult")
    assert stolen["outputs"] == {"ssn": "none"} and "078-05-1120" not in json.dumps(stolen)
    assert stolen["idempotency_key"] == "case-4711"  # the process still sees its own spec's key


FORGE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://procos.org/t">
  <bpmn:process id="PID" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="s" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="undo" />
    <bpmn:serviceTask id="undo" name="Undo" camunda:type="external" camunda:topic="das-tde-compensate" />
    <bpmn:sequenceFlow id="f2" sourceRef="undo" targetRef="e" />
    <bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_forged_tderesult_key_cannot_compensate_another_instances_effects(
    engine, engine_client, run_worker, unique, tmp_path
):
    """Tried (finding 3): instance A POSTs and stops (compensate_required). Process B hands
    das-tde-compensate a tdeResult carrying A's key, to undo (or learn) A's side effects.
    A's own compensation lists A's POST; B's reaches nothing."""
    from das.engine.handlers import builtin_handlers
    from das.engine.worker import Worker, WorkerConfig

    listener = _listener()
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        yaml.safe_dump(
            {
                "allowed_endpoints": [listener.url],
                "allowed_methods": ["POST"],
                "max_iterations": 2,
                "allowed_tools": ["finish", "http_request"],
            }
        )
    )
    model = register_script(
        f"pay-and-stall-{unique}",
        [
            {
                "tool_calls": [
                    {
                        "name": "http_request",
                        "arguments": {"url": listener.url, "method": "POST", "json": {"pay": 5}},
                    }
                ]
            },
            {"text": "still thinking"},
        ],
    )
    engine_client.deploy(
        f"keys-forge-{unique}",
        {
            "tde_task_template.bpmn": (PROCESSES / "tde_task_template.bpmn").read_text(),
            f"forge_{unique}.bpmn": FORGE_BPMN.replace('id="PID"', f'id="forge_{unique}"'),
        },
    )
    run_worker("das-tde-probabilistic", model=model, policy_file=str(ops))
    client = engine.client()
    comp = Worker(
        client,
        WorkerConfig(topics=["das-tde-compensate"], poll_ms=1000, grace_s=5),
        handlers={"das-tde-compensate": builtin_handlers()["das-tde-compensate"]},
    )
    thread = threading.Thread(target=comp.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        task_type = f"payer_{unique}"
        spec = {
            "task_type": task_type,
            "prompt": "Pay 5.",
            "idempotency_key": "pay-shared",
            "output_schema": {"type": "object"},
        }
        victim = engine_client.start_process(
            "tde_task_template", {"taskSpec": spec, "correlationId": f"v-{unique}"}
        )
        own = wait_for(
            lambda: engine_client.incidents(processInstanceId=victim["id"]),
            120,
            what="the victim's own compensation incident",
        )
        assert "http_request" in own[0]["incidentMessage"]  # its own compensation reaches its effect
        forged = {
            "status": "compensate_required",
            "stop_reason": "max_iterations",
            "idempotency_key": "pay-shared",
        }
        thief = engine_client.start_process(
            f"forge_{unique}",
            {"tdeResult": _json(forged), "taskType": task_type, "correlationId": f"t-{unique}"},
        )
        incidents = wait_for(
            lambda: engine_client.incidents(processInstanceId=thief["id"]),
            60,
            what="the forged compensation's answer",
        )
    finally:
        comp.stop()
        thread.join(timeout=30)
        client.close()
        listener.close()
    message = incidents[0]["incidentMessage"]
    assert "none recorded" in message and "http_request" not in message, message


def _json(value: dict):
    from das.camunda.variables import Json

    return Json(value)
