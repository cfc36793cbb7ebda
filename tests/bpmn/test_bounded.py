"""A simulation runs in a child under a wall deadline and a memory limit, a few at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from das.bpmn import bounded
from das.bpmn import simulate as sim
from das.contracts import SimulationReport


def test_the_child_hands_back_its_value_and_its_errors() -> None:
    assert bounded.run_in_child(lambda: {"a": [1, "b"]}, wall_s=10) == {"a": [1, "b"]}

    def bad() -> None:
        raise KeyError("flow_x")

    with pytest.raises(KeyError, match="flow_x"):
        bounded.run_in_child(bad, wall_s=10)


def test_a_child_past_its_deadline_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(bounded.LimitHit) as hit:
        bounded.run_in_child(lambda: time.sleep(30), wall_s=0.5)
    assert hit.value.kind == "time" and time.monotonic() - start < 3


def test_a_child_over_its_memory_limit_stops() -> None:
    def hog() -> int:
        return len(bytearray(2 * 1024**3))

    start = time.monotonic()
    with pytest.raises(bounded.LimitHit) as hit:
        bounded.run_in_child(hog, wall_s=20, memory_mb=100)
    assert hit.value.kind == "memory" and time.monotonic() - start < 5


def test_no_free_slot_is_busy_at_once_and_a_slot_is_reentrant() -> None:
    held = threading.Event()
    release = threading.Event()

    def hold_all() -> None:
        for _ in range(bounded.SLOTS):
            bounded._slots.acquire()
        held.set()
        release.wait(10)
        for _ in range(bounded.SLOTS):
            bounded._slots.release()

    t = threading.Thread(target=hold_all)
    t.start()
    try:
        held.wait(5)
        with pytest.raises(bounded.SimulationBusy, match="busy"):
            with bounded.slot(wait_s=0):
                pass
    finally:
        release.set()
        t.join(10)
    with bounded.slot(wait_s=0), bounded.slot(wait_s=0):  # the inner one does not take a second slot
        pass


def test_a_simulation_over_its_limit_is_a_finding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def forever(*_a: Any, **_k: Any) -> dict[str, Any]:
        time.sleep(60)
        return {}

    monkeypatch.setattr(sim, "simulate_inline", forever)
    monkeypatch.setattr(sim, "GRACE_S", 0.5)
    path = tmp_path / "p.bpmn"
    path.write_text("<x/>")
    start = time.monotonic()
    report = SimulationReport.model_validate(sim.simulate_file(path, runs=3, time_limit_s=0.5))
    assert time.monotonic() - start < 5
    assert not report.passed and report.findings[0].rule == "simulation.limit"
    assert report.stuck[0].reason.startswith("limit hit: the simulation was stopped: it ran past its 1 s")
