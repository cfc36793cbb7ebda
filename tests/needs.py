"""Every skip in tests/ goes through here: it names the missing part and fails where it is required.

Why: a skip that says only "not there yet" hides a broken install. ``missing()`` skips with the
part's name, or fails when the matching ``DAS_REQUIRE_*`` switch of .ci/run is ``1`` (as in CI);
``@needs(present, switch, what)`` does the same for a whole test (tests/conftest.py checks it
before the test runs). The only other skip, ``DAS_SKIP_ENGINE_TESTS=1``, is an explicit opt-out.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"

# .ci/run's switches: each one turns the skips for its part into failures
SWITCHES = frozenset(
    {
        "DAS_REQUIRE_LOCAL_MODEL",
        "DAS_REQUIRE_NODE_TOOLS",
        "DAS_REQUIRE_CORPUS",
        "DAS_REQUIRE_BROWSER",
        "DAS_REQUIRE_POSTGRES",
        "DAS_REQUIRE_MODEL_SERVER",
    }
)

NO_POSTGRES = "PostgreSQL's server binaries are not installed here (scripts/install.sh installs them)"
NO_LLAMA_CPP = "llama-cpp-python is not installed (scripts/install.sh installs it)"
NO_CORPUS = (
    f"the MIWG corpus is not at {CORPUS} (a shared test corpus next to the project, "
    "not installable by scripts/install.sh)"
)


def required(switch: str) -> bool:
    """Whether ``switch`` is on; an unknown name is a mistake in the test, not a skip."""
    if switch not in SWITCHES:
        raise ValueError(f"{switch} is not one of .ci/run's switches: {sorted(SWITCHES)}")
    return os.environ.get(switch) == "1"


def missing(switch: str, what: str) -> NoReturn:
    """Skip because ``what`` is missing, or fail when ``switch=1`` requires it."""
    if required(switch):
        pytest.fail(f"{switch}=1 but {what}")
    pytest.skip(f"{what} ({switch}=1 turns this skip into a failure)")


def needs_module(module: str, switch: str, what: str) -> None:
    """:func:`missing` unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        missing(switch, what)


def needs(present: bool, switch: str, what: str) -> pytest.MarkDecorator:
    """Mark a test that needs ``what``: checked before it runs, like :func:`missing`."""
    required(switch)
    return pytest.mark.needs(present=present, switch=switch, what=what)


needs_corpus = needs(any(CORPUS.glob("*.bpmn")), "DAS_REQUIRE_CORPUS", NO_CORPUS)
