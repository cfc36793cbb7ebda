import sqlite3

from das.store.db import Store
from das.store.migrations import MIGRATIONS


def test_migrations_are_numbered_and_applied_once(tmp_path):
    path = tmp_path / "s.db"
    Store(path)
    Store(path)  # second open applies nothing new
    rows = sqlite3.connect(path).execute("SELECT number, name FROM _migrations ORDER BY number").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_first_result_wins_per_idempotency_key(tmp_path):
    store = Store(tmp_path / "s.db")
    first = store.save_result("k", "t", None, "succeeded", "completed", {"n": 1})
    second = store.save_result("k", "t", None, "succeeded", "completed", {"n": 2})
    assert first == second == {"n": 1}
    assert store.get_result("k") == {"n": 1}


def test_failed_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        with store.transaction() as db:
            db.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'b')")
            raise RuntimeError("crash mid-write")
    except RuntimeError:
        pass
    assert store.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0


def test_effect_claims(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.claim_effect("c", "t") == ("run", None)
    assert store.claim_effect("c", "t") == ("started", None)
    store.finish_effect("c", {"ok": 1})
    assert store.claim_effect("c", "t") == ("done", {"ok": 1})
