"""A drafted TDE step runs on the real engine: compile -> propose -> approve over the API ->
deploy -> an instance started over REST -> `das serve` completes the step from the registry
entry and the mapped variables -> the user task -> COMPLETED with the mapped output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import wait_for
from live_api import LiveApi
from needs import NO_LLAMA_CPP, needs_module

pytestmark = pytest.mark.engine

LABELS = ["billing", "technical", "other"]


def authoring(key: str, human_gate: bool = False) -> dict:
    return {
        "key": key,
        "name": "Ticket triage",
        "steps": [
            {
                "type": "tde",
                "name": "Classify the ticket",
                "task_type": "classify",
                "mode": "probabilistic",
                "inputs": [{"source": "text", "target": "text"}, {"source": "labels", "target": "labels"}],
                "outputs": [{"source": "label", "target": "ticketLabel"}],
            },
            {"type": "user", "name": "Handle the ticket"},
        ],
    }


def user_task(client, pid: str) -> dict | None:
    tasks = client.request("GET", "/task", params={"processInstanceId": pid}) or []
    return tasks[0] if tasks else None


@pytest.mark.parametrize("model", ["test/auto", pytest.param("local/smollm2", marks=pytest.mark.local_model)])
def test_drafted_step_runs_served_by_das(
    engine, engine_client, run_worker, unique, das_home: Path, tmp_path: Path, model: str
):
    """With the scripted model and with the embedded one (real inference, no network)."""
    if model.startswith("local/"):
        needs_module("llama_cpp", "DAS_REQUIRE_LOCAL_MODEL", NO_LLAMA_CPP)
    key = f"triage_{unique}"
    env = {**os.environ, "DAS_HOME": str(das_home), "DAS_ENGINE_URL": engine.url}
    src = tmp_path / "triage.json"
    src.write_text(json.dumps(authoring(key)))
    bpmn = tmp_path / "triage.bpmn"
    compiled = subprocess.run(
        [sys.executable, "-m", "das", "bpmn", "compile", str(src), "-o", str(bpmn)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    proposed = subprocess.run(
        [sys.executable, "-m", "das", "propose", str(bpmn), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proposed.returncode == 0, proposed.stderr
    pid = json.loads(proposed.stdout)["proposal_id"]

    live = LiveApi(das_home, env={"DAS_ENGINE_URL": engine.url})
    try:
        with live.client(live.token("bob", "reviewer")) as bob:
            approved = bob.post(f"/api/proposals/{pid}/approve", json={"comment": "looks right"})
    finally:
        live.stop()
    assert approved.status_code == 200 and approved.json()["status"] == "deployed", approved.text

    run_worker("das-tde-probabilistic", model=model)
    correlation = f"c-{unique}"
    instance = engine_client.start_process(
        key, {"text": "I was charged twice for my invoice", "labels": LABELS, "correlationId": correlation}
    )
    wait_for(lambda: user_task(engine_client, instance["id"]) is not None, 240, what="the TDE step completed")
    task = user_task(engine_client, instance["id"])
    engine_client.request("POST", f"/task/{task['id']}/complete", json={"variables": {}})
    wait_for(
        lambda: (
            engine_client.history_process_instances(processInstanceId=instance["id"])[0]["state"]
            == "COMPLETED"
        ),
        60,
        what="the instance completed",
    )
    variables = {v["name"]: v for v in engine_client.history_variables(processInstanceId=instance["id"])}
    assert variables["ticketLabel"]["value"] in LABELS
    result = variables["tdeResult"]["value"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["status"] == "succeeded" and result["correlation_id"] == correlation
    assert result["outputs"]["label"] == variables["ticketLabel"]["value"]


def test_step_with_inputs_that_do_not_match_the_schema_raises_das_invalid_input(
    engine_client, run_worker, unique, tmp_path: Path
):
    """A step whose mapped variables fail the registry input schema: BPMN error, not a retry."""
    from das.bpmn.compile import compile_to_xml

    key = f"triage_bad_{unique}"
    doc = authoring(key)
    doc["steps"][0]["on_error"] = [
        {"error_code": "DAS_INVALID_INPUT", "then": "fail", "end_id": "end_bad_input"}
    ]
    engine_client.deploy(f"{key}.bpmn", {f"{key}.bpmn": compile_to_xml(doc)})
    run_worker("das-tde-probabilistic", model="test/auto")
    instance = engine_client.start_process(
        key, {"text": "x", "labels": ["only-one"], "correlationId": unique}
    )
    wait_for(
        lambda: (
            engine_client.history_process_instances(processInstanceId=instance["id"])[0]["state"]
            == "COMPLETED"
        ),
        60,
        what="the error end event",
    )
    ends = [
        a["activityId"] for a in engine_client.history_activity_instances(processInstanceId=instance["id"])
    ]
    assert "end_bad_input" in ends


def test_deterministic_json_transform_step_completes_through_das_serve(
    engine, engine_client, unique, das_home: Path
):
    from das.bpmn.compile import compile_to_xml

    key = f"pick_{unique}"
    doc = {
        "key": key,
        "name": "Pick the amount",
        "steps": [
            {
                "type": "tde",
                "name": "Pick the amount",
                "task_type": "json_transform",
                "mode": "deterministic",
                "inputs": [{"source": "order", "target": "data"}, {"source": "amountPath", "target": "path"}],
                "outputs": [{"source": "result", "target": "amount"}],
            }
        ],
    }
    xml = compile_to_xml(doc)
    assert 'camunda:topic="das-tde-json_transform"' in xml
    engine_client.deploy(f"{key}.bpmn", {f"{key}.bpmn": xml})
    env = {**os.environ, "DAS_HOME": str(das_home), "DAS_ENGINE_URL": engine.url}
    log = das_home / "serve.log"
    das_home.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "das", "serve", "--topics", "das-tde-json_transform", "--poll-ms", "1000"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        instance = engine_client.start_process(
            key,
            {
                "order": {"lines": [{"amount": 12}, {"amount": 5}]},
                "amountPath": "lines[0].amount",
                "correlationId": f"c-{unique}",
            },
        )
        wait_for(
            lambda: (
                engine_client.history_process_instances(processInstanceId=instance["id"])[0]["state"]
                == "COMPLETED"
            ),
            60,
            what="the adapter step completed",
        )
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    variables = {
        v["name"]: v["value"] for v in engine_client.history_variables(processInstanceId=instance["id"])
    }
    assert variables["amount"] == 12 and variables["tdeStatus"] == "succeeded", log.read_text()[-2000:]


def test_human_gate_stops_at_the_review_user_task(engine_client, run_worker, unique):
    """The policy's human_gate (here tightened on by the spec) routes the TDE template's result
    to its review user task; the variable is tdeNeedsReview, read from the BPMN itself."""
    from das.bpmn.parse import parse

    template = Path(__file__).resolve().parents[2] / "processes" / "tde_task_template.bpmn"
    xml = template.read_text()
    defs = parse(xml.encode(), name="template")
    assert defs.nodes["review_result"].type == "userTask"
    assert "execution.getVariable('tdeNeedsReview') == true" in xml
    key = "tde_task_template"
    engine_client.deploy(f"template-{unique}", {f"{key}.bpmn": xml})
    run_worker("das-tde-probabilistic", model="test/auto")
    spec = {
        "task_type": f"greet_{unique}",
        "prompt": "Say hello",
        "policy": {"human_gate": True},
        "output_schema": {
            "type": "object",
            "properties": {"greeting": {"type": "string"}},
            "required": ["greeting"],
        },
    }
    instance = engine_client.start_process(key, {"taskSpec": spec, "correlationId": f"c-{unique}"})
    task = wait_for(lambda: user_task(engine_client, instance["id"]), 60, what="the review user task")
    assert task["taskDefinitionKey"] == "review_result"
    engine_client.request("POST", f"/task/{task['id']}/complete", json={"variables": {}})
    wait_for(
        lambda: (
            engine_client.history_process_instances(processInstanceId=instance["id"])[0]["state"]
            == "COMPLETED"
        ),
        60,
        what="the instance completed after review",
    )
    plain = engine_client.start_process(
        key, {"taskSpec": {**spec, "policy": {}}, "correlationId": f"d-{unique}"}
    )
    wait_for(
        lambda: (
            engine_client.history_process_instances(processInstanceId=plain["id"])[0]["state"] == "COMPLETED"
        ),
        60,
        what="the instance without a human gate completed",
    )
    assert user_task(engine_client, plain["id"]) is None


def test_template_routes_compensate_required_to_a_loud_compensation(
    engine, engine_client, run_worker, unique, tmp_path: Path
):
    """A TDE that POSTed and then hit its iteration limit: the template's compensate branch runs
    das-tde-compensate, which (no compensating adapter) raises an incident naming the effect."""
    import threading

    import yaml

    from das.engine.handlers import builtin_handlers
    from das.engine.worker import Worker, WorkerConfig
    from das.llm.testmodel import register_script

    hits: list[str] = []

    import http.server

    class Effect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Effect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pay"
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        yaml.safe_dump(
            {
                "allowed_endpoints": [url],
                "allowed_methods": ["POST"],
                "max_iterations": 2,
                "allowed_tools": ["finish", "http_request"],
            }
        )
    )
    model = register_script(
        f"pay-loop-{unique}",
        [
            {
                "tool_calls": [
                    {"name": "http_request", "arguments": {"url": url, "method": "POST", "json": {"n": 1}}}
                ]
            },
            {"text": "still thinking"},
        ],
    )
    template = (Path(__file__).resolve().parents[2] / "processes" / "tde_task_template.bpmn").read_text()
    engine_client.deploy(f"template-comp-{unique}", {"tde_task_template.bpmn": template})
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
        spec = {"task_type": f"payer_{unique}", "prompt": "Pay it.", "output_schema": {"type": "object"}}
        pid = engine_client.start_process(
            "tde_task_template", {"taskSpec": spec, "correlationId": f"p-{unique}"}
        )["id"]
        incidents = wait_for(
            lambda: engine_client.incidents(processInstanceId=pid), 90, what="the compensation incident"
        )
    finally:
        comp.stop()
        thread.join(timeout=30)
        client.close()
        server.shutdown()
    assert hits == ["/pay"]
    assert incidents[0]["activityId"] == "compensate_task"
    assert "by hand" in incidents[0]["incidentMessage"] and "http_request" in incidents[0]["incidentMessage"]


def test_template_retries_at_process_level_on_status_retry(engine_client, run_worker, unique, tmp_path: Path):
    """retry_at: process turns a transient provider failure into tdeStatus 'retry', and the TDE
    template's retry loop runs the task again (bounded), then ends."""
    ops = tmp_path / "ops.yaml"
    ops.write_text("retry_at: process\n")
    template = (Path(__file__).resolve().parents[2] / "processes" / "tde_task_template.bpmn").read_text()
    engine_client.deploy(f"template-retry-{unique}", {"tde_task_template.bpmn": template})
    run_worker("das-tde-probabilistic", model="test/fail-transient", policy_file=str(ops))
    spec = {"task_type": f"flaky_{unique}", "prompt": "Try.", "output_schema": {"type": "object"}}
    pid = engine_client.start_process(
        "tde_task_template", {"taskSpec": spec, "correlationId": f"r-{unique}"}
    )["id"]
    wait_for(
        lambda: engine_client.history_process_instances(processInstanceId=pid)[0]["state"] == "COMPLETED",
        120,
        what="the retry loop ended",
    )
    runs = [
        a
        for a in engine_client.history_activity_instances(processInstanceId=pid)
        if a["activityId"] == "probabilistic_tde"
    ]
    assert len(runs) >= 2
    status = {v["name"]: v["value"] for v in engine_client.history_variables(processInstanceId=pid)}[
        "tdeStatus"
    ]
    assert status == "retry"
