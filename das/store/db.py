"""One store class over SQLite (WAL mode, the embedded default) or PostgreSQL (shared, for
several workers and API servers: ``DAS_STORE_URL=postgresql://...``); every write is one
transaction, and the same numbered migrations give both backends the same schema."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from das.config import das_home
from das.errors import UsageError
from das.store import pg
from das.store.migrations import MIGRATIONS


class Store:
    def __init__(self, location: str | Path) -> None:
        """``location``: a SQLite file path, or a ``postgresql://`` URL."""
        self.url = str(location) if pg.is_postgres_url(str(location)) else None
        self.path = None if self.url else Path(location)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migrate()

    @property
    def backend(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def describe(self) -> str:
        """Where the store is, for messages (a URL's password is never shown)."""
        return pg.redact(self.url) if self.url else str(self.path)

    @property
    def db(self) -> Any:
        """This thread's connection: ``sqlite3.Connection`` or the PostgreSQL adapter (same
        ``execute(sql, params)``, rows readable by index and by name)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.url:
                conn = pg.Connection(self.url)
            else:
                conn = sqlite3.connect(
                    str(self.path), timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT: writers serialise, readers never see half a write
        (PostgreSQL: BEGIN plus the store's transaction-scoped advisory lock)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply the numbered migrations not applied yet; returns their names."""
        applied: list[str] = []
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT number FROM _migrations")}
            for number, fn in enumerate(MIGRATIONS, start=1):
                if number in done:
                    continue
                if self.url:
                    name, statements = pg.PG_MIGRATIONS[number - 1]
                    for statement in statements:
                        db.execute(statement)
                else:
                    name = fn.__name__
                    fn(db)
                db.execute("INSERT INTO _migrations (number, name) VALUES (?, ?)", (number, name))
                applied.append(name)
        return applied

    def migrations(self) -> list[tuple[int, str]]:
        return [
            (int(r[0]), str(r[1]))
            for r in self.db.execute("SELECT number, name FROM _migrations ORDER BY number")
        ]

    # -- idempotent results ---------------------------------------------------------------
    def get_result(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT result_json FROM results WHERE idempotency_key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @staticmethod
    def _first_result(
        db: Any,
        key: str,
        task_type: str,
        correlation_id: str | None,
        status: str,
        stop_reason: str,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        inserted = db.execute(
            "INSERT INTO results (idempotency_key, task_type, correlation_id, status, stop_reason, result_json)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
            (key, task_type, correlation_id, status, stop_reason, json.dumps(result)),
        ).rowcount
        if inserted == 1:
            return result
        row = db.execute("SELECT result_json FROM results WHERE idempotency_key = ?", (key,)).fetchone()
        first: dict[str, Any] = json.loads(row[0])
        return first

    def save_result(
        self,
        key: str,
        task_type: str,
        correlation_id: str | None,
        status: str,
        stop_reason: str,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        """Store the first result for a key; if one exists already, return that one instead."""
        with self.transaction() as db:
            return self._first_result(db, key, task_type, correlation_id, status, stop_reason, result)

    def save_run(
        self,
        key: str | None,
        task_type: str,
        correlation_id: str | None,
        status: str,
        stop_reason: str,
        result: dict[str, Any],
        keep_result: bool,
    ) -> dict[str, Any]:
        """Trace plus (if ``keep_result``) the first result per key, in one transaction.

        When an earlier result wins, that one is returned and no second trace is written.
        """
        with self.transaction() as db:
            if key and keep_result:
                first = self._first_result(db, key, task_type, correlation_id, status, stop_reason, result)
                if first is not result:
                    return first
            db.execute(
                "INSERT INTO traces (idempotency_key, correlation_id, task_type, stop_reason, result_json)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, correlation_id, task_type, stop_reason, json.dumps(result)),
            )
        return result

    # -- side effects, at most once per call key ------------------------------------------
    def claim_effect(self, call_key: str, tool: str) -> tuple[str, Any]:
        """Claim a side-effecting call. Returns ("run", None), ("done", result) or ("started", None)."""
        with self.transaction() as db:
            claimed = db.execute(
                "INSERT INTO tool_effects (call_key, tool, state) VALUES (?, ?, 'started')"
                " ON CONFLICT (call_key) DO NOTHING",
                (call_key, tool),
            ).rowcount
            if claimed == 1:
                return "run", None
            row = db.execute(
                "SELECT state, result_json FROM tool_effects WHERE call_key = ?", (call_key,)
            ).fetchone()
            return row["state"], json.loads(row["result_json"]) if row["result_json"] else None

    def finish_effect(self, call_key: str, result: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE tool_effects SET state = 'done', result_json = ? WHERE call_key = ?",
                (json.dumps(result, default=str), call_key),
            )

    def release_effect(self, call_key: str) -> None:
        """The tool failed before any effect: let a retry run it."""
        with self.transaction() as db:
            db.execute("DELETE FROM tool_effects WHERE call_key = ? AND state = 'started'", (call_key,))

    def pending_effects(self, idempotency_key: str) -> list[str]:
        """Claims of this task key still ``started`` or ``unknown`` (a call of unknown outcome)."""
        prefix = f"{idempotency_key}:"
        rows = self.db.execute(
            "SELECT call_key FROM tool_effects WHERE substr(call_key, 1, ?) = ?"
            " AND state IN ('started', 'unknown') ORDER BY created_at",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def done_effects(self, idempotency_key: str) -> list[dict[str, Any]]:
        """Side effects of this task key that happened (what a compensation must undo)."""
        prefix = f"{idempotency_key}:"
        rows = self.db.execute(
            "SELECT call_key, tool, result_json FROM tool_effects WHERE substr(call_key, 1, ?) = ?"
            " AND state = 'done' ORDER BY created_at",
            (len(prefix), prefix),
        )
        return [dict(r) for r in rows]

    def mark_effect_unknown(self, call_key: str, detail: str) -> None:
        """The call was sent but its outcome is unknown: never repeat it without an operator."""
        with self.transaction() as db:
            db.execute(
                "UPDATE tool_effects SET state = 'unknown', detail = ?,"
                " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE call_key = ?",
                (detail, call_key),
            )

    def effects(self, state: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT call_key, tool, state, detail, result_json, created_at, updated_at FROM tool_effects"
        rows = self.db.execute(
            sql + (" WHERE state = ?" if state else "") + " ORDER BY created_at", (state,) if state else ()
        )
        return [dict(r) for r in rows]

    def resolve_effect(
        self, call_key: str, done: bool, actor: str, note: str | None = None
    ) -> dict[str, Any]:
        """An operator's word on an unknown (or stuck ``started``) effect: done -> replayed as
        done; not done -> the claim is dropped so a re-run may perform it."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT state, detail FROM tool_effects WHERE call_key = ?", (call_key,)
            ).fetchone()
            if row is None:
                raise KeyError(call_key)
            if row["state"] == "done":
                raise ValueError(f"effect {call_key} is already done")
            if done:
                result = {"note": f"resolved as done by {actor}" + (f": {note}" if note else "")}
                db.execute(
                    "UPDATE tool_effects SET state = 'done', result_json = ?,"
                    " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE call_key = ?",
                    (json.dumps(result), call_key),
                )
            else:
                db.execute("DELETE FROM tool_effects WHERE call_key = ?", (call_key,))
            db.execute(
                "INSERT INTO audit_log (actor, action, subject, detail_json) VALUES (?, ?, ?, ?)",
                (
                    actor,
                    "effect.resolve",
                    call_key,
                    json.dumps(
                        {
                            "as": "done" if done else "not-done",
                            "was": row["state"],
                            "detail": row["detail"],
                            "note": note,
                        }
                    ),
                ),
            )
        return {"call_key": call_key, "resolved_as": "done" if done else "not-done", "was": row["state"]}

    # -- audit ----------------------------------------------------------------------------
    def audit(
        self, actor: str, action: str, subject: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit_log (actor, action, subject, detail_json) VALUES (?, ?, ?, ?)",
                (actor, action, subject, json.dumps(detail or {}, default=str)),
            )


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def store_location(path: str | Path | None = None) -> str:
    """Which store: ``path`` if given, else ``$DAS_STORE_URL``, else ``$DAS_HOME/das.db``."""
    if path:
        return str(path) if pg.is_postgres_url(str(path)) else str(Path(path))
    url = os.environ.get("DAS_STORE_URL", "").strip()
    if url:
        if not pg.is_postgres_url(url) and not url.startswith("sqlite:///"):
            raise UsageError(
                f"DAS_STORE_URL must be postgresql://... or sqlite:///PATH, not {pg.redact(url)!r}"
            )
        return url.removeprefix("sqlite://") if url.startswith("sqlite:///") else url
    return str(das_home() / "das.db")


def open_store(path: str | Path | None = None) -> Store:
    """The store (see ``store_location``), one instance per location and process."""
    resolved = store_location(path)
    with _lock:
        if resolved not in _stores:
            _stores[resolved] = Store(resolved)
        return _stores[resolved]
