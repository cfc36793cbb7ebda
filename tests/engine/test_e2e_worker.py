"""The worker end to end on the real engine: every outcome of the TDE loop routed by BPMN."""

from __future__ import annotations

import pytest
from engine_helpers import deploy_tde_min, wait_for

from das.camunda.client import EngineClient

pytestmark = pytest.mark.engine


def spec(**extra) -> dict:
    return {
        "task_type": "summarize",
        "prompt": "Summarise the text.",
        "inputs": {"text": "DAS runs guarded LLM loops as external tasks."},
        **extra,
    }


def finished(client: EngineClient, pids: list[str]):
    rows = [client.history_process_instances(processInstanceId=p)[0] for p in pids]
    return rows if all(r["state"] == "COMPLETED" for r in rows) else None


def end_of(client: EngineClient, pid: str) -> str:
    acts = client.history_activity_instances(processInstanceId=pid, activityType="noneEndEvent")
    return acts[0]["activityId"] if acts else ""


def var(client: EngineClient, pid: str, name: str):
    rows = client.history_variables(processInstanceId=pid, variableName=name)
    return rows[0]["parsedValue"] if rows else None


def test_success_is_completed_and_routed(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    worker = run_worker(topic, workers=2)
    pids = [
        engine_client.start_process(key, {"taskSpec": spec(), "correlationId": f"corr-{unique}-{i}"})["id"]
        for i in range(3)
    ]
    wait_for(lambda: finished(engine_client, pids), 60, what="3 instances completed")
    for i, pid in enumerate(pids):
        assert end_of(engine_client, pid) == "ok"
        result = var(engine_client, pid, "tdeResult")
        assert result["status"] == "succeeded" and result["stop_reason"] == "completed"
        assert result["correlation_id"] == f"corr-{unique}-{i}"
        assert result["idempotency_key"].startswith("tde:")  # its activity instance; the instance owns it
        assert result["trace"] and result["usage"]["iterations"] == 1
        assert var(engine_client, pid, "tdeStatus") == "succeeded"
    wait_for(
        lambda: worker.metrics.value("das_worker_tasks_completed_total", topic=topic) == 3,
        10,
        what="das_worker_tasks_completed_total == 3",
    )
    assert worker.metrics.value("das_worker_loop_iterations_total", topic=topic) == 3
    assert worker.metrics.value("das_worker_tokens_total", kind="input") > 0


def test_guardrail_stop_caught_by_boundary(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    worker = run_worker(topic, model="test/loop")
    pid = engine_client.start_process(key, {"taskSpec": spec(policy={"max_iterations": 2})})["id"]
    wait_for(lambda: finished(engine_client, [pid]), 60, what="guardrail route")
    assert end_of(engine_client, pid) == "guardrail"
    result = var(engine_client, pid, "tdeResult")
    assert result["stop_reason"] == "max_iterations" and result["trace"]
    assert worker.metrics.value("das_worker_guardrail_stops_total", reason="max_iterations") == 1
    wait_for(
        lambda: worker.metrics.value("das_worker_bpmn_errors_total", topic=topic, code="DAS_GUARDRAIL") == 1,
        10,
        what="das_worker_bpmn_errors_total == 1",
    )


def test_invalid_output_caught_by_boundary(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    run_worker(topic, model="test/invalid-json")
    pid = engine_client.start_process(key, {"taskSpec": spec()})["id"]
    wait_for(lambda: finished(engine_client, [pid]), 60, what="invalid-output route")
    assert end_of(engine_client, pid) == "invalid"
    assert var(engine_client, pid, "tdeResult")["stop_reason"] == "invalid_output"


def test_policy_denied_caught_by_boundary(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    run_worker(topic, model="openai/gpt-4o-mini")  # external provider, refused for pii
    pids = [
        engine_client.start_process(key, {"taskSpec": spec(policy={"data_class": "pii"})})["id"],
        # a spec that tries to loosen the policy is denied too
        engine_client.start_process(key, {"taskSpec": spec(policy={"max_iterations": 999})})["id"],
    ]
    wait_for(lambda: finished(engine_client, pids), 60, what="policy-denied route")
    for pid in pids:
        assert end_of(engine_client, pid) == "denied"
        assert var(engine_client, pid, "tdeResult")["stop_reason"] == "policy_denied"


def test_provider_failure_retries_then_incident(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    worker = run_worker(topic, model="test/fail-transient")
    pid = engine_client.start_process(key, {"taskSpec": spec(policy={"retries": 1, "retry_backoff_s": 0})})[
        "id"
    ]
    incidents = wait_for(lambda: engine_client.incidents(processInstanceId=pid), 90, what="incident")
    assert incidents[0]["incidentType"] == "failedExternalTask"
    assert "technical failure" in incidents[0]["incidentMessage"]
    failures = engine_client.history_external_task_log(processInstanceId=pid, failureLog=True)
    # the log shows the retries the task had when it failed: none yet, then the 1 we left
    assert [f["retries"] for f in sorted(failures, key=lambda f: f["timestamp"])] == [None, 1]
    wait_for(
        lambda: worker.metrics.value("das_worker_tasks_failed_total", topic=topic) == 2,
        10,
        what="das_worker_tasks_failed_total == 2",
    )
    hist = engine_client.history_process_instances(processInstanceId=pid)[0]
    assert hist["state"] == "ACTIVE"  # waits for a human at the incident, nothing lost


def test_invalid_task_spec_is_an_incident_at_once(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    run_worker(topic)
    pid = engine_client.start_process(key, {"taskSpec": {"task_type": "summarize"}})["id"]  # no prompt
    incidents = wait_for(lambda: engine_client.incidents(processInstanceId=pid), 30, what="incident")
    assert "taskSpec" in incidents[0]["incidentMessage"] and "prompt" in incidents[0]["incidentMessage"]


def test_fan_out_parallel_multi_instance(engine_client, run_worker, unique) -> None:
    """UC-4: N probabilistic TDEs in a parallel multi-instance, all completed."""
    topic = f"das-tde-{unique}"
    _, fan = deploy_tde_min(engine_client, unique, topic)
    worker = run_worker(topic, workers=4)
    n = 12
    pid = engine_client.start_process(fan, {"taskSpec": spec(), "n": n})["id"]
    wait_for(lambda: finished(engine_client, [pid]), 90, what="fan-out completed")
    acts = engine_client.history_activity_instances(
        processInstanceId=pid, activityId="fanTde", activityType="serviceTask"
    )
    assert len(acts) == n and all(a["endTime"] for a in acts)
    wait_for(
        lambda: worker.metrics.value("das_worker_tasks_completed_total", topic=topic) == n,
        10,
        what="das_worker_tasks_completed_total == n",
    )
    log = engine_client.history_external_task_log(processInstanceId=pid, successLog=True)
    assert len(log) == n


def test_heartbeat_keeps_the_lock_of_a_long_loop(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    first = run_worker(topic, model="test/sleep-5", lock_duration_ms=1500)
    pid = engine_client.start_process(key, {"taskSpec": spec()})["id"]
    wait_for(lambda: first.in_flight() == 1, 20, what="task in flight")
    second = run_worker(topic, model="test/auto")  # would steal the task if the lock lapsed
    wait_for(lambda: finished(engine_client, [pid]), 60, what="long loop completed")
    assert end_of(engine_client, pid) == "ok"
    wait_for(
        lambda: first.metrics.value("das_worker_tasks_completed_total", topic=topic) == 1,
        10,
        what="das_worker_tasks_completed_total == 1",
    )
    assert second.metrics.value("das_worker_tasks_fetched_total", topic=topic) == 0
