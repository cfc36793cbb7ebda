"""PostgreSQL behind the same ``Store``: a connection that speaks the store's SQL, and the
schema of each numbered migration in PostgreSQL's dialect.

Why a thin adapter and not an ORM: the store's SQL is small and already portable except for
three spellings (``?`` parameters, SQLite's ``strftime`` timestamp, ``rowid``), which are
rewritten here once. Writers serialise on one transaction-scoped advisory lock, which gives
PostgreSQL the same "one writer at a time, readers never see half a write" behaviour as
SQLite's ``BEGIN IMMEDIATE``, so the guarantees the rest of DAS relies on do not depend on the
backend. The append-only approval history is enforced by a trigger in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from das.errors import UpstreamError, UsageError

NOW_SQLITE = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
NOW_PG = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
WRITE_LOCK = 7_400_112  # pg_advisory_xact_lock key: the store's single writer lock


class Row(tuple):  # type: ignore[type-arg]
    """A result row readable by index and by column name, like ``sqlite3.Row``."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = tuple(d.name for d in cursor.description or ())
    cls = type("PgRow", (Row,), {"_names": names})
    return lambda values: cls(values)


_PARAM = re.compile(r"\?")


def translate(sql: str) -> str:
    """The store's SQLite-flavoured SQL in PostgreSQL's spelling."""
    sql = sql.replace(NOW_SQLITE, "\x00now\x00").replace("%", "%%").replace("\x00now\x00", NOW_PG)
    sql = re.sub(r"\browid\b", "seq", sql)
    return _PARAM.sub("%s", sql)


class Cursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class Connection:
    """What ``Store.db`` returns for PostgreSQL: ``execute(sql, params)`` like sqlite3."""

    def __init__(self, url: str) -> None:

        try:
            import psycopg
        except ImportError:
            raise UsageError("a postgresql:// store needs psycopg 3: pip install 'das[postgres]'") from None
        try:
            self._conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory, connect_timeout=10)
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["connection failed"])[0]
            raise UpstreamError(f"cannot reach the store at {redact(url)}: {first}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if sql in ("BEGIN IMMEDIATE", "BEGIN"):
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            return Cursor(cur)
        cur = self._conn.cursor()
        cur.execute(translate(sql), tuple(params))
        return Cursor(cur)

    def close(self) -> None:
        self._conn.close()


# -- schema: migration number -> PostgreSQL DDL (same names as das/store/migrations.py) --------
TS = f"TEXT NOT NULL DEFAULT ({NOW_PG})"
PG_MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "m001_idempotency_and_traces",
        [
            f"""CREATE TABLE results (idempotency_key TEXT PRIMARY KEY, task_type TEXT NOT NULL, correlation_id TEXT,
            status TEXT NOT NULL, stop_reason TEXT NOT NULL, result_json TEXT NOT NULL, created_at {TS})""",
            f"""CREATE TABLE traces (id BIGSERIAL PRIMARY KEY, idempotency_key TEXT, correlation_id TEXT,
            task_type TEXT NOT NULL, stop_reason TEXT NOT NULL, result_json TEXT NOT NULL, created_at {TS})""",
            "CREATE INDEX traces_correlation ON traces(correlation_id)",
            f"""CREATE TABLE tool_effects (call_key TEXT PRIMARY KEY, tool TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('started', 'done')), result_json TEXT, created_at {TS})""",
        ],
    ),
    (
        "m002_audit_log",
        [
            f"""CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, at {TS}, actor TEXT NOT NULL, action TEXT NOT NULL,
            subject TEXT, detail_json TEXT)""",
        ],
    ),
    (
        "m003_proposals",
        [
            f"""CREATE TABLE proposals (seq BIGSERIAL UNIQUE, id TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL,
            base_version TEXT, version TEXT NOT NULL, status TEXT NOT NULL, author TEXT NOT NULL, origin TEXT NOT NULL,
            body_json TEXT NOT NULL, created_at {TS}, updated_at {TS})""",
            "CREATE INDEX proposals_key ON proposals(key, status)",
            f"""CREATE TABLE proposal_history (id BIGSERIAL PRIMARY KEY, proposal_id TEXT NOT NULL REFERENCES proposals(id),
            at {TS}, actor TEXT NOT NULL, action TEXT NOT NULL, comment TEXT)""",
            """CREATE FUNCTION das_append_only() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'proposal history is append-only'; END $$""",
            """CREATE TRIGGER proposal_history_append_only BEFORE UPDATE OR DELETE ON proposal_history
           FOR EACH ROW EXECUTE FUNCTION das_append_only()""",
            """CREATE TRIGGER proposal_history_no_truncate BEFORE TRUNCATE ON proposal_history
           FOR EACH STATEMENT EXECUTE FUNCTION das_append_only()""",
            f"""CREATE TABLE process_versions (key TEXT NOT NULL, version TEXT NOT NULL, proposal_id TEXT,
            target TEXT NOT NULL, artifact TEXT NOT NULL, engine_deployment_id TEXT, deployed_at {TS},
            PRIMARY KEY (key, version))""",
        ],
    ),
    (
        "m004_users_and_bound_approvals",
        [
            f"""CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('author', 'reviewer', 'admin')),
            token_id TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL, created_at {TS}, revoked_at TEXT)""",
            "ALTER TABLE proposal_history ADD COLUMN artifact_sha256 TEXT",
            "ALTER TABLE proposal_history ADD COLUMN proof TEXT",
        ],
    ),
    (
        "m005_effects_with_unknown_outcomes",
        [
            "ALTER TABLE tool_effects DROP CONSTRAINT tool_effects_state_check",
            "ALTER TABLE tool_effects ADD CONSTRAINT tool_effects_state_check CHECK (state IN ('started', 'done', 'unknown'))",
            "ALTER TABLE tool_effects ADD COLUMN detail TEXT",
            f"ALTER TABLE tool_effects ADD COLUMN updated_at {TS}",
        ],
    ),
    (
        "m006_principal_ids_and_acknowledgements",
        [
            "ALTER TABLE users ADD COLUMN principal_id TEXT",
            "UPDATE users SET principal_id = 'u-' || md5(random()::text || clock_timestamp()::text || name)",
            "CREATE UNIQUE INDEX users_principal_id ON users(principal_id)",
            "ALTER TABLE proposal_history ADD COLUMN principal_id TEXT",
            "ALTER TABLE proposal_history ADD COLUMN credential TEXT",
            "ALTER TABLE proposal_history ADD COLUMN acknowledged TEXT",
        ],
    ),
]


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


__all__ = ["Connection", "PG_MIGRATIONS", "Row", "is_postgres_url", "redact", "translate"]
