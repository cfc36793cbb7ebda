"""Red team: small inputs that cost the server a lot (issue 23, findings 8 and 9a).

A proposal whose condition makes Python build a huge string, a flood of simulations, a 1 KB
file on the CLI, and an output-schema regex that backtracks forever: each must end in a few
seconds with a finding or a clear refusal, and the server must keep answering meanwhile."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from live_api import LiveApi

BOMB = "${'x' * 100000000 * 8 == 'y'}"  # Python: an 800 MB string per evaluation; JUEL: an error


def process(condition: str = BOMB, key: str = "bomb", tasks: int = 0) -> str:
    """A ~1 KB process: a gateway whose one condition is ``condition`` (and ``tasks`` user
    tasks in a row before it, to make a simulation take a while)."""
    steps = "".join(f'<bpmn:userTask id="t{i}" name="Step {i}"/>' for i in range(tasks))
    ids = ["s"] + [f"t{i}" for i in range(tasks)] + ["g"]
    flows = "".join(
        f'<bpmn:sequenceFlow id="c{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    )
    return textwrap.dedent(f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
          <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="P30D">
            <bpmn:startEvent id="s"/>{steps}
            <bpmn:exclusiveGateway id="g" default="f3"/>{flows}
            <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="e1"><bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>
            <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="e2"/>
            <bpmn:endEvent id="e1"/>
            <bpmn:endEvent id="e2"/>
          </bpmn:process>
        </bpmn:definitions>
        """)


def test_string_repetition_proposal_answers_fast_and_the_server_stays_responsive(
    live: LiveApi, tokens: dict[str, str]
):
    """Tried: POST a 1 KB proposal whose condition is ``'x' * 100000000 * 8``; the simulator
    used to build it in Python (11 s, 0.9 GB per request, the API stalled)."""
    xml = process()
    assert len(xml) < 1500
    pings: list[float] = []
    done = threading.Event()

    def ping() -> None:
        with live.client(tokens["bob"]) as bob:
            while not done.is_set():
                t0 = time.monotonic()
                assert bob.get("/api/me").status_code == 200
                pings.append(time.monotonic() - t0)
                time.sleep(0.05)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        with live.client(tokens["alice"]) as alice:
            t0 = time.monotonic()
            answer = alice.post("/api/proposals", json={"bpmn": xml, "name": "bomb.bpmn"})
            took = time.monotonic() - t0
    finally:
        done.set()
        pinger.join(10)
    assert took < 6, f"the proposal held the API {took:.1f} s"
    assert answer.status_code == 422, answer.text
    assert "cannot coerce 'x'" in answer.json()["error"]  # JUEL's own answer, as a finding
    assert pings and max(pings) < 2.0, pings  # another request was answered meanwhile
    assert live.queue.list() == []


def test_flood_of_concurrent_simulations_gets_429_and_no_hang(das_home: Path):
    """Tried: 8 proposals at once, each a second of simulation, against one simulation slot:
    they used to queue in the thread pool (each holding a worker for its whole simulation)."""
    live = LiveApi(das_home, env={"DAS_SIM_SLOTS": "1"})
    try:
        token = live.token("alice", "author")
        xml = process("${amount > 10}", key="slow", tasks=100)

        def post(i: int) -> tuple[int, float, str]:
            with live.client(token) as c:
                t0 = time.monotonic()
                r = c.post(
                    "/api/proposals",
                    json={"bpmn": xml.replace('id="slow"', f'id="slow{i}"'), "name": f"slow{i}.bpmn"},
                )
                return r.status_code, time.monotonic() - t0, r.headers.get("retry-after", "")

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(8)))
        took = time.monotonic() - t0
        codes = sorted(code for code, _, _ in answers)
        assert 429 in codes, answers
        assert all(code in (201, 422, 429) for code in codes), answers
        assert all(retry == "5" for code, _, retry in answers if code == 429)
        assert took < 30, answers
        with live.client(token) as c:  # and it still answers afterwards
            assert c.get("/api/me").status_code == 200
    finally:
        log = live.stop()
    assert "Traceback" not in log, log


def test_das_bpmn_simulate_of_a_1kb_string_bomb_is_bounded_in_time_and_memory(tmp_path: Path):
    """Tried: ``das bpmn simulate`` of the 1 KB file (it took 11 s and 0.9 GB)."""
    path = tmp_path / "bomb.bpmn"
    path.write_text(process())
    assert path.stat().st_size < 1500
    probe = (
        "import resource, subprocess, sys, time; t0 = time.monotonic(); "
        "r = subprocess.run([sys.executable, '-m', 'das', 'bpmn', 'simulate', '--format', 'json', sys.argv[1]], "
        "capture_output=True, text=True); "
        "print(r.returncode, time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "print(r.stdout)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120
    )
    head, _, body = out.stdout.partition("\n")
    code, took, max_rss_kb = head.split()
    assert float(took) < 8, head
    assert int(max_rss_kb) < 400 * 1024, f"{int(max_rss_kb) // 1024} MB"
    report = json.loads(body)
    assert code == "1" and report["completed"] == 0
    assert "cannot coerce 'x'" in report["stuck"][0]["reason"]


CATASTROPHIC = """
import json, sys, time
from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec
from das.llm.testmodel import register_script
outputs = {"v": "a" * 40 + "!"}
model = register_script("backtrack", [{"tool_calls": [{"name": "finish", "arguments": {"outputs": outputs}}]}],
                        repeat_last=True)
spec = TaskSpec(task_type="never_declared_anywhere", prompt="Answer.", output_schema={
    "type": "object", "properties": {"v": {"type": "string", "pattern": sys.argv[1]}}, "required": ["v"]},
    policy={"timeout_s": 3})
t0 = time.monotonic()
try:
    result = run_tde(spec, model=model)
    print(json.dumps({"stop_reason": result.stop_reason, "took": time.monotonic() - t0}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc), "took": time.monotonic() - t0}))
"""


def run_loop_in_child(pattern: str) -> dict[str, object]:
    """The real loop in its own process, so a validation that never ends can be killed."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", CATASTROPHIC, pattern], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the loop was still validating the outputs after 60 s (timeout_s was 3)")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_catastrophic_output_pattern_stops_within_timeout():
    """Tried: output_schema ``pattern: ^(a+)+$`` and a model answering ``"aaaa…a!"``: Python's
    backtracking ``re`` took 2^40 steps, far past ``timeout_s`` (validation ran outside it)."""
    result = run_loop_in_child("^(a+)+$")
    assert float(result["took"]) < 3 + 2, result  # type: ignore[arg-type]
    assert result.get("stop_reason") in ("invalid_output", "timeout"), result


def test_backtracking_only_pattern_is_refused_clearly():
    """Tried: a pattern only a backtracking engine runs (a backreference): refused, not run."""
    result = run_loop_in_child(r"^(a+)\1$")
    assert result.get("error") == "InvalidInput", result
    assert "linear time" in str(result["message"]), result
