"""The reference processes (processes/*.bpmn) on the real engine with the real DAS topic."""

from __future__ import annotations

import pytest
from engine_helpers import wait_for

from das.camunda.client import EngineClient
from das.camunda.variables import java_list_var
from das.config import resource_dir
from das.engine.handlers import TOPIC_TDE
from das.engine.kernel import deploy_processes

pytestmark = pytest.mark.engine

PROCESSES = sorted(resource_dir("processes").glob("*.bpmn"))
SPEC = {
    "task_type": "summarize",
    "prompt": "Summarise the text.",
    "inputs": {"text": "DAS runs guarded LLM loops as external tasks."},
}


@pytest.fixture(scope="module")
def deployed(engine) -> dict[str, dict]:
    with engine.client() as client:
        return {d["file"]: d for d in deploy_processes(client)}


@pytest.mark.parametrize("path", PROCESSES, ids=[p.name for p in PROCESSES])
def test_every_reference_process_deploys(deployed, path) -> None:
    entry = deployed[path.name]
    assert entry["status"] in ("deployed", "unchanged"), entry.get("error")


def test_redeploy_is_a_no_op(deployed, engine_client: EngineClient) -> None:
    again = deploy_processes(engine_client)
    assert all(d["status"] == "unchanged" for d in again), again


def _need(*names: str) -> None:
    """The reference processes ship with the repo: one missing is a broken checkout, never a skip."""
    absent = [n for n in names if not (resource_dir("processes") / n).is_file()]
    assert not absent, f"reference process(es) missing from {resource_dir('processes')}: {absent}"


def _state(client: EngineClient, pid: str) -> str:
    return client.history_process_instances(processInstanceId=pid)[0]["state"]


def _ends(client: EngineClient, pid: str) -> set[str]:
    acts = client.history_activity_instances(processInstanceId=pid)
    return {a["activityId"] for a in acts if a["activityType"].endswith("EndEvent")}


def test_peo_example_probabilistic_task_is_completed_and_routed(deployed, engine_client, run_worker, unique):
    _need("peo_example.bpmn", "tde_task_template.bpmn")
    run_worker(TOPIC_TDE, workers=2)
    pid = engine_client.start_process("peo_example", {"taskSpec": SPEC, "correlationId": f"corr-{unique}"})[
        "id"
    ]
    wait_for(lambda: _state(engine_client, pid) != "ACTIVE", 90, what="peo_example finished")
    assert _state(engine_client, pid) == "COMPLETED"
    assert "end" in _ends(engine_client, pid)
    result = engine_client.history_variables(processInstanceId=pid, variableName="tdeResult")
    assert result and result[0]["parsedValue"]["status"] == "succeeded"
    assert result[0]["parsedValue"]["correlation_id"] == f"corr-{unique}"
    status = engine_client.history_variables(processInstanceId=pid, variableName="tdeStatus")
    assert status[0]["value"] == "succeeded"


def test_peo_example_guardrail_stop_caught_by_boundary(deployed, engine_client, run_worker, unique):
    _need("peo_example.bpmn", "tde_task_template.bpmn")
    run_worker(TOPIC_TDE, model="test/loop")
    spec = {**SPEC, "policy": {"max_iterations": 2}}
    pid = engine_client.start_process("peo_example", {"taskSpec": spec, "correlationId": f"corr-{unique}"})[
        "id"
    ]
    wait_for(lambda: _state(engine_client, pid) != "ACTIVE", 90, what="peo_example finished")
    assert _state(engine_client, pid) == "COMPLETED"
    assert "end_guardrail" in _ends(engine_client, pid)


def test_peo_example_uc4_fan_out(deployed, engine_client, run_worker, unique):
    _need("peo_example.bpmn", "tde_task_template.bpmn")
    worker = run_worker(TOPIC_TDE, workers=4)
    n = 6
    items = [{**SPEC, "inputs": {"text": f"item number {i} of the fan-out"}} for i in range(n)]
    pid = engine_client.start_process(
        "peo_example",
        {"taskSpec": SPEC, "correlationId": f"corr-{unique}", "fanout": True, "items": java_list_var(items)},
    )["id"]
    wait_for(lambda: _state(engine_client, pid) != "ACTIVE", 120, what="fan-out finished")
    assert _state(engine_client, pid) == "COMPLETED"
    calls = engine_client.history_activity_instances(
        processInstanceId=pid, activityId="fan_out", activityType="callActivity"
    )
    assert len(calls) == n
    wait_for(
        lambda: worker.metrics.value("das_worker_tasks_completed_total", topic=TOPIC_TDE) == n + 1,
        10,
        what="das_worker_tasks_completed_total == n + 1",
    )
