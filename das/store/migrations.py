"""Numbered schema migrations. Append only: never edit a migration that has shipped."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_idempotency_and_traces(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE results (
            idempotency_key TEXT PRIMARY KEY,
            task_type TEXT NOT NULL,
            correlation_id TEXT,
            status TEXT NOT NULL,
            stop_reason TEXT NOT NULL,
            result_json TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )""")
    db.execute("""
        CREATE TABLE traces (
            id INTEGER PRIMARY KEY,
            idempotency_key TEXT,
            correlation_id TEXT,
            task_type TEXT NOT NULL,
            stop_reason TEXT NOT NULL,
            result_json TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )""")
    db.execute("CREATE INDEX traces_correlation ON traces(correlation_id)")
    db.execute("""
        CREATE TABLE tool_effects (
            call_key TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('started', 'done')),
            result_json TEXT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )""")


@migration
def m002_audit_log(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            detail_json TEXT
        )""")


@migration
def m003_proposals(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE proposals (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            base_version TEXT,
            version TEXT NOT NULL,
            status TEXT NOT NULL,
            author TEXT NOT NULL,
            origin TEXT NOT NULL,
            body_json TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )""")
    db.execute("CREATE INDEX proposals_key ON proposals(key, status)")
    # append-only: who did what, when; never updated or deleted
    db.execute("""
        CREATE TABLE proposal_history (
            id INTEGER PRIMARY KEY,
            proposal_id TEXT NOT NULL REFERENCES proposals(id),
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            comment TEXT
        )""")
    db.execute("""CREATE TRIGGER proposal_history_no_update BEFORE UPDATE ON proposal_history
                  BEGIN SELECT RAISE(ABORT, 'proposal history is append-only'); END""")
    db.execute("""CREATE TRIGGER proposal_history_no_delete BEFORE DELETE ON proposal_history
                  BEGIN SELECT RAISE(ABORT, 'proposal history is append-only'); END""")
    # the versions each key has had deployed (engine or the local registry)
    db.execute("""
        CREATE TABLE process_versions (
            key TEXT NOT NULL,
            version TEXT NOT NULL,
            proposal_id TEXT,
            target TEXT NOT NULL,
            artifact TEXT NOT NULL,
            engine_deployment_id TEXT,
            deployed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            PRIMARY KEY (key, version)
        )""")


@migration
def m004_users_and_bound_approvals(db: sqlite3.Connection) -> None:
    # DAS users: personal API tokens are stored only as scrypt hashes (das/identity.py)
    db.execute("""
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('author', 'reviewer', 'admin')),
            token_id TEXT NOT NULL UNIQUE,
            token_hash TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            revoked_at TEXT
        )""")
    # every history row names the artifact it concerns (an approval binds to that hash) and how
    # the actor was proven (token, session, proxy, os, system)
    db.execute("ALTER TABLE proposal_history ADD COLUMN artifact_sha256 TEXT")
    db.execute("ALTER TABLE proposal_history ADD COLUMN proof TEXT")


@migration
def m005_effects_with_unknown_outcomes(db: sqlite3.Connection) -> None:
    # a side effect whose outcome is unknown (sent, then timeout/reset) is never repeated until
    # an operator resolves it (`das effects resolve`); SQLite cannot alter a CHECK, so copy
    db.execute("""
        CREATE TABLE tool_effects_v2 (
            call_key TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('started', 'done', 'unknown')),
            result_json TEXT,
            detail TEXT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )""")
    db.execute(
        "INSERT INTO tool_effects_v2 (call_key, tool, state, result_json, created_at)"
        " SELECT call_key, tool, state, result_json, created_at FROM tool_effects"
    )
    db.execute("DROP TABLE tool_effects")
    db.execute("ALTER TABLE tool_effects_v2 RENAME TO tool_effects")


@migration
def m006_principal_ids_and_acknowledgements(db: sqlite3.Connection) -> None:
    # every user record gets an immutable, never reused principal id (a name added back gets a
    # new one); history rows record the principal id and the credential an action was proven
    # with, and what a reviewer acknowledged (executable content) when approving
    db.execute("ALTER TABLE users ADD COLUMN principal_id TEXT")
    db.execute("UPDATE users SET principal_id = 'u-' || lower(hex(randomblob(16)))")
    db.execute("CREATE UNIQUE INDEX users_principal_id ON users(principal_id)")
    db.execute("ALTER TABLE proposal_history ADD COLUMN principal_id TEXT")
    db.execute("ALTER TABLE proposal_history ADD COLUMN credential TEXT")
    db.execute("ALTER TABLE proposal_history ADD COLUMN acknowledged TEXT")
