"""Skips name what is missing and fail under .ci/run's DAS_REQUIRE_* switches (tests/needs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from needs import SWITCHES, missing, needs, required

TESTS = Path(__file__).resolve().parent
SKIP_CALL = re.compile(r"pytest\.skip\(|mark\.skipif|importorskip\(|mark\.skip\b|mark\.xfail")
# the one opt-out that is not a missing part: DAS_SKIP_ENGINE_TESTS=1 (tests/engine/conftest.py)
ALLOWED = {TESTS / "needs.py": 1, TESTS / "engine" / "conftest.py": 1}


def test_every_skip_goes_through_needs_py() -> None:
    counts = {p: len(SKIP_CALL.findall(p.read_text(encoding="utf-8"))) for p in TESTS.rglob("*.py")}
    stray = {str(p.relative_to(TESTS)): n for p, n in counts.items() if n and n != ALLOWED.get(p)}
    assert stray == {}, (
        "skip through tests/needs.py (missing / needs / needs_module) so CI can require the part"
    )


def test_missing_skips_naming_the_part_and_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAS_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed .*DAS_REQUIRE_BROWSER=1"):
        missing("DAS_REQUIRE_BROWSER", "chromium is not installed")


def test_missing_fails_under_its_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAS_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="DAS_REQUIRE_BROWSER=1 but chromium is not installed"):
        missing("DAS_REQUIRE_BROWSER", "chromium is not installed")


def test_every_ci_switch_is_known_and_an_unknown_one_is_a_mistake() -> None:
    ci = set(re.findall(r"export (DAS_REQUIRE_\w+)=1", (TESTS.parent / ".ci" / "run").read_text()))
    assert ci == SWITCHES and all(required(s) in (True, False) for s in ci)
    with pytest.raises(ValueError, match="DAS_REQUIRE_NOTHING"):
        needs(False, "DAS_REQUIRE_NOTHING", "x")
