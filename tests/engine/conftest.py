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


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics and keys, so tests never see each other's tasks."""
    return uuid.uuid4().hex[:8]
