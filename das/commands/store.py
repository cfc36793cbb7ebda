"""``das store``: where the store is, its migrations, and moving it to PostgreSQL."""

from __future__ import annotations

from dataclasses import asdict

import click

from das.output import emit
from das.store.copy import copy_store
from das.store.db import Store, store_location

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


@click.group()
def store() -> None:
    """The DAS store: SQLite under DAS_HOME by default, or PostgreSQL via DAS_STORE_URL.

    \b
    Several `das serve` workers and API servers share one store only on PostgreSQL:
      export DAS_STORE_URL=postgresql://das:SECRET@db.internal:5432/das
      das store migrate
      das store copy --from ~/.das/das.db --to "$DAS_STORE_URL"   # move an existing store
    """


@store.command("migrate")
@click.option(
    "--url",
    default=None,
    metavar="URL|PATH",
    help="Store to migrate (default: DAS_STORE_URL, else DAS_HOME).",
)
@FORMAT
def migrate_cmd(url: str | None, fmt: str) -> None:
    """Apply the numbered migrations the store does not have yet (safe to repeat)."""
    s = Store(store_location(url))
    applied = s.migrate()  # opening applied them already; this reports what this run did
    data = {
        "store": s.describe(),
        "backend": s.backend,
        "migrations": [n for _, n in s.migrations()],
        "applied_now": applied,
    }
    emit(
        data,
        fmt,
        lambda d: (
            f"{d['store']} ({d['backend']}): {len(d['migrations'])} migrations, "
            f"latest {d['migrations'][-1] if d['migrations'] else '-'}"
        ),
    )


@store.command("copy")
@click.option(
    "--from",
    "source",
    default=None,
    metavar="URL|PATH",
    help="Store to read (default: DAS_STORE_URL, else DAS_HOME's das.db). Never changed.",
)
@click.option(
    "--to", "target", required=True, metavar="URL|PATH", help="Empty store to fill (migrated first)."
)
@FORMAT
def copy_cmd(source: str | None, target: str, fmt: str) -> None:
    """Copy every table into an empty store, ids and order kept, counts checked after."""
    report = copy_store(Store(store_location(source)), Store(store_location(target)))
    emit(
        asdict(report),
        fmt,
        lambda d: (
            f"copied {d['source']} -> {d['target']}: " + ", ".join(f"{t} {n}" for t, n in d["rows"].items())
        ),
    )
