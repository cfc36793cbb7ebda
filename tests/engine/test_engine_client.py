"""The thin engine client against the real engine (Camunda 7 CE REST API)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from das.camunda.client import EngineClient, EngineError, EngineUnavailable, Topic
from das.camunda.variables import Json

pytestmark = pytest.mark.engine

DATA = Path(__file__).parent / "data"


def deploy_test_process(client: EngineClient, suffix: str) -> tuple[str, str]:
    """Deploy client_test.bpmn with a unique process key and topic; returns (key, topic)."""
    key, topic = f"das_client_test_{suffix}", f"das-test-{suffix}"
    xml = (DATA / "client_test.bpmn").read_text()
    xml = xml.replace('id="das_client_test"', f'id="{key}"').replace("das-test-topic", topic)
    xml = xml.replace('id="das_client_msg"', f'id="das_client_msg_{suffix}"')
    client.deploy(f"das-test-{suffix}", {f"client_test_{suffix}.bpmn": xml})
    return key, topic


def test_deploy_changed_only_and_definitions(engine_client: EngineClient, unique: str) -> None:
    key, _ = deploy_test_process(engine_client, unique)
    again = engine_client.deploy(
        f"das-test-{unique}",
        {
            f"client_test_{unique}.bpmn": (DATA / "client_test.bpmn")
            .read_text()
            .replace('id="das_client_test"', f'id="{key}"')
            .replace("das-test-topic", f"das-test-{unique}")
            .replace('id="das_client_msg"', f'id="das_client_msg_{unique}"')
        },
    )
    assert not again.get("deployedProcessDefinitions")  # unchanged -> nothing new
    defs = engine_client.process_definitions(key=key)
    assert len(defs) == 1 and defs[0]["version"] == 1
    deployments = engine_client.deployments(name=f"das-test-{unique}", source="das")
    assert len(deployments) >= 1 and deployments[0]["source"] == "das"
    xml = engine_client.process_definition_xml(key=key)
    assert 'camunda:type="external"' in xml
    assert engine_client.process_definition_xml(id=defs[0]["id"]) == xml


def test_fetch_complete_and_history(engine_client: EngineClient, unique: str) -> None:
    key, topic = deploy_test_process(engine_client, unique)
    ids = {
        engine_client.start_process(
            key,
            {"taskSpec": {"task_type": "t", "n": i}, "correlationId": f"c{i}", "big": 2**40, "flag": True},
        )["id"]
        for i in range(3)
    }
    tasks = engine_client.fetch_and_lock(
        "w1",
        [Topic(topic, 30_000, variables=["taskSpec", "correlationId"])],
        max_tasks=5,
        async_response_timeout_ms=2000,
    )
    assert {t.process_instance_id for t in tasks} == ids
    task = tasks[0]
    assert set(task.variables) == {"taskSpec", "correlationId"}  # the variable filter applies
    assert task.variables["taskSpec"]["task_type"] == "t"  # Json parsed
    assert task.activity_id == "work" and task.topic == topic
    for t in tasks:
        engine_client.complete(
            t.id, "w1", {"tdeResult": {"status": "succeeded", "ok": [1, 2]}, "tdeStatus": "succeeded"}
        )
    done = engine_client.history_process_instances(processDefinitionKey=key, finished=True)
    assert len(done) == 3 and all(p["state"] == "COMPLETED" for p in done)
    rows = engine_client.history_variables(processInstanceId=task.process_instance_id)
    by_name = {r["name"]: r for r in rows}
    assert by_name["tdeResult"]["type"] == "Json"
    assert by_name["tdeResult"]["parsedValue"] == {"status": "succeeded", "ok": [1, 2]}
    assert by_name["tdeStatus"]["value"] == "succeeded"
    assert by_name["big"]["type"] == "Long" and by_name["flag"]["value"] is True
    acts = engine_client.history_activity_instances(processInstanceId=task.process_instance_id)
    assert {"start", "work", "done"} <= {a["activityId"] for a in acts}
    log = engine_client.history_external_task_log(processInstanceId=task.process_instance_id)
    assert any(e.get("successLog") for e in log)


def test_failure_retries_then_incident(engine_client: EngineClient, unique: str) -> None:
    key, topic = deploy_test_process(engine_client, unique)
    pid = engine_client.start_process(key)["id"]
    (task,) = engine_client.fetch_and_lock("w1", [topic], max_tasks=1)
    assert task.retries is None  # never failed yet
    engine_client.handle_failure(
        task.id, "w1", "provider down", error_details="trace...", retries=1, retry_timeout_ms=0
    )
    assert engine_client.incidents(processInstanceId=pid) == []
    (task,) = engine_client.fetch_and_lock("w1", [topic], max_tasks=1, async_response_timeout_ms=3000)
    assert task.retries == 1
    engine_client.handle_failure(task.id, "w1", "provider still down", retries=0, retry_timeout_ms=1000)
    incidents = engine_client.incidents(processInstanceId=pid)
    assert len(incidents) == 1
    assert incidents[0]["incidentType"] == "failedExternalTask"
    assert incidents[0]["incidentMessage"] == "provider still down"
    assert engine_client.history_incidents(processInstanceId=pid)
    failures = engine_client.history_external_task_log(processInstanceId=pid, failureLog=True)
    assert len(failures) == 2
    details = [engine_client.history_external_task_error_details(f["id"]) for f in failures]
    assert "trace..." in details
    # retries back up resolve the incident and make the task fetchable again
    engine_client.set_external_task_retries(task.id, 1)
    assert engine_client.incidents(processInstanceId=pid) == []


def test_bpmn_error_routed_by_boundary(engine_client: EngineClient, unique: str) -> None:
    key, topic = deploy_test_process(engine_client, unique)
    pid = engine_client.start_process(key)["id"]
    (task,) = engine_client.fetch_and_lock("w1", [topic])
    engine_client.handle_bpmn_error(
        task.id,
        "w1",
        "DAS_GUARDRAIL",
        "max_iterations reached",
        {"tdeResult": Json({"stop_reason": "max_iterations"})},
    )
    acts = {a["activityId"] for a in engine_client.history_activity_instances(processInstanceId=pid)}
    assert "caught" in acts and "done" not in acts
    var = engine_client.history_variables(processInstanceId=pid, variableName="tdeResult")
    assert var[0]["parsedValue"] == {"stop_reason": "max_iterations"}


def test_extend_lock_and_unlock(engine_client: EngineClient, unique: str) -> None:
    key, topic = deploy_test_process(engine_client, unique)
    engine_client.start_process(key)
    (task,) = engine_client.fetch_and_lock("w1", [Topic(topic, 2_000)])
    before = engine_client.external_task(task.id)["lockExpirationTime"]
    engine_client.extend_lock(task.id, "w1", 120_000)
    after = engine_client.external_task(task.id)["lockExpirationTime"]
    assert after > before
    with pytest.raises(EngineError) as err:  # someone else's lock cannot be extended
        engine_client.extend_lock(task.id, "w2", 1_000)
    assert err.value.status in (400, 500)
    time.sleep(2.5)  # the original 2 s lock would have expired; the extended one holds
    assert engine_client.fetch_and_lock("w2", [topic]) == []
    engine_client.unlock(task.id)
    (again,) = engine_client.fetch_and_lock("w2", [topic])
    assert again.id == task.id and again.worker_id == "w2"
    engine_client.complete(again.id, "w2")


def test_long_polling_returns_when_work_arrives(engine_client: EngineClient, unique: str) -> None:
    key, topic = deploy_test_process(engine_client, unique)
    timer = threading.Timer(1.0, lambda: EngineClient(engine_client.base_url).start_process(key))
    timer.start()
    started = time.monotonic()
    tasks = engine_client.fetch_and_lock("w1", [topic], max_tasks=3, async_response_timeout_ms=20_000)
    waited = time.monotonic() - started
    timer.join()
    assert len(tasks) == 1 and 0.5 < waited < 15
    engine_client.complete(tasks[0].id, "w1")


def test_correlate_message(engine_client: EngineClient, unique: str) -> None:
    deploy_test_process(engine_client, unique)
    pid = engine_client.start_process(f"das_client_msg_{unique}", business_key=f"bk-{unique}")["id"]
    result = engine_client.correlate_message(
        "das-test-go", business_key=f"bk-{unique}", variables={"answer": 42}
    )
    assert result and result[0]["resultType"] == "Execution"
    hist = engine_client.history_process_instances(processInstanceId=pid)
    assert hist[0]["state"] == "COMPLETED"
    with pytest.raises(EngineError) as err:
        engine_client.correlate_message("das-test-go", business_key="nobody")
    assert err.value.status == 400 and "das-test-go" in str(err.value)


def test_errors_are_typed(engine_client: EngineClient) -> None:
    with pytest.raises(EngineError) as err:
        engine_client.complete("no-such-task", "w1")
    assert err.value.status == 404 and "404" in err.value.message
    assert err.value.exit_code == 5
    with EngineClient("http://127.0.0.1:9/engine-rest", timeout=2) as dead:
        with pytest.raises(EngineUnavailable):
            dead.engines()
        assert dead.is_ready() is False


def test_basic_auth(start_engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second engine with REST basic auth on: anonymous 401, admin user accepted."""
    proc = start_engine(
        auth=True,
        admin_user="admin",
        admin_password="s3cret-pw",
        jdbc_url="jdbc:h2:mem:das-auth;DB_CLOSE_DELAY=-1",
    )
    with EngineClient(proc.url) as anon, pytest.raises(EngineError) as err:
        anon.deployments()
    assert err.value.status == 401
    with EngineClient(proc.url, user="admin", password="s3cret-pw") as ok:
        assert ok.deployments() == []
        assert "s3cret" not in repr(ok)
    monkeypatch.setenv("DAS_ENGINE_USER", "admin")  # the env route
    monkeypatch.setenv("DAS_ENGINE_PASSWORD", "s3cret-pw")
    with EngineClient(proc.url) as env_client:
        assert env_client.is_ready()
    monkeypatch.delenv("DAS_ENGINE_USER")
    monkeypatch.setenv("DAS_ENGINE_TOKEN", "not-a-valid-token")  # bearer is sent, and refused
    with EngineClient(proc.url) as bearer, pytest.raises(EngineError) as err:
        bearer.deployments()
    assert err.value.status == 401
    # last: a wrong password also locks the user out for a few seconds (engine brute-force guard)
    with EngineClient(proc.url, user="admin", password="wrong") as bad, pytest.raises(EngineError) as err:
        bad.deployments()
    assert err.value.status == 401 and "wrong" not in err.value.message
