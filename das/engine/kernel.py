"""The kernel: the seeds' microkernel and nothing more.

``up``: validate the environment; start the engine on the port ``DAS_ENGINE_URL`` names (or
adopt one already answering there); deploy ``processes/*.bpmn`` (changed only) and approved
proposals; optionally start a root orchestrator; then watch the engine's health and restart an
engine it started, until SIGTERM. ``status`` reports; ``down`` stops what ``up`` started.

State lives in ``DAS_HOME``: ``engine.pid`` (an engine the kernel started, JSON),
``kernel.pid`` (a running ``kernel up``), ``engine.log``, ``engine-data/`` (H2).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from das.authoring.deploy import deploy_pending
from das.authoring.queue import Queue
from das.camunda.client import EngineClient
from das.camunda.engine_process import (
    EngineProcess,
    engine_project_dir,
    find_java,
    pid_alive,
    stop_pid,
    wait_until_ready,
)
from das.config import das_home, engine_url, resource_dir
from das.errors import UpstreamError, UsageError

log = logging.getLogger("das.kernel")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def engine_pid_file() -> Path:
    return das_home() / "engine.pid"


def kernel_pid_file() -> Path:
    return das_home() / "kernel.pid"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def validate_environment(url: str, need_start: bool) -> list[str]:
    """Problems that stop the kernel, as readable lines (empty = fine)."""
    problems = []
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        problems.append(f"DAS_ENGINE_URL={url!r} is not an http(s) URL")
    elif not parsed.path.rstrip("/").endswith("/engine-rest"):
        problems.append(f"DAS_ENGINE_URL={url!r} must end with /engine-rest")
    if need_start:
        if parsed.hostname not in LOCAL_HOSTS:
            problems.append(f"no engine answers at {url} and the kernel only starts engines on this host")
        if find_java() is None:
            problems.append("no java found (a JDK 17+ is needed to run the engine; or set DAS_ENGINE_JAVA)")
        jar = os.environ.get("DAS_ENGINE_JAR") or engine_project_dir() / "target" / "das-engine.jar"
        if not Path(jar).is_file() and shutil.which("mvn") is None:
            problems.append("the engine jar is not built and Maven (mvn) is missing; set DAS_ENGINE_JAR")
    try:
        probe = das_home() / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        problems.append(f"DAS_HOME is not writable: {exc}")
    return problems


def deploy_processes(client: EngineClient, directory: Path | None = None) -> list[dict[str, Any]]:
    """Deploy each ``*.bpmn`` as its own DAS deployment, changed resources only.

    One deployment per file, so a broken file fails alone and is named in the report.
    """
    directory = directory or resource_dir("processes")
    report = []
    for path in sorted(directory.glob("*.bpmn")):
        entry: dict[str, Any] = {"file": path.name, "deployment": f"das-{path.stem}"}
        try:
            result = client.deploy(f"das-{path.stem}", {path.name: path.read_bytes()})
            defs = result.get("deployedProcessDefinitions") or {}
            entry["status"] = "deployed" if defs else "unchanged"
            entry["definitions"] = sorted(f"{d['key']}:{d['version']}" for d in defs.values())
        except UpstreamError as exc:
            entry["status"] = "failed"
            entry["error"] = exc.message
        report.append(entry)
    return report


def deploy_pending_proposals(client: EngineClient) -> list[dict[str, Any]]:
    """Deploy every approved-but-undeployed proposal (and retry deploy_failed ones).

    Each is deployed under its own name (``ID@VERSION``, deploy-changed-only, so a retry is
    safe) and recorded as ``deployed`` or ``deploy_failed`` in the append-only history.
    """

    return [
        {
            "proposal_id": o.proposal.id,
            "key": o.proposal.key,
            "version": o.proposal.version,
            "status": "refused" if o.refused else o.proposal.status,
            "message": o.refused or (o.proposal.history[-1].comment if o.proposal.history else None),
        }
        for o in deploy_pending(Queue(), engine_url=client.base_url)
    ]


def index_deployed_definitions(client: EngineClient) -> dict[str, Any]:
    """Re-index the engine's latest definitions for retrieval (advisory: never fails ``up``)."""
    try:
        from das.retrieval import index_deployed  # lazy: chromadb loads only when indexing

        definitions = []
        for d in client.process_definitions(latest=True):
            try:
                xml = client.process_definition_xml(id=d["id"])
            except UpstreamError:
                xml = None
            definitions.append({**d, "xml": xml})
        report = index_deployed(definitions, prune=True)
        return {"documents": len(definitions), "embedding": getattr(report, "embedding", None)}
    except Exception as exc:  # retrieval is a convenience for drafting; the kernel goes on
        log.warning("indexing deployed definitions failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return {"error": f"{type(exc).__name__}: {exc}"}


class Kernel:
    """``kernel up`` as an object, so tests can drive it without signals."""

    def __init__(
        self,
        url: str | None = None,
        *,
        processes_dir: Path | None = None,
        root_process: str | None = None,
        root_variables: dict[str, Any] | None = None,
        monitor_interval_s: float = 5.0,
        start_timeout_s: float = 180.0,
        engine: EngineProcess | None = None,
    ) -> None:
        self.url = (url or engine_url()).rstrip("/")
        self.processes_dir = processes_dir
        self.root_process = root_process
        self.root_variables = root_variables or {}
        self.monitor_interval_s = monitor_interval_s
        self.start_timeout_s = start_timeout_s
        self.engine = engine
        self.client = EngineClient(self.url, timeout=15)
        self.started_engine = False
        self.restarts = 0
        self.report: dict[str, Any] = {}
        self._stop = threading.Event()

    def stop(self, *_: object) -> None:
        self._stop.set()

    def ensure_engine(self) -> str:
        """Adopt an engine answering at the URL, or start one. Returns 'adopted' or 'started'."""
        if self.client.is_ready():
            return "adopted"
        problems = validate_environment(self.url, need_start=True)
        if problems:
            raise UsageError("cannot start the engine: " + "; ".join(problems))
        stale = _read_json(engine_pid_file())
        if stale and pid_alive(int(stale.get("pid", 0))) and stale.get("url") == self.url:
            # our engine from an earlier run is still starting: wait for it rather than clash
            wait_until_ready(self.url, self.start_timeout_s, client=self.client)
            return "adopted"
        self.engine = self.engine or EngineProcess(self.url)
        self.engine.start(timeout_s=self.start_timeout_s)
        self.started_engine = True
        engine_pid_file().write_text(
            json.dumps(
                {
                    "pid": self.engine.pid,
                    "url": self.url,
                    "jar": str(self.engine.jar),
                    "log": str(self.engine.log_path),
                    "started_at": time.time(),
                    "startup_s": round(self.engine.startup_s or 0, 2),
                }
            )
        )
        return "started"

    def up(self) -> dict[str, Any]:
        """Everything before monitoring: engine, deployments, root orchestrator."""
        problems = validate_environment(self.url, need_start=False)
        if problems:
            raise UsageError("; ".join(problems))
        how = self.ensure_engine()
        deployed = deploy_processes(self.client, self.processes_dir)
        proposals = deploy_pending_proposals(self.client)
        root = None
        if self.root_process:
            root = self.client.start_process(self.root_process, self.root_variables)["id"]
        self.report = {
            "engine": how,
            "url": self.url,
            "version": self.client.version(),
            "engine_pid": self.engine.pid if self.engine and self.started_engine else None,
            "deployments": deployed,
            "proposals": proposals,
            "root_instance": root,
            "indexed": index_deployed_definitions(self.client),
        }
        failed = [d["file"] for d in deployed if d["status"] == "failed"]
        if failed:
            log.warning("some processes failed to deploy", extra={"files": failed})
        return self.report

    def monitor(self, install_signals: bool = True) -> None:
        """Watch health until stopped; restart an engine this kernel started if it dies."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        kernel_pid_file().write_text(json.dumps({"pid": os.getpid(), "url": self.url}))
        failures = 0
        try:
            while not self._stop.wait(self.monitor_interval_s):
                if self.client.is_ready():
                    failures = 0
                    continue
                failures += 1
                dead = self.engine is not None and not self.engine.running()
                log.warning("engine not healthy", extra={"failures": failures, "process_dead": dead})
                if self.started_engine and self.engine and (dead or failures >= 3):
                    self.engine.stop(timeout_s=10)
                    self.engine.start(timeout_s=self.start_timeout_s)
                    self.restarts += 1
                    engine_pid_file().write_text(
                        json.dumps({"pid": self.engine.pid, "url": self.url, "started_at": time.time()})
                    )
                    deploy_processes(self.client, self.processes_dir)
                    failures = 0
                    log.info("engine restarted", extra={"restarts": self.restarts})
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self.started_engine and self.engine:
            self.engine.stop()
            engine_pid_file().unlink(missing_ok=True)
        kernel_pid_file().unlink(missing_ok=True)
        self.client.close()


class KernelStatus(BaseModel):
    """``das kernel status``: engine health, what DAS deployed, incidents and open tasks."""

    url: str
    ready: bool = False
    version: str | None = None
    engine_pid: int | None = Field(None, description="the engine DAS started, if it runs")
    kernel_pid: int | None = Field(None, description="a running `das kernel up`")
    das_deployments: int = 0
    process_definitions: list[str] = Field(default_factory=list, description="key:version, latest only")
    open_incidents: int = 0
    open_external_tasks: dict[str, int] = Field(default_factory=dict, description="topic -> open tasks")


def status(url: str | None = None) -> KernelStatus:
    """Engine health, what DAS deployed, incidents and open external tasks."""
    url = (url or engine_url()).rstrip("/")
    engine_pid = _read_json(engine_pid_file())
    kernel = _read_json(kernel_pid_file())
    out = KernelStatus(
        url=url,
        engine_pid=engine_pid.get("pid") if engine_pid and pid_alive(int(engine_pid.get("pid", 0))) else None,
        kernel_pid=kernel.get("pid") if kernel and pid_alive(int(kernel.get("pid", 0))) else None,
    )
    with EngineClient(url, timeout=5) as client:
        if not client.is_ready():
            return out
        out.ready = True
        out.version = client.version()
        out.das_deployments = len(client.deployments(source="das"))
        out.process_definitions = sorted(
            f"{d['key']}:{d['version']}" for d in client.process_definitions(latest=True)
        )
        out.open_incidents = len(client.incidents())
        for task in client.external_tasks(active=True):
            topic = task.get("topicName", "")
            out.open_external_tasks[topic] = out.open_external_tasks.get(topic, 0) + 1
    return out


def _cmdline_has(pid: int, needle: str) -> bool:
    """Guard against pid reuse: only signal a pid whose command line is what we started."""
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the pid file


def down() -> dict[str, Any]:
    """Stop a running ``kernel up`` (which stops its engine) or an engine it left running."""
    stopped: dict[str, Any] = {"kernel": None, "engine": None}
    kernel = _read_json(kernel_pid_file())
    if (
        kernel
        and pid_alive(int(kernel["pid"]))
        and int(kernel["pid"]) != os.getpid()
        and _cmdline_has(int(kernel["pid"]), "kernel")
    ):
        stop_pid(int(kernel["pid"]), timeout_s=60)
        stopped["kernel"] = kernel["pid"]
    kernel_pid_file().unlink(missing_ok=True)
    engine = _read_json(engine_pid_file())
    if engine and pid_alive(int(engine["pid"])) and _cmdline_has(int(engine["pid"]), ".jar"):
        stop_pid(int(engine["pid"]), timeout_s=30)
        stopped["engine"] = engine["pid"]
    engine_pid_file().unlink(missing_ok=True)
    return stopped
