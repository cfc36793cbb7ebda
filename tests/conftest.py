"""Test-wide settings: real network model requests are off, each test gets its own DAS_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

# CI explores the same examples every run (reproducible landings); locally they vary.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ["DAS_ALLOW_MODEL_REQUESTS"] = "0"  # offline providers (test/, local/) still work
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

if TYPE_CHECKING:
    from pg_server import PgServer

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(autouse=True)
def das_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "das_home"
    monkeypatch.setenv("DAS_HOME", str(home))
    monkeypatch.delenv("DAS_STORE_URL", raising=False)  # tests choose their store explicitly
    return home


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    """The session's real PostgreSQL server, or None where it is not installed (a failure
    instead when DAS_REQUIRE_POSTGRES=1, as in CI)."""
    from pg_server import PgServer, bindir

    if bindir() is None:
        if os.environ.get("DAS_REQUIRE_POSTGRES") == "1":
            pytest.fail("DAS_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (scripts/install.sh installs them)")
        yield None
        return
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends of the store: a SQLite file, and a fresh database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    server = request.getfixturevalue("pg_server")
    if server is None:
        pytest.skip("PostgreSQL is not installed here (CI requires it: DAS_REQUIRE_POSTGRES=1)")
    return str(server.new_database())


def pytest_configure(config: pytest.Config) -> None:
    """In CI the MIWG corpus must be there: its tests would otherwise skip silently."""
    if os.environ.get("DAS_REQUIRE_CORPUS") == "1" and not any((CORPORA / "bpmn-miwg-reference").glob("*.bpmn")):
        raise pytest.UsageError(f"DAS_REQUIRE_CORPUS=1 but no MIWG files under {CORPORA / 'bpmn-miwg-reference'}")
