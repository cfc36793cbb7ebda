"""`das propose`: a BPMN a person wrote goes through the same checks and queue rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from das.bpmn.compile import compile_to_xml

STEP = {
    "type": "tde",
    "name": "Classify the ticket",
    "task_type": "classify",
    "mode": "probabilistic",
    "inputs": [{"source": "text", "target": "text"}, {"source": "labels", "target": "labels"}],
    "outputs": [{"source": "label", "target": "ticketLabel"}],
}


def bpmn(tmp_path: Path, key: str = "triage", task_type: str = "classify") -> Path:
    doc = {
        "key": key,
        "name": key,
        "steps": [{**STEP, "task_type": task_type}, {"type": "user", "name": "Handle"}],
    }
    path = tmp_path / f"{key}.bpmn"
    path.write_text(compile_to_xml(doc))
    return path


def das(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "das", *args], capture_output=True, text=True, timeout=120)


def test_propose_files_a_new_version_authored_by_the_os_account(tmp_path: Path):
    from das.authoring.queue import Queue
    from das.identity import os_principal

    first = das("propose", str(bpmn(tmp_path)), "--format", "json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert (data["key"], data["version"], data["base_version"]) == ("triage", "1.0.0", None)
    p = Queue().get(data["proposal_id"])
    assert p.origin == "file" and p.author == os_principal().name and p.validation.valid
    assert p.simulation is not None and p.simulation.completed > 0
    assert "tdeInputs" in p.artifact and '"label": "ticketLabel"' in p.artifact
    own = das("approve", data["proposal_id"])
    assert own.returncode == 1 and "authored" in own.stderr


def test_propose_refuses_a_task_type_the_registry_does_not_know(tmp_path: Path):
    path = bpmn(tmp_path, task_type="no_such_type")
    out = das("propose", str(path))
    assert out.returncode == 1 and "governance.task-type-unknown" in out.stderr and "not filed" in out.stderr
    validated = das("bpmn", "validate", str(path), "--format", "json")
    assert validated.returncode == 1
    rules = [f["rule"] for f in json.loads(validated.stdout)[0]["findings"] if f["severity"] == "error"]
    assert rules == ["governance.task-type-unknown"]
    from das.authoring.queue import Queue

    assert Queue().list() == []


@pytest.mark.parametrize("content,needle", [(b"<not xml", "not well-formed"), (b"", "empty")])
def test_propose_of_a_broken_file_is_a_clear_error(tmp_path: Path, content: bytes, needle: str):
    path = tmp_path / "broken.bpmn"
    path.write_bytes(content)
    out = das("propose", str(path))
    assert out.returncode == 4 and needle in out.stderr.lower() and "Traceback" not in out.stderr


def test_propose_through_the_api_makes_the_caller_the_author(das_home: Path, tmp_path: Path):
    from live_api import LiveApi

    live = LiveApi(das_home)
    try:
        xml = bpmn(tmp_path).read_text()
        with live.client(live.token("alice", "author")) as alice:
            filed = alice.post("/api/proposals", json={"bpmn": xml, "name": "triage.bpmn"})
            assert filed.status_code == 201, filed.text
            assert alice.post("/api/proposals", json={"bpmn": xml, "author": "bob"}).status_code == 400
        pid = filed.json()["proposal_id"]
        assert live.queue.get(pid).author == "alice"
        with live.client(live.token("bob", "reviewer")) as bob:
            assert bob.post(f"/api/proposals/{pid}/approve", json={}).json()["status"] == "deployed"
    finally:
        live.stop()


def test_propose_refuses_riders_missing_ttl_and_non_executable(tmp_path: Path):
    """A second process riding along, no historyTimeToLive, nothing executable: nothing filed."""
    xml = bpmn(tmp_path).read_text()
    rider = xml.replace(
        "</bpmn:definitions>",
        '<bpmn:process id="das_nightly" isExecutable="true" '
        'camunda:historyTimeToLive="P1D"><bpmn:startEvent id="s9"/></bpmn:process></bpmn:definitions>',
    )
    cases = {
        "rider": (rider, "exactly one executable"),
        "nottl": (xml.replace('camunda:historyTimeToLive="180"', ""), "historyTimeToLive"),
        "noexec": (xml.replace('isExecutable="true"', 'isExecutable="false"'), "exactly one executable"),
    }
    for name, (text, needle) in cases.items():
        assert text != xml
        path = tmp_path / f"{name}.bpmn"
        path.write_text(text)
        out = das("propose", str(path))
        assert out.returncode in (1, 2) and needle in out.stderr, (name, out.stderr)
    from das.authoring.queue import Queue

    assert Queue().list() == []


def test_propose_stores_utf8_whatever_the_file_declares(tmp_path: Path):
    text = bpmn(tmp_path).read_text().replace('name="Handle"', 'name="Bestellprüfung"')
    text = text.replace("encoding='UTF-8'", "encoding='ISO-8859-1'", 1)
    assert "encoding='ISO-8859-1'" in text
    path = tmp_path / "latin.bpmn"
    path.write_bytes(text.encode("iso-8859-1"))
    out = das("propose", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    from das.authoring.queue import Queue

    artifact = Queue().get(json.loads(out.stdout)["proposal_id"]).artifact
    assert "Bestellprüfung" in artifact and "ISO-8859-1" not in artifact


def test_validate_reports_a_step_whose_mode_has_no_executor(tmp_path: Path):
    doc = {
        "key": "det_bad",
        "name": "det",
        "steps": [
            {"type": "tde", "name": "Classify by rules", "task_type": "classify", "mode": "deterministic"},
            {"type": "tde", "name": "Pick it", "task_type": "json_transform", "mode": "probabilistic"},
        ],
    }
    path = tmp_path / "det.bpmn"
    path.write_text(compile_to_xml(doc))
    out = das("bpmn", "validate", str(path), "--format", "json")
    rules = [f["rule"] for f in json.loads(out.stdout)[0]["findings"] if f["severity"] == "error"]
    assert out.returncode == 1 and rules == ["governance.task-type-executor"] * 2
