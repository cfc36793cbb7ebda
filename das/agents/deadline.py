"""Run a blocking call with a wall-clock deadline that holds even while the call is in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    pass


def call_with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """Run ``fn`` in a daemon thread; give up after ``seconds`` (the thread is abandoned)."""
    if seconds <= 0:
        raise DeadlineExceeded()
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="das-model-call").start()
    if not done.wait(seconds):
        raise DeadlineExceeded()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
