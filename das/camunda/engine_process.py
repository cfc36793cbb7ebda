"""Find, build, start and stop the real engine (engine/ Spring Boot jar) as a subprocess.

Used by the kernel, the test fixtures and the benchmark, so all three start the engine the
same way. The jar is built once by ``engine/build.sh`` (cached by a hash of pom + sources).

Environment:
* ``DAS_ENGINE_JAR``   use this jar instead of building ``engine/``.
* ``DAS_ENGINE_JAVA``  java executable (default ``$JAVA_HOME/bin/java`` or ``java``).
* ``DAS_ENGINE_JAVA_OPTS`` extra JVM options (split on whitespace).
* ``DAS_ENGINE_JDBC_URL`` / ``_JDBC_USER`` / ``_JDBC_PASSWORD`` database (default H2 file
  under ``DAS_HOME/engine-data``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

from das.camunda.client import EngineClient
from das.config import PROJECT_ROOT, das_home, engine_url
from das.errors import TransientUpstreamError, UpstreamError, UsageError

# SerialGC and a capped heap suit a small single-node engine; tests add
# -XX:TieredStopAtLevel=1 (about 1 s faster startup, slower steady state).
DEFAULT_JAVA_OPTS = ["-XX:+UseSerialGC", "-Xmx768m"]
FAST_START_JAVA_OPTS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx512m"]


def engine_project_dir() -> Path:
    return Path(os.environ.get("DAS_ENGINE_DIR") or PROJECT_ROOT / "engine")


def build_engine(force: bool = False) -> Path:
    """Build (or reuse) the engine jar and return its path. Needs Maven and a JDK 17+."""
    override = os.environ.get("DAS_ENGINE_JAR")
    if override and not force:
        jar = Path(override)
        if not jar.is_file():
            raise UsageError(f"DAS_ENGINE_JAR={override} does not exist")
        return jar
    project = engine_project_dir()
    script = project / "build.sh"
    if not script.is_file():
        raise UsageError(f"no engine project at {project} (set DAS_ENGINE_JAR to a built jar)")
    if shutil.which("mvn") is None and not (project / "target" / "das-engine.jar").is_file():
        raise UsageError("Maven (mvn) is needed to build the engine; install it or set DAS_ENGINE_JAR")
    args = [str(script)] + (["--force"] if force else [])
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise UpstreamError(f"engine build failed (exit {proc.returncode}):\n{tail}")
    jar = project / "target" / "das-engine.jar"
    if not jar.is_file():
        raise UpstreamError(f"engine build did not produce {jar}")
    return jar


def find_java() -> str | None:
    """The java to start the engine with (DAS_ENGINE_JAVA, $JAVA_HOME/bin/java, then PATH), or None.

    The one lookup: the kernel's environment check and the engine start must agree on it.
    """
    explicit = os.environ.get("DAS_ENGINE_JAVA")
    if explicit:
        return explicit
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_executable() -> str:
    """:func:`find_java`, or a UsageError saying what to install."""
    found = find_java()
    if not found:
        raise UsageError("no java found: install a JDK 17+ or set DAS_ENGINE_JAVA")
    return found


def port_of(url: str) -> int:
    parsed = urlparse(url)
    if parsed.port:
        return parsed.port
    return 443 if parsed.scheme == "https" else 80


def wait_until_ready(
    url: str,
    timeout_s: float = 120.0,
    client: EngineClient | None = None,
    proc: subprocess.Popen | None = None,
) -> float:
    """Poll until /engine and /deployment answer; returns seconds waited."""
    own = client is None
    client = client or EngineClient(url, timeout=5)
    start = time.monotonic()
    try:
        while True:
            if client.is_ready():
                return time.monotonic() - start
            if proc is not None and proc.poll() is not None:
                raise UpstreamError(f"engine process exited with code {proc.returncode} during startup")
            if time.monotonic() - start > timeout_s:
                raise TransientUpstreamError(f"engine at {url} not ready after {timeout_s:.0f}s")
            time.sleep(0.25)
    finally:
        if own:
            client.close()


class EngineProcess:
    """One engine JVM bound to the port of ``url``; start() waits until it answers."""

    def __init__(
        self,
        url: str | None = None,
        *,
        jar: Path | None = None,
        data_dir: Path | None = None,
        jdbc_url: str | None = None,
        jdbc_user: str | None = None,
        jdbc_password: str | None = None,
        auth: bool = False,
        admin_user: str | None = None,
        admin_password: str | None = None,
        log_path: Path | None = None,
        address: str | None = None,
        java_opts: list[str] | None = None,
    ) -> None:
        self.url = (url or engine_url()).rstrip("/")
        self.port = port_of(self.url)
        self.jar = jar
        self.data_dir = data_dir or das_home() / "engine-data"
        self.jdbc_url = jdbc_url
        self.jdbc_user = jdbc_user
        self.jdbc_password = jdbc_password
        self.auth = auth
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.log_path = log_path or das_home() / "engine.log"
        self.address = address
        if java_opts is None:
            java_opts = DEFAULT_JAVA_OPTS + os.environ.get("DAS_ENGINE_JAVA_OPTS", "").split()
        self.java_opts = java_opts
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        jar = self.jar or build_engine()
        self.jar = jar
        return [java_executable(), *self.java_opts, "-jar", str(jar)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DAS_ENGINE_PORT"] = str(self.port)
        env["DAS_ENGINE_DATA"] = str(self.data_dir)
        env["DAS_ENGINE_AUTH"] = "true" if self.auth else "false"
        if self.address:
            env["DAS_ENGINE_ADDRESS"] = self.address
        if self.jdbc_url:
            env["DAS_ENGINE_JDBC_URL"] = self.jdbc_url
        if self.jdbc_user is not None:
            env["DAS_ENGINE_JDBC_USER"] = self.jdbc_user
        if self.jdbc_password is not None:
            env["DAS_ENGINE_JDBC_PASSWORD"] = self.jdbc_password
        if self.admin_user and self.admin_password:
            env["DAS_ENGINE_ADMIN_USER"] = self.admin_user
            env["DAS_ENGINE_ADMIN_PASSWORD"] = self.admin_password
        return env

    def start(self, wait: bool = True, timeout_s: float = 180.0) -> EngineProcess:
        if self.running():
            return self
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=str(self.data_dir),
                start_new_session=True,
            )
        finally:
            log.close()
        if wait:
            client = None
            if self.auth and self.admin_user:
                client = EngineClient(self.url, user=self.admin_user, password=self.admin_password, timeout=5)
            try:
                self.startup_s = wait_until_ready(self.url, timeout_s, client=client, proc=self.proc)
            except UpstreamError:
                self.stop()
                raise
            finally:
                if client:
                    client.close()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Spring shuts the engine down cleanly), SIGKILL after ``timeout_s``."""
        if not self.proc:
            return
        stop_pid(self.proc.pid, timeout_s, popen=self.proc)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 30.0, popen: subprocess.Popen | None = None) -> None:
    """Stop one process by id: SIGTERM, then SIGKILL if it has not exited in time."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return
        elif not pid_alive(pid) or _is_zombie(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if popen is not None:
        popen.wait()


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
