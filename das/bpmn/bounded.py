"""Run a simulation in a child process under a wall deadline and a memory limit, a few at a time.

Why: a simulation runs a graph and expressions a proposal's author wrote. Whatever slips past
the expression bounds (``das.bpmn.juel``) or hides in the graph (a huge multi-instance, a
pathological model) must not stall the API or take its memory. So the work runs in a forked
child, which caps its own address space (``RLIMIT_AS``: what it inherited plus ``MEMORY_MB``)
and arms an alarm; the parent waits at most ``wall_s``, then kills it; only JSON comes back.
Fork (not spawn) keeps the parent's imports, registry and settings, so a child costs
milliseconds, not an interpreter start. ``slot`` caps how many children run at once in this
process: the API answers 429 when none is free, instead of queueing without bound.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import json
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from das.errors import TransientUpstreamError


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


SLOTS = _env_int("DAS_SIM_SLOTS", max(1, min(4, os.cpu_count() or 1)))  # simulations at once per process
MEMORY_MB = _env_int("DAS_SIM_MEMORY_MB", 512)  # address space a child may add to what it inherited
SLOT_WAIT_S = 10.0  # how long a simulation outside the API's admission waits for a free slot
MAX_RESULT_BYTES = 64 * 1024 * 1024

_slots = threading.BoundedSemaphore(SLOTS)
_held: contextvars.ContextVar[bool] = contextvars.ContextVar("das_sim_slot", default=False)


class SimulationBusy(TransientUpstreamError):
    """Every simulation slot is taken: try again shortly (HTTP 429)."""


class LimitHit(Exception):
    """The child ran past its deadline or memory, or died: ``kind`` is time, memory or crash."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ChildError(Exception):
    """A bug raised in the child whose type has no equivalent here."""


@contextlib.contextmanager
def slot(wait_s: float = SLOT_WAIT_S) -> Iterator[None]:
    """Hold one of the ``SLOTS`` simulation slots (re-entrant in one context); ``SimulationBusy``
    when none frees up within ``wait_s`` (0: do not wait)."""
    if _held.get():
        yield
        return
    got = _slots.acquire(timeout=wait_s) if wait_s > 0 else _slots.acquire(blocking=False)
    if not got:
        raise SimulationBusy(f"all {SLOTS} simulation slots are busy; try again in a few seconds")
    token = _held.set(True)
    try:
        yield
    finally:
        _held.reset(token)
        _slots.release()


def _limit_memory(extra_mb: int) -> None:
    """Cap the address space at what the child has now plus ``extra_mb`` (the parent's size
    varies: an API server with models loaded is larger than the CLI)."""
    vm_kb = 0
    with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                vm_kb = int(line.split()[1])
    limit = vm_kb * 1024 + extra_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child(fn: Callable[[], Any], wfd: int, wall_s: float, memory_mb: int) -> None:
    """Runs in the forked child; never returns (``os._exit``)."""
    code = 0
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, int(wall_s) + 1))  # ends the child even if the parent is gone
        _limit_memory(memory_mb)
        try:
            payload = json.dumps({"ok": fn()})
        except MemoryError:
            code = 3
            payload = json.dumps({"limit": "memory"})
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
            payload = json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)[:2000]}})
        _write_all(wfd, payload.encode())
    except BaseException:  # noqa: BLE001 - even a failed report must end the child here
        code = code or 4
    finally:
        os._exit(code)


def run_in_child(fn: Callable[[], Any], wall_s: float, memory_mb: int = MEMORY_MB) -> Any:
    """``fn()``'s JSON-able value, computed in a forked child; ``LimitHit`` if it overran
    ``wall_s`` or its memory, or died; an exception it raised is raised here again."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow forks)
        os.close(rfd)
        _child(fn, wfd, wall_s, memory_mb)
    os.close(wfd)
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + wall_s
    killed = ""
    finished = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "time"
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RESULT_BYTES:
                killed = "size"
                break
        finished = True
    finally:
        os.close(rfd)
        if killed or not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if killed == "time":
        raise LimitHit("time", f"it ran past its {wall_s:g} s wall-clock limit and was stopped")
    if killed == "size":
        raise LimitHit("memory", f"its report was larger than {MAX_RESULT_BYTES // 2**20} MB")
    try:
        data = json.loads(b"".join(chunks)) if chunks else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("limit") == "memory":
        sig = -os.waitstatus_to_exitcode(status)
        if data is not None or os.waitstatus_to_exitcode(status) == 3:
            raise LimitHit("memory", f"it needed more than its {memory_mb} MB memory limit and was stopped")
        if sig == signal.SIGALRM:
            raise LimitHit("time", f"it ran past its {wall_s:g} s wall-clock limit and was stopped")
        if sig > 0:
            raise LimitHit(
                "crash", f"it was ended by signal {signal.Signals(sig).name} (likely its memory limit)"
            )
        raise LimitHit("crash", f"it ended without a report (exit code {os.waitstatus_to_exitcode(status)})")
    if "error" in data:
        raise _rebuilt(data["error"])
    return data["ok"]


def _rebuilt(error: dict[str, Any]) -> Exception:
    """The child's exception as the same built-in type where there is one (so callers that
    catch ``ValueError`` still do), else ``ChildError`` naming it."""
    kind = getattr(builtins, str(error.get("type")), None)
    message = str(error.get("message", ""))
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # noqa: BLE001 - a constructor with other arguments
            pass
    return ChildError(f"{error.get('type')}: {message}")


__all__ = ["SLOTS", "MEMORY_MB", "LimitHit", "SimulationBusy", "run_in_child", "slot"]
