"""SQLite storage under DAS_HOME: idempotency, traces, tool effects, audit log, proposals."""

from das.store.db import Store, open_store

__all__ = ["Store", "open_store"]
