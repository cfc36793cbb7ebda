"""Approval → deployment on the real engine → a new instance of the new version runs; the
kernel deploys approved-but-undeployed proposals; team selection routes a PEO. The drafting
model is the scripted test model (named per test); engine, queue and SQLite are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import wait_for
from principals import proven

from das.authoring.deploy import deploy_and_record
from das.authoring.drafter import draft_proposal
from das.authoring.queue import Queue
from das.bpmn.compile import compile_to_xml
from das.identity import Principal
from das.llm.testmodel import register_script

ALICE = Principal("alice", "author", "token")

pytestmark = pytest.mark.engine


def doc(key: str, steps: list[dict]) -> dict:
    return {"key": key, "name": key.replace("_", " "), "steps": steps}


def test_approve_deploys_to_the_engine_and_the_new_version_runs(engine, engine_client, unique, monkeypatch):
    monkeypatch.setenv("DAS_ENGINE_URL", engine.url)
    key = f"expense_{unique}"
    queue = Queue()
    queue.seed_version(key, "1.0.0", compile_to_xml(doc(key, [{"type": "user", "name": "Review"}])))
    # the change: the scripted model adds a user task before the end (an atomic edit, not a rewrite)
    ops = {
        "ops": [
            {"op": "add_element", "id": "audit", "type": "userTask", "name": "Audit"},
            {"op": "remove_element", "id": "f_s1_end"},
            {"op": "connect", "source": "s1", "target": "audit"},
            {"op": "connect", "source": "audit", "target": "end"},
        ]
    }
    model = register_script(f"edit-{unique}", [{"text": json.dumps(ops)}])
    proposal = draft_proposal(
        "add an audit step after the review", base=f"{key}@1.0.0", author=ALICE, model=model, queue=queue
    )
    assert proposal.version == "1.1.0" and proposal.validation.valid
    queue.approve(proposal.id, proven("bob"), "ok")
    deployed = deploy_and_record(queue, proposal.id)
    assert deployed.status == "deployed", deployed.history[-1].comment
    definition = engine_client.process_definitions(key=key)[0]
    assert definition["versionTag"] == "1.1.0"
    instance = engine_client.start_process(key, {"correlationId": "c-" + unique})
    wait_for(
        lambda: any(
            a["activityId"] == "s1"
            for a in engine_client.history_activity_instances(processInstanceId=instance["id"])
        ),
        what="the new version's first task",
    )
    assert instance["definitionId"] == definition["id"]


def test_kernel_deploys_approved_but_undeployed_proposals(engine, engine_client, unique, tmp_path: Path):
    key = f"kernel_{unique}"
    env = {**os.environ, "DAS_HOME": os.environ["DAS_HOME"], "DAS_ENGINE_URL": engine.url}
    queue = Queue()
    model = register_script(
        f"new-{unique}", [{"text": json.dumps(doc(key, [{"type": "user", "name": "Check"}]))}]
    )
    proposal = draft_proposal("a check", key=key, author=ALICE, model=model, queue=queue)
    queue.approve(proposal.id, proven("bob"))  # approved, not deployed (as after a crash before deploy)
    empty = tmp_path / "processes"
    empty.mkdir()
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "das",
            "kernel",
            "up",
            "--detach",
            "--processes",
            str(empty),
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert up.returncode == 0, up.stderr
    report = json.loads(up.stdout)
    assert [(p["proposal_id"], p["status"]) for p in report["proposals"]] == [(proposal.id, "deployed")]
    # the engine's definitions were re-indexed for retrieval, with real embeddings
    assert report["indexed"]["documents"] >= 1 and report["indexed"]["embedding"] == "all-MiniLM-L6-v2"
    assert engine_client.process_definitions(key=key)[0]["versionTag"] == "1.0.0"
    assert Queue().get(proposal.id).status == "deployed"


def test_team_selection_routes_the_peo(engine, engine_client, unique):
    import threading

    from das.engine.handlers import TOPIC_PEO_SELECT, builtin_handlers
    from das.engine.worker import Worker, WorkerConfig

    xml = (Path(__file__).resolve().parents[2] / "processes" / "peo_team_select.bpmn").read_text()
    topic = f"das-peo-select-{unique}"
    engine_client.deploy(f"select-{unique}", {"peo_team_select.bpmn": xml.replace("das-peo-select", topic)})
    vote = register_script(
        f"vote-classify-{unique}",
        [{"text": json.dumps({"choice": 1, "confidence": 0.9, "rationale": "it is a label task"})}],
    )
    client = engine.client()
    worker = Worker(
        client,
        WorkerConfig(topics=[topic], model=vote, poll_ms=500, grace_s=5),
        handlers={topic: builtin_handlers()[TOPIC_PEO_SELECT]},
    )
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        from das.camunda.variables import Json

        instance = engine_client.start_process(
            "peo_team_select",
            {
                "candidates": Json([{"task_type": "summarize"}, {"task_type": "classify"}]),
                "context": Json({"case": unique}),
                "correlationId": unique,
            },
        )

        def decided():
            names = {v["name"]: v for v in engine_client.history_variables(processInstanceId=instance["id"])}
            return names if "nextTaskType" in names else None

        variables = wait_for(decided, timeout_s=60, what="the team's decision")
        assert variables["nextTaskType"]["value"] == "classify"
        decision = variables["decision"]["value"]
        decision = json.loads(decision) if isinstance(decision, str) else decision
        assert decision["chosen_index"] == 1 and decision["mode"] == "unanimous"
    finally:
        worker.stop()
        thread.join(timeout=30)
        client.close()
