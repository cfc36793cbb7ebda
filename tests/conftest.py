"""Test-wide settings: real network model requests are off, each test gets its own DAS_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (reproducible landings); locally they vary.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ["DAS_ALLOW_MODEL_REQUESTS"] = "0"  # offline providers (test/, local/) still work
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(autouse=True)
def das_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "das_home"
    monkeypatch.setenv("DAS_HOME", str(home))
    return home


def pytest_configure(config: pytest.Config) -> None:
    """In CI the MIWG corpus must be there: its tests would otherwise skip silently."""
    if os.environ.get("DAS_REQUIRE_CORPUS") == "1" and not any((CORPORA / "bpmn-miwg-reference").glob("*.bpmn")):
        raise pytest.UsageError(f"DAS_REQUIRE_CORPUS=1 but no MIWG files under {CORPORA / 'bpmn-miwg-reference'}")
