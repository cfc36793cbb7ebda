"""`das kernel up|status|down` as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import DATA, free_port, wait_for

from das.camunda.client import EngineClient
from das.camunda.engine_process import build_engine, pid_alive

pytestmark = pytest.mark.engine


def das(*args: str, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "das", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_kernel_adopts_a_running_engine_and_never_stops_it(engine, tmp_path: Path) -> None:
    env = {**os.environ, "DAS_HOME": str(tmp_path), "DAS_ENGINE_URL": engine.url}
    up = das("kernel", "up", "--detach", "--processes", str(DATA), "--format", "json", env=env)
    assert up.returncode == 0, up.stderr
    report = json.loads(up.stdout)
    assert report["engine"] == "adopted" and report["engine_pid"] is None
    assert {d["file"] for d in report["deployments"]} == {"client_test.bpmn", "tde_min.bpmn"}
    assert all(d["status"] in ("deployed", "unchanged") for d in report["deployments"])
    status = das("kernel", "status", "--format", "json", env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["ready"] and data["version"].startswith("7.") and data["engine_pid"] is None
    down = das("kernel", "down", "--format", "json", env=env)
    assert json.loads(down.stdout) == {"kernel": None, "engine": None}
    with EngineClient(engine.url) as client:
        assert client.is_ready()  # a foreign engine is left alone


def test_kernel_status_when_down(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAS_HOME": str(tmp_path),
        "DAS_ENGINE_URL": f"http://127.0.0.1:{free_port()}/engine-rest",
    }
    status = das("kernel", "status", "--format", "json", env=env)
    assert status.returncode == 1 and json.loads(status.stdout)["ready"] is False


def test_kernel_validates_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "DAS_HOME": str(tmp_path), "DAS_ENGINE_URL": "http://127.0.0.1:1/wrong"}
    up = das("kernel", "up", "--detach", env=env)
    assert up.returncode == 2 and "must end with /engine-rest" in up.stderr


def test_kernel_starts_monitors_restarts_and_stops_its_engine(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/engine-rest"
    env = {
        **os.environ,
        "DAS_HOME": str(tmp_path),
        "DAS_ENGINE_URL": url,
        "DAS_ENGINE_JAR": str(build_engine()),
        "DAS_ENGINE_JAVA_OPTS": "-XX:TieredStopAtLevel=1",
    }
    log = open(tmp_path / "kernel.out", "wb")
    kernel = subprocess.Popen(
        [sys.executable, "-m", "das", "kernel", "up", "--interval", "1", "--processes", str(DATA)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = EngineClient(url, timeout=5)
        wait_for(lambda: (tmp_path / "kernel.pid").exists(), 180, 0.5, what="kernel monitoring")
        first = json.loads((tmp_path / "engine.pid").read_text())["pid"]
        assert client.is_ready() and client.process_definitions(key="das_tde_min")
        os.kill(first, signal.SIGKILL)  # the engine dies under the kernel
        wait_for(
            lambda: json.loads((tmp_path / "engine.pid").read_text())["pid"] != first,
            60,
            0.5,
            what="kernel restarted the engine",
        )
        wait_for(client.is_ready, 120, 0.5, what="restarted engine ready")
        down = das("kernel", "down", "--format", "json", env=env)
        stopped = json.loads(down.stdout)
        assert stopped["kernel"] == kernel.pid
        assert kernel.wait(timeout=60) == 0
        assert not (tmp_path / "engine.pid").exists() and not (tmp_path / "kernel.pid").exists()
        time.sleep(0.5)
        assert not client.is_ready()
        client.close()
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        pid_file = tmp_path / "engine.pid"
        if pid_file.exists():
            pid = json.loads(pid_file.read_text())["pid"]
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
