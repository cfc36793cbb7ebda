"""Run a blocking call with a wall-clock deadline that holds even while the call is in flight.

The call runs in a worker thread. At the deadline the caller gets ``DeadlineExceeded``; the
thread cannot be killed, so (1) providers are also given their own timeout, which ends most
calls about then, (2) a short grace lets a call that finishes just late hand its value (and so
its token usage) to the caller, (3) a call that finishes later still is handed to ``on_late``
so its usage is recorded, never dropped, and (4) at most ``MAX_CALL_THREADS`` such threads
exist at once: a new call waits for a slot within its own deadline, or times out.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_CALL_THREADS = 8
_slots = threading.BoundedSemaphore(MAX_CALL_THREADS)


class DeadlineExceeded(Exception):
    """The deadline passed; ``late_value`` is the call's value if it arrived within the grace."""

    def __init__(self, message: str = "deadline exceeded", late_value: Any = None) -> None:
        super().__init__(message)
        self.late_value = late_value


def live_call_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "das-model-call" and t.is_alive())


def call_with_deadline(
    fn: Callable[[], T], seconds: float, grace_s: float = 0.0, on_late: Callable[[T], None] | None = None
) -> T:
    """Run ``fn`` with a deadline of ``seconds`` (see the module doc for what happens after)."""
    if seconds <= 0:
        raise DeadlineExceeded()
    if not _slots.acquire(timeout=seconds):
        raise DeadlineExceeded(f"{MAX_CALL_THREADS} model calls are still running from earlier timeouts")
    box: dict[str, Any] = {}
    done = threading.Event()
    lock = threading.Lock()
    state = {"abandoned": False}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            _slots.release()
            with lock:
                late = state["abandoned"]
                done.set()
            if late and on_late is not None and "value" in box:
                try:
                    on_late(box["value"])
                except Exception:  # recording late usage must never crash a thread
                    pass

    # the caller's context (its trace span, say) goes with the call into its thread
    threading.Thread(
        target=contextvars.copy_context().run, args=(run,), daemon=True, name="das-model-call"
    ).start()
    if not done.wait(seconds):
        finished = done.wait(grace_s) if grace_s > 0 else False
        with lock:
            finished = finished or done.is_set()
            if not finished:
                state["abandoned"] = True
        raise DeadlineExceeded(late_value=box.get("value") if finished else None)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return,unused-ignore]  # the box holds fn's T
