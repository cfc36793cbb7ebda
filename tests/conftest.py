"""Test-wide settings: real network model requests are off, each test gets its own DAS_HOME."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings
from needs import CORPUS, NO_CORPUS, NO_POSTGRES, missing, required

# CI explores the same examples every run (reproducible landings); locally they vary.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ["DAS_ALLOW_MODEL_REQUESTS"] = "0"  # offline providers (test/, local/) still work
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

if TYPE_CHECKING:
    from model_server import ModelServer
    from pg_server import PgServer

REPO = Path(__file__).resolve().parent.parent


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
        if required("DAS_REQUIRE_POSTGRES"):
            pytest.fail(f"DAS_REQUIRE_POSTGRES=1 but {NO_POSTGRES}")
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
        missing("DAS_REQUIRE_POSTGRES", NO_POSTGRES)
    return str(server.new_database())


def _server_parts_missing() -> str | None:
    for module in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (scripts/install.sh installs llama-cpp-python[server])"
    try:
        from das.llm.localmodel import gguf_path

        gguf_path("smollm2")
    except Exception as exc:  # noqa: BLE001 - any reason the model file is not there
        return f"the SmolLM2 model is not installed ({exc})"
    return None


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving SmolLM2 as ``smollm2``
    (a failure instead of a skip when DAS_REQUIRE_MODEL_SERVER=1, as in CI)."""
    absent = _server_parts_missing()
    if absent:
        missing("DAS_REQUIRE_MODEL_SERVER", absent)
    from model_server import ModelServer

    from das.llm.localmodel import gguf_path

    log = REPO / "build" / "test-artifacts" / "llama_cpp_server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = ModelServer(gguf_path("smollm2"), log=log)
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    """In CI the MIWG corpus must be there: its tests would otherwise skip."""
    config.addinivalue_line("markers", "needs(present, switch, what): a part the test needs (tests/needs.py)")
    if required("DAS_REQUIRE_CORPUS") and not any(CORPUS.glob("*.bpmn")):
        raise pytest.UsageError(f"DAS_REQUIRE_CORPUS=1 but {NO_CORPUS}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@needs(...)``: skip naming the missing part, or fail under its DAS_REQUIRE_* switch."""
    for mark in item.iter_markers("needs"):
        if not mark.kwargs["present"]:
            missing(mark.kwargs["switch"], mark.kwargs["what"])
