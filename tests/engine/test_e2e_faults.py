"""Faults on the real engine with real `das serve` subprocesses: SIGKILL, SIGTERM, engine restart."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from engine_helpers import EngineHandle, deploy_tde_min, free_port, wait_for

from das.camunda.client import EngineClient

pytestmark = pytest.mark.engine

SPEC = {
    "task_type": "summarize",
    "prompt": "Summarise the text.",
    "inputs": {"text": "some text to summarise"},
}


class ServeProcess:
    """`python -m das serve` as a child process with its own log file."""

    def __init__(self, home: Path, url: str, topic: str, model: str, *args: str) -> None:
        self.log = home / f"serve-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "DAS_HOME": str(home),
            "DAS_ENGINE_URL": url,
            "DAS_ALLOW_MODEL_REQUESTS": "0",
            "DAS_TEST_SCRIPTS": str(home / "scripts"),
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "das",
                    "serve",
                    "--topics",
                    f"{topic}=das-tde-probabilistic",
                    "--model",
                    model,
                    "--poll-ms",
                    "1000",
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.worker_id = next((args[i + 1] for i, a in enumerate(args) if a == "--worker-id"), None)

    def lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def logged(self, msg: str) -> list[dict]:
        return [e for e in self.lines() if e.get("msg") == msg]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "slow.json").write_text(
        json.dumps({"steps": [{"sleep_s": 2.5, "auto_finish": True}]})
    )
    (tmp_path / "scripts" / "quick.json").write_text(
        json.dumps({"steps": [{"sleep_s": 0.3, "auto_finish": True}]})
    )
    return tmp_path


@pytest.fixture
def serve(home: Path, engine: EngineHandle):
    started: list[ServeProcess] = []

    def start(topic: str, model: str, *args: str) -> ServeProcess:
        proc = ServeProcess(home, engine.url, topic, model, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


def completed(client: EngineClient, pids: list[str]) -> bool:
    return all(client.history_process_instances(processInstanceId=p)[0]["state"] == "COMPLETED" for p in pids)


def settled(client: EngineClient, pids: list[str]) -> bool:
    """Each instance completed, or its task failed for good (an incident, retries 0)."""
    for p in pids:
        if client.history_process_instances(processInstanceId=p)[0]["state"] == "COMPLETED":
            continue
        if not client.history_external_task_log(processInstanceId=p, failureLog=True):
            return False
    return True


def traces_per_key(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "das.db") as db:
        return dict(db.execute("SELECT idempotency_key, COUNT(*) FROM traces GROUP BY idempotency_key"))


def test_sigkill_mid_task_then_another_worker_completes(engine_client, serve, home, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    a = serve(topic, "test/slow", "--lock-ms", "3000", "--worker-id", f"A-{unique}")
    pid = engine_client.start_process(key, {"taskSpec": SPEC})["id"]
    wait_for(lambda: a.logged("task started"), 30, what="worker A started the task")
    a.stop(signal.SIGKILL)
    task = engine_client.external_tasks(processInstanceId=pid)[0]
    assert task["workerId"] == f"A-{unique}" and task["lockExpirationTime"]  # still locked by the dead A
    b = serve(topic, "test/slow", "--lock-ms", "3000", "--worker-id", f"B-{unique}")
    wait_for(lambda: completed(engine_client, [pid]), 60, what="worker B completed after lock expiry")
    log = engine_client.history_external_task_log(processInstanceId=pid, successLog=True)
    assert [e["workerId"] for e in log] == [f"B-{unique}"]
    assert b.stop() == 0


def test_repeated_kills_lose_nothing_and_never_run_a_key_twice(engine_client, serve, home, unique) -> None:
    """Kill workers at random points; every task completes once, no key runs to the end twice."""
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    pids = [engine_client.start_process(key, {"taskSpec": SPEC})["id"] for _ in range(6)]
    for i in range(5):
        w = serve(topic, "test/quick", "--lock-ms", "2000", "--workers", "3")
        time.sleep(2.2 + 0.37 * i)  # import time + a varying slice of work
        w.stop(signal.SIGKILL)
    last = serve(topic, "test/quick", "--lock-ms", "2000", "--workers", "3")
    wait_for(lambda: completed(engine_client, pids), 90, what="all tasks completed")
    wait_for(lambda: last.logged("worker started"), 60, what="last worker up")
    counts = traces_per_key(home)
    assert counts and max(counts.values()) == 1, counts
    for pid in pids:
        assert len(engine_client.history_external_task_log(processInstanceId=pid, successLog=True)) == 1
    assert last.stop() == 0


def test_sigterm_finishes_in_flight_then_exits(engine_client, serve, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    port = free_port()
    w = serve(topic, "test/slow", "--grace", "30", "--metrics-port", str(port))
    pid = engine_client.start_process(key, {"taskSpec": SPEC, "correlationId": f"corr-{unique}"})["id"]
    started = wait_for(lambda: w.logged("task started"), 30, what="task started")
    assert started[0]["correlationId"] == f"corr-{unique}" and started[0]["processInstanceId"] == pid
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert f'das_worker_tasks_fetched_total{{topic="{topic}"}} 1.0' in metrics
    assert "das_worker_in_flight 1.0" in metrics
    assert w.stop(signal.SIGTERM) == 0
    assert completed(engine_client, [pid])
    answered = w.logged("task answered")
    assert answered[0]["correlationId"] == f"corr-{unique}" and answered[0]["outcome"] == "complete"
    assert w.logged("worker stopped")


def test_sigterm_with_no_grace_unlocks(engine_client, serve, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    w = serve(topic, "test/slow", "--grace", "0", "--lock-ms", "600000")
    pid = engine_client.start_process(key, {"taskSpec": SPEC})["id"]
    wait_for(lambda: w.logged("task started"), 30, what="task started")
    assert w.stop(signal.SIGTERM) == 0
    task = engine_client.external_tasks(processInstanceId=pid)[0]
    assert task["workerId"] is None and task["lockExpirationTime"] is None  # handed back, not held 10 min
    assert w.logged("task unlocked")


def test_engine_restart_under_the_worker(engine: EngineHandle, engine_client, serve, unique) -> None:
    """Stop the engine while tasks are in flight, start it again: no crash, no lost task."""
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    w = serve(topic, "test/slow", "--workers", "2", "--lock-ms", "60000")
    pids = [engine_client.start_process(key, {"taskSpec": SPEC})["id"] for _ in range(4)]
    wait_for(lambda: w.logged("task started"), 30, what="tasks in flight")
    engine.process.stop()
    time.sleep(3)
    assert w.proc.poll() is None  # still serving
    engine.process.start()
    pids += [engine_client.start_process(key, {"taskSpec": SPEC})["id"] for _ in range(2)]
    wait_for(lambda: completed(engine_client, pids), 120, what="all tasks completed after restart")
    assert w.proc.poll() is None
    assert w.logged("engine unavailable, retrying with backoff") or w.logged(
        "engine unavailable while answering; retrying"
    )
    assert w.stop() == 0


@pytest.mark.slow
def test_side_effect_runs_once_per_key_over_20_kills(engine_client, serve, home, unique) -> None:
    """A side-effecting tool (HTTP POST) runs at most once per idempotency key, 20 SIGKILLs."""
    import collections
    import http.server
    import random
    import threading

    hits: collections.Counter = collections.Counter()

    class Effect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self.rfile.read(int(self.headers.get("content-length") or 0))
            hits[self.headers.get("x-correlation-id")] += 1
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Effect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/effect"
    (home / "scripts" / "effect.json").write_text(
        json.dumps(
            {
                "steps": [
                    {
                        "sleep_s": 0.4,
                        "tool_calls": [
                            {
                                "name": "http_request",
                                "arguments": {"method": "POST", "url": url, "json": {"n": 1}},
                            }
                        ],
                    },
                    {"sleep_s": 0.4, "auto_finish": True},
                ],
                "repeat_last": True,
            }
        )
    )
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    # loopback is reachable only as an exact operator endpoint; an unknown outcome is never
    # retried, so such a task fails at once (retries 0) instead of repeating the POST
    ops = home / "ops.yaml"
    ops.write_text(
        f"allowed_endpoints: ['{url}']\nallowed_methods: [GET, POST]\nretries: 0\n"
        "allowed_tools: [finish, http_request]\n"
    )
    spec = {"task_type": "effect_poster", "prompt": "Post the effect, then finish.", "inputs": {}}
    n = 8
    pids = [
        engine_client.start_process(key, {"taskSpec": spec, "correlationId": f"{unique}-{i}"})["id"]
        for i in range(n)
    ]
    rng = random.Random(7)
    try:
        for _ in range(20):
            w = serve(
                topic,
                "test/effect",
                "--lock-ms",
                "1500",
                "--workers",
                "2",
                "--prefetch",
                "0",
                "--policy",
                str(ops),
            )
            time.sleep(rng.uniform(1.8, 3.2))
            w.stop(signal.SIGKILL)
        last = serve(topic, "test/effect", "--lock-ms", "1500", "--workers", "4", "--policy", str(ops))
        wait_for(
            lambda: settled(engine_client, pids),
            120,
            what="every task completed or stopped on an unknown outcome",
        )
        wait_for(lambda: last.logged("worker started"), 60, what="last worker up")
        assert last.stop() == 0
    finally:
        server.shutdown()
    assert len(hits) >= n // 2, hits  # the effect really ran (0 only if a kill hit claim..POST)
    assert set(hits) <= {f"{unique}-{i}" for i in range(n)}
    assert max(hits.values()) == 1, hits  # never twice for one key
    done = [
        p
        for p in pids
        if engine_client.history_process_instances(processInstanceId=p)[0]["state"] == "COMPLETED"
    ]
    assert len(done) >= n // 2, done
    for pid in pids:
        successes = engine_client.history_external_task_log(processInstanceId=pid, successLog=True)
        if pid in done:
            assert len(successes) == 1
        else:  # a kill between claim and record: the outcome is unknown and the POST is not repeated
            failures = engine_client.history_external_task_log(processInstanceId=pid, failureLog=True)
            assert successes == [] and any("not repeated" in (f.get("errorMessage") or "") for f in failures)
