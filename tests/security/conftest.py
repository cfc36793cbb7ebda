"""Attacks on the approval boundary, each against a real `das api serve` over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_api import LiveApi


@pytest.fixture
def live(das_home: Path) -> Iterator[LiveApi]:
    server = LiveApi(das_home)
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture
def tokens(live: LiveApi) -> dict[str, str]:
    """alice drafts; bob and carol review."""
    return {
        "alice": live.token("alice", "author"),
        "bob": live.token("bob", "reviewer"),
        "carol": live.token("carol", "reviewer"),
    }
