"""Nightly on the real engine: failures we cause become incidents and failure-log rows; mining
counts exactly those, a retry and an error-boundary proposal are filed with matching evidence,
the proposals are checked BPMN of the running definition, and DAS cannot approve them."""

from __future__ import annotations

import pytest
from engine_helpers import wait_for

from das.authoring.queue import ApprovalRefused, Queue
from das.identity import Principal
from das.nightly.run import run_nightly

pytestmark = pytest.mark.engine

FAILED, RECOVERED, CLEAN = 3, 2, 4


def xml_for(key: str, topic: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D_{key}" targetNamespace="http://procos.io/test">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="1" camunda:versionTag="1.0.0">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge" />
    <bpmn:serviceTask id="charge" name="Charge card" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="done" />
    <bpmn:endEvent id="done" />
  </bpmn:process>
</bpmn:definitions>"""


def test_nightly_files_retry_and_error_boundary_from_real_history(engine, engine_client, unique):
    key, topic, worker = f"nightly_{unique}", f"nightly-{unique}", f"w-{unique}"
    engine_client.deploy(f"nightly-{unique}", {f"{key}.bpmn": xml_for(key, topic)})
    total = FAILED + RECOVERED + CLEAN
    instances = [engine_client.start_process(key, {"correlationId": f"c-{i}"})["id"] for i in range(total)]

    def fetch(n: int):
        return wait_for(
            lambda: engine_client.fetch_and_lock(worker, [topic], max_tasks=n), what="external tasks"
        )

    locked = []
    while len(locked) < total:
        locked += fetch(total - len(locked))
    for task in locked[:FAILED]:  # no retries left: an incident each
        engine_client.handle_failure(task.id, worker, "card service down", retries=0)
    for task in locked[FAILED : FAILED + RECOVERED]:  # one failure, then success on the retry
        engine_client.handle_failure(task.id, worker, "card service timeout", retries=1)
    for task in locked[FAILED + RECOVERED :]:
        engine_client.complete(task.id, worker)
    retried = []
    while len(retried) < RECOVERED:
        retried += fetch(RECOVERED - len(retried))
    for task in retried:
        engine_client.complete(task.id, worker)
    wait_for(
        lambda: (
            len(engine_client.history_process_instances(processDefinitionKey=key, finished=True))
            == RECOVERED + CLEAN
        ),
        what="finished instances",
    )
    # /incident has no processDefinitionKey filter (it would list every incident of the engine)
    ours = [i for i in engine_client.incidents() if i["processDefinitionId"].startswith(f"{key}:")]
    assert len(ours) == FAILED

    queue = Queue()
    report = run_nightly(engine_client, keys=[key], queue=queue)
    findings = {f.kind: f for f in report.findings}
    inc, fail = findings["incidents"], findings["task_failures"]
    assert inc.activity_id == "charge" and inc.evidence["incidents"] == FAILED
    assert inc.evidence["by_type"] == {"failedExternalTask": FAILED}
    assert {e["process_instance_id"] for e in inc.evidence["examples"]} <= set(instances)
    assert fail.evidence["failures"] == FAILED + RECOVERED
    assert fail.evidence["failed_tasks"] == FAILED + RECOVERED and fail.evidence["tasks"] == total
    assert fail.evidence["recovered_tasks"] == RECOVERED and fail.evidence["exhausted_tasks"] == FAILED
    assert "unused_path" not in findings  # fewer than 10 completed instances: no path verdicts
    assert len(report.filed) == 2

    by_refactor = {queue.get(pid).value_measure.refactor: queue.get(pid) for pid in report.filed}
    boundary, retry = by_refactor["add_error_boundary"], by_refactor["add_retry"]
    for p in (boundary, retry):
        assert (p.origin, p.author, p.base_version, p.version) == ("nightly", "das", "1.0.0", "1.1.0")
        assert p.validation.valid and p.simulation is not None and p.simulation.completed > 0
        with pytest.raises(ApprovalRefused, match="DAS identity"):
            queue.approve(p.id, Principal("das", "admin", "token"))
    assert boundary.value_measure.incidents_in_window == FAILED
    assert retry.value_measure.observed_recovery_rate == round(RECOVERED / (FAILED + RECOVERED), 3)
    assert "charge_nightly_error" in boundary.artifact and "R3/PT5M" in retry.artifact

    again = run_nightly(engine_client, keys=[key], queue=queue)  # same refactors still proposed: no new ones
    assert again.filed == [] and again.counts.get("duplicate") == 2


def test_das_nightly_bpmn_started_by_message_files_proposals(engine, engine_client, unique, das_home):
    """processes/das_nightly.bpmn (what `das kernel up` deploys): the message start runs the
    das-nightly topic through `das serve`, which mines a process with incidents and files."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    key, topic, worker = f"nightly_msg_{unique}", f"nightly-msg-{unique}", f"w-{unique}"
    engine_client.deploy(f"nightly-msg-{unique}", {f"{key}.bpmn": xml_for(key, topic)})
    pids = [
        engine_client.start_process(key, {"correlationId": f"m-{i}"})["id"] for i in range(FAILED + CLEAN)
    ]
    locked: list = []
    while len(locked) < len(pids):
        want = len(pids) - len(locked)
        locked += wait_for(
            lambda n=want: engine_client.fetch_and_lock(worker, [topic], max_tasks=n), what="external tasks"
        )
    for task in locked[:FAILED]:
        engine_client.handle_failure(task.id, worker, "card service down", retries=0)
    for task in locked[FAILED:]:
        engine_client.complete(task.id, worker)
    nightly = Path(__file__).resolve().parents[2] / "processes" / "das_nightly.bpmn"
    engine_client.deploy(f"das-nightly-{unique}", {"das_nightly.bpmn": nightly.read_text()})
    das_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAS_HOME": str(das_home), "DAS_ENGINE_URL": engine.url}
    with open(das_home / "serve.log", "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "das", "serve", "--topics", "das-nightly", "--poll-ms", "1000"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        engine_client.correlate_message(
            "das_nightly_run", variables={"keys": key, "correlationId": f"n-{unique}"}
        )
        run = wait_for(
            lambda: [
                p
                for p in engine_client.history_process_instances(processDefinitionKey="das_nightly")
                if p["state"] == "COMPLETED" and p["startActivityId"] == "start_nightly_message"
            ],
            120,
            what="the nightly run completed",
        )
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    filed = [p for p in Queue().list() if p["key"] == key]
    assert filed and all(p["origin"] == "nightly" and p["author"] == "das" for p in filed), (
        das_home / "serve.log"
    ).read_text()[-3000:]
    ends = [a["activityId"] for a in engine_client.history_activity_instances(processInstanceId=run[0]["id"])]
    assert "end" in ends and "nightly_failed" not in ends
