"""The real engine, started once per test session (built first if needed).

Engine tests are marked ``@pytest.mark.engine``. Set ``DAS_SKIP_ENGINE_TESTS=1`` to skip them
on a machine without Java/Maven; otherwise a failed build or start fails the session loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import EngineHandle, start_engine_process

from das.camunda.client import EngineClient
from das.camunda.engine_process import EngineProcess


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineHandle]:
    """The session's engine: free port, temp H2 file database, temp DAS_HOME."""
    if os.environ.get("DAS_SKIP_ENGINE_TESTS") == "1":
        pytest.skip("the engine tests are switched off by DAS_SKIP_ENGINE_TESTS=1 (CI never sets it)")
    home = tmp_path_factory.mktemp("das-home")
    proc = start_engine_process(home)
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
        proc = start_engine_process(tmp_path / f"engine{len(started)}", **kwargs)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def run_worker(engine: EngineHandle) -> Iterator:
    """Start in-process workers (threads) serving ``topic`` with the TDE handler."""
    import threading

    from das.engine.handlers import TOPIC_TDE, builtin_handlers
    from das.engine.worker import Worker, WorkerConfig

    running: list[tuple[Worker, threading.Thread, EngineClient]] = []

    def start(topic: str, model: str = "test/auto", **config) -> Worker:
        client = engine.client()
        cfg = WorkerConfig(topics=[topic], model=model, **{"poll_ms": 1000, "grace_s": 5, **config})
        worker = Worker(client, cfg, handlers={topic: builtin_handlers()[TOPIC_TDE]})
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
