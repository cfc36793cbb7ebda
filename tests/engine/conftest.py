"""The real engine, started once per test session (built first if needed).

Engine tests are marked ``@pytest.mark.engine``. Set ``DAS_SKIP_ENGINE_TESTS=1`` to skip them
on a machine without Java/Maven; otherwise a failed build or start fails the session loudly.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from das.engine.client import EngineClient
from das.engine.engine_process import FAST_START_JAVA_OPTS, EngineProcess, build_engine

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EngineHandle:
    url: str
    process: EngineProcess
    home: Path
    startup_s: float

    def client(self, **kwargs) -> EngineClient:
        return EngineClient(self.url, **kwargs)

    def restart(self) -> None:
        """Stop and start the same engine (same port, same H2 file): state survives."""
        self.process.stop()
        self.process.start()


def _start(tmp: Path, **kwargs) -> EngineProcess:
    port = free_port()
    proc = EngineProcess(
        f"http://127.0.0.1:{port}/engine-rest",
        jar=build_engine(),
        data_dir=tmp / "engine-data",
        log_path=tmp / "engine.log",
        java_opts=FAST_START_JAVA_OPTS,
        **kwargs,
    )
    started = time.monotonic()
    try:
        proc.start(timeout_s=180)
    except Exception:
        log = (tmp / "engine.log")
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
        raise RuntimeError(f"engine failed to start; log tail:\n{tail}") from None
    proc.startup_s = time.monotonic() - started
    return proc


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineHandle]:
    """The session's engine: free port, temp H2 file database, temp DAS_HOME."""
    if os.environ.get("DAS_SKIP_ENGINE_TESTS") == "1":
        pytest.skip("DAS_SKIP_ENGINE_TESTS=1")
    home = tmp_path_factory.mktemp("das-home")
    proc = _start(home)
    handle = EngineHandle(proc.url, proc, home, proc.startup_s or 0.0)
    print(f"\n[engine] up at {proc.url} in {handle.startup_s:.1f}s (log {home / 'engine.log'})")
    try:
        yield handle
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def engine_url(engine: EngineHandle) -> str:
    return engine.url


@pytest.fixture
def engine_client(engine: EngineHandle) -> Iterator[EngineClient]:
    with engine.client() as client:
        yield client


@pytest.fixture
def start_engine(tmp_path: Path) -> Iterator:
    """Factory for an extra engine (e.g. with auth); stopped when the test ends."""
    started: list[EngineProcess] = []

    def start(**kwargs) -> EngineProcess:
        proc = _start(tmp_path / f"engine{len(started)}", **kwargs)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def deploy_tde_min(client: EngineClient, suffix: str, topic: str) -> tuple[str, str]:
    """Deploy tests/engine/data/tde_min.bpmn with its topic; returns (min key, fan-out key)."""
    xml = (DATA / "tde_min.bpmn").read_text().replace('camunda:topic="TOPIC"', f'camunda:topic="{topic}"')
    xml = xml.replace('id="das_tde_min"', f'id="das_tde_min_{suffix}"')
    xml = xml.replace('id="das_tde_fanout"', f'id="das_tde_fanout_{suffix}"')
    client.deploy(f"das-test-tde-{suffix}", {f"tde_min_{suffix}.bpmn": xml})
    return f"das_tde_min_{suffix}", f"das_tde_fanout_{suffix}"


@pytest.fixture
def run_worker(engine: EngineHandle) -> Iterator:
    """Start in-process workers (threads) serving ``topic`` with the TDE handler."""
    import threading

    from das.engine.handlers import HANDLERS, TOPIC_TDE
    from das.engine.worker import Worker, WorkerConfig

    running: list[tuple[Worker, threading.Thread, EngineClient]] = []

    def start(topic: str, model: str = "test/auto", **config) -> Worker:
        client = engine.client()
        cfg = WorkerConfig(topics=[topic], model=model, **{"poll_ms": 1000, "grace_s": 5, **config})
        worker = Worker(client, cfg, handlers={topic: HANDLERS[TOPIC_TDE]})
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
        thread.start()
        running.append((worker, thread, client))
        return worker

    try:
        yield start
    finally:
        for worker, thread, client in running:
            worker.stop()
            thread.join(timeout=30)
            client.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics and keys, so tests never see each other's tasks."""
    return uuid.uuid4().hex[:8]
