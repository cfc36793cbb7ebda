"""Mining on synthetic history: each pattern, its evidence counts, and what is not flagged."""

from __future__ import annotations

from nightly_fakes import KEY, FakeClient, activity, incident, log, normal_instance

from das.nightly.mining import Thresholds, engine_time, mine, percentile


def by(findings, kind):
    return {f.activity_id: f for f in findings if f.kind == kind}


def test_incidents_are_counted_per_activity_with_examples():
    client = FakeClient(
        incidents=[incident(i) for i in range(4)]
        + [incident(9, kind="failedJob")]
        + [{**incident(10), "incidentType": "customType"}]
    )
    f = by(mine(client, keys=[KEY]), "incidents")["charge"]
    assert f.refactor == "add_error_boundary" and f.actionable
    assert f.evidence["incidents"] == 5 and f.evidence["instances"] == 5 and f.evidence["open"] == 5
    assert f.evidence["by_type"] == {"failedExternalTask": 4, "failedJob": 1}
    assert [e["incident_id"] for e in f.evidence["examples"]] == ["inc-0", "inc-1", "inc-2", "inc-3", "inc-9"]
    assert f.activity_name == "Charge card" and f.fingerprint == f"{KEY}:charge:add_retry".replace(
        "add_retry", "add_error_boundary"
    )


def test_task_failures_give_rates_recoveries_and_exhaustion():
    rows = [
        log(0, "t1"),
        log(1, "t1", failure=True, retries=2),
        log(2, "t1", success=True),  # recovered
        log(3, "t2"),
        log(4, "t2", failure=True, retries=0),  # exhausted -> incident
        log(5, "t3"),
        log(6, "t3", success=True),
        log(7, "t4"),
        log(8, "t4", success=True),
    ]
    f = by(mine(FakeClient(task_log=rows, incidents=[incident(0, task="t2")]), keys=[KEY]), "task_failures")[
        "charge"
    ]
    ev = f.evidence
    assert (
        ev["failures"],
        ev["tasks"],
        ev["failed_tasks"],
        ev["recovered_tasks"],
        ev["exhausted_tasks"],
    ) == (2, 4, 2, 1, 1)
    assert ev["failure_rate"] == 0.5 and ev["configured_retries"] is None
    assert f.refactor == "add_retry" and f.actionable


def test_a_single_failure_is_not_a_pattern():
    rows = [log(0, "t1"), log(1, "t1", failure=True, retries=2), log(2, "t1", success=True)]
    assert not by(mine(FakeClient(task_log=rows), keys=[KEY]), "task_failures")


def test_long_p95_is_flagged_against_the_absolute_threshold():
    acts = []
    for i in range(20):
        acts += normal_instance(f"pi-{i}", review_ms=3_600_000 if i >= 18 else 60_000)
    findings = mine(FakeClient(activities=acts), keys=[KEY])
    slow = by(findings, "long_duration")
    assert set(slow) == {"review"}  # charge (200 ms) and gateways/events never
    ev = slow["review"].evidence
    assert ev["samples"] == 20 and ev["p50_ms"] == 60_000 and ev["p95_ms"] == 3_600_000
    assert ev["rule"].startswith("p95 >= 300000")
    assert ev["examples"][0]["duration_ms"] == 3_600_000


def test_short_or_uniform_durations_are_not_flagged():
    acts = [a for i in range(20) for a in normal_instance(f"pi-{i}", review_ms=2000)]
    assert not by(mine(FakeClient(activities=acts), keys=[KEY]), "long_duration")


def test_ratio_rule_needs_the_floor():
    acts = [a for i in range(20) for a in normal_instance(f"pi-{i}", review_ms=90_000 if i == 19 else 100)]
    t = Thresholds(p95_abs_ms=10**9)
    assert not by(
        mine(FakeClient(activities=acts), keys=[KEY], thresholds=t), "long_duration"
    )  # p95 is 100 ms
    acts = [a for i in range(20) for a in normal_instance(f"pi-{i}", review_ms=90_000 if i >= 15 else 100)]
    f = by(mine(FakeClient(activities=acts), keys=[KEY], thresholds=t), "long_duration")["review"]
    assert "10.0x" in f.evidence["rule"]


def test_paths_never_taken_need_enough_completed_instances():
    acts = [a for i in range(12) for a in normal_instance(f"pi-{i}")]
    completed = [{"id": f"pi-{i}"} for i in range(12)]
    unused = [
        f
        for f in mine(FakeClient(activities=acts, completed=completed), keys=[KEY])
        if f.kind == "unused_path"
    ]
    assert [(f.activity_id, f.evidence["element"]) for f in unused] == [("audit", "node")]
    assert not unused[0].actionable and unused[0].evidence["completed_instances"] == 12
    few = FakeClient(activities=acts, completed=completed[:9])
    assert not [f for f in mine(few, keys=[KEY]) if f.kind == "unused_path"]


def test_a_gateway_branch_never_taken_is_reported_as_a_flow():
    acts, completed = [], []
    for i in range(12):
        pi = f"pi-{i}"
        completed.append({"id": pi})
        acts += normal_instance(pi) if i != 0 else [a for a in normal_instance(pi) if a["activityId"] != "gw"]
    acts += [activity("pi-0", "audit", 10, "userTask")]  # audit ran once, but never in an instance with gw
    unused = [
        f
        for f in mine(FakeClient(activities=acts, completed=completed), keys=[KEY])
        if f.kind == "unused_path"
    ]
    assert [(f.activity_id, f.evidence.get("flow_id")) for f in unused] == [("gw", "f_big")]


def test_helpers():
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10
    assert percentile([5], 50) == 5
    from datetime import UTC, datetime

    assert engine_time(datetime(2026, 11, 21, 3, 4, 5, 678000, tzinfo=UTC)) == "2026-11-21T03:04:05.678+0000"


def test_paging_reads_every_row():
    client = FakeClient(incidents=[incident(i) for i in range(2500)])
    assert by(mine(client, keys=[KEY]), "incidents")["charge"].evidence["incidents"] == 2500


def test_unknown_key_has_no_findings():
    assert mine(FakeClient(incidents=[incident(0)]), keys=["nope"]) == []
