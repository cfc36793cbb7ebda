"""Helpers shared by the engine tests (a uniquely named module: `conftest` is ambiguous)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from das.camunda.client import EngineClient
from das.camunda.engine_process import FAST_START_JAVA_OPTS, EngineProcess, build_engine

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


def start_engine_process(tmp: Path, **kwargs) -> EngineProcess:
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
        log = tmp / "engine.log"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
        raise RuntimeError(f"engine failed to start; log tail:\n{tail}") from None
    proc.startup_s = time.monotonic() - started
    return proc


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
