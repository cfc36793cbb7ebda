"""Move a store's contents to another store (SQLite -> PostgreSQL, usually): ``das store copy``.

Why a copy and not a dump: both ends go through ``Store`` (so the target gets the numbered
migrations first), rows keep their ids and order, and the target must be empty so nothing is
merged by accident. Counts are compared table by table after the copy; the source is never
changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from das.errors import InvalidInput
from das.store.db import Store

# parents before children (proposal_history references proposals); id columns kept
TABLES: list[tuple[str, str]] = [
    ("results", "idempotency_key"),
    ("traces", "id"),
    ("tool_effects", "created_at, call_key"),
    ("audit_log", "id"),
    ("proposals", "rowid"),
    ("proposal_history", "id"),
    ("process_versions", "deployed_at, key"),
    ("users", "name"),
]
SERIAL_IDS = {"traces": "id", "audit_log": "id", "proposal_history": "id"}


@dataclass
class CopyReport:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)


def _columns(store: Store, table: str) -> list[str]:
    cur = store.db.execute(f"SELECT * FROM {table} LIMIT 1")  # noqa: S608 - table names are constants
    if store.backend == "sqlite":
        return [d[0] for d in cur.description]
    row = cur.fetchone()
    return [c for c in (row.keys() if row is not None else [])] or _pg_columns(store, table)


def _pg_columns(store: Store, table: str) -> list[str]:
    rows = store.db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def copy_store(source: Store, target: Store) -> CopyReport:
    """Copy every table of ``source`` into the empty ``target``; raises ``InvalidInput`` if
    the target already holds data."""
    busy = [t for t, _ in TABLES if target.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]]  # noqa: S608
    if busy:
        raise InvalidInput(
            f"the target store {target.describe()} is not empty ({', '.join(busy)}); "
            "copy into a new, empty database so nothing is merged"
        )
    report = CopyReport(source=source.describe(), target=target.describe())
    with target.transaction() as db:
        for table, order in TABLES:
            columns = [c for c in _columns(source, table) if c != "seq"]
            if not columns:
                report.rows[table] = 0
                continue
            names = ", ".join(columns)
            rows = source.db.execute(f"SELECT {names} FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
            marks = ", ".join("?" for _ in columns)
            for row in rows:
                db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row))  # noqa: S608
            report.rows[table] = len(rows)
        if target.backend == "postgresql":
            for table, column in SERIAL_IDS.items():
                db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" GREATEST((SELECT max({column}) FROM {table}), 1))"
                )
    for table, count in report.rows.items():
        got = target.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        if got != count:
            raise InvalidInput(
                f"copy check failed: {table} has {got} rows in the target, {count} in the source"
            )
    return report


__all__ = ["CopyReport", "TABLES", "copy_store"]
