"""The store on both backends (a fixture parameter): SQLite, and a real PostgreSQL server the
test session starts. Same migrations, same guarantees."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from das.authoring.queue import Queue, new_proposal_id
from das.contracts import Proposal
from das.store import pg
from das.store.db import Store
from das.store.migrations import MIGRATIONS


def test_postgres_schema_mirrors_every_numbered_migration() -> None:
    assert [name for name, _ in pg.PG_MIGRATIONS] == [fn.__name__ for fn in MIGRATIONS]


def test_migrations_are_numbered_and_applied_once(store_location: str) -> None:
    first = Store(store_location)
    assert Store(store_location).migrate() == []  # a second open applies nothing new
    assert first.migrations() == [(i, fn.__name__) for i, fn in enumerate(MIGRATIONS, start=1)]
    if first.backend == "sqlite":
        assert sqlite3.connect(store_location).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_first_result_wins_per_idempotency_key(store_location: str) -> None:
    store = Store(store_location)
    first = store.save_result("k", "t", None, "succeeded", "completed", {"n": 1})
    second = store.save_result("k", "t", None, "succeeded", "completed", {"n": 2})
    assert first == second == {"n": 1}
    assert store.get_result("k") == {"n": 1}


def test_failed_transaction_leaves_nothing(store_location: str) -> None:
    store = Store(store_location)
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            db.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'b')")
            raise RuntimeError("crash mid-write")
    assert store.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0


def test_effect_claims(store_location: str) -> None:
    store = Store(store_location)
    assert store.claim_effect("c", "t") == ("run", None)
    assert store.claim_effect("c", "t") == ("started", None)
    store.finish_effect("c", {"ok": 1})
    assert store.claim_effect("c", "t") == ("done", {"ok": 1})
    assert store.claim_effect("d", "t") == ("run", None)
    store.mark_effect_unknown("d", "timeout after send")
    assert store.claim_effect("d", "t") == ("unknown", None)
    assert [e["call_key"] for e in store.effects("unknown")] == ["d"]
    assert store.resolve_effect("d", done=False, actor="op")["resolved_as"] == "not-done"
    assert store.claim_effect("d", "t") == ("run", None)


def test_two_workers_racing_for_one_claim_get_one_run(store_location: str) -> None:
    """Two store instances (two workers) claim the same call key at once: exactly one runs it."""
    stores = [Store(store_location), Store(store_location)]
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        outcomes.append(stores[i % 2].claim_effect("race:1", "send_mail")[0])

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["run"] + ["started"] * 7


def test_two_workers_racing_for_one_result_keep_the_first(store_location: str) -> None:
    stores = [Store(store_location), Store(store_location)]
    results: list[dict] = []
    barrier = threading.Barrier(6)

    def save(i: int) -> None:
        barrier.wait()
        results.append(stores[i % 2].save_run("task-1", "t", None, "succeeded", "completed", {"n": i}, True))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["n"] for r in results}) == 1  # every caller got the one stored result
    assert stores[0].db.execute("SELECT count(*) FROM traces").fetchone()[0] == 1


def test_approval_history_is_append_only_in_the_database(store_location: str) -> None:
    store = Store(store_location)
    queue = Queue(store)
    p = queue.file(Proposal(id=new_proposal_id(), key="k", version="1.0.0", artifact="<x/>", author="alice"))
    assert [h.action for h in queue.get(p.id).history] == ["filed"]
    for sql in ("UPDATE proposal_history SET actor = 'mallory'", "DELETE FROM proposal_history"):
        with pytest.raises(Exception, match="append-only"):
            with store.transaction() as db:
                db.execute(sql)
    assert [h.actor for h in queue.get(p.id).history] == ["alice"]


def test_queue_lists_in_filing_order_on_both_backends(store_location: str) -> None:
    queue = Queue(Store(store_location))
    ids = [
        queue.file(
            Proposal(id=new_proposal_id(), key=f"k{i}", version="1.0.0", artifact="<x/>", author="alice")
        ).id
        for i in range(5)
    ]
    assert [r["id"] for r in queue.list()] == ids
    assert [r["id"] for r in queue.list("proposed")] == ids


def test_a_proposal_stored_before_the_reports_were_typed_still_loads(store_location: str) -> None:
    queue = Queue(Store(store_location))
    p = queue.file(Proposal(id=new_proposal_id(), key="k", version="1.0.0", artifact="<x/>", author="alice"))
    old = {
        "id": p.id,
        "kind": "process",
        "key": "k",
        "version": "1.0.0",
        "artifact": "<x/>",
        "author": "alice",
        "origin": "file",
        "tde_wrappers": [],
        "rationale": "",
        "edit_ops": [],
        "draft_trace": [],
        "validation": {"file": "k.bpmn", "valid": True, "findings": []},
        "simulation": {},
        "diff": {"text": "new process k (no base version)", "added": "all"},
        "evidence": [{"file": "k.bpmn"}],
        "value_measure": {},
    }
    with queue.store.transaction() as db:
        db.execute("UPDATE proposals SET body_json = ? WHERE id = ?", (json.dumps(old), p.id))
    loaded = queue.get(p.id)
    assert loaded.validation.valid and loaded.simulation is None and loaded.evidence[0].file == "k.bpmn"
    assert loaded.diff is not None and loaded.diff.text == "new process k (no base version)"
    assert loaded.value_measure.model_dump(exclude_none=True) == {}


def test_an_unreachable_postgres_is_a_clear_upstream_error(tmp_path: Path) -> None:
    from das.errors import UpstreamError

    with pytest.raises(UpstreamError, match=r"cannot reach the store at postgresql://u:\*\*\*@127.0.0.1:9/"):
        Store("postgresql://u:secret@127.0.0.1:9/x")
