"""Settings from the environment, in one documented lookup order.

Order, first wins: command-line option > environment variable > built-in default.

* ``DAS_HOME``        data directory (SQLite store, workspace, indexes). Default ``~/.das``.
* ``DAS_MODEL``       litellm model string. Default ``local/qwen2.5-coder-1.5b`` (embedded, offline).
* ``DAS_ENGINE_URL``  Camunda 7 REST base ending in ``/engine-rest``.
                      Default ``http://localhost:8080/engine-rest``.
* ``DAS_ENGINE_USER`` / ``DAS_ENGINE_PASSWORD`` basic auth, or ``DAS_ENGINE_TOKEN`` bearer.
* ``DAS_ALLOW_MODEL_REQUESTS`` ``0`` turns off every network model request (tests do this).
Provider keys (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) are read by litellm from the
environment and never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "local/qwen2.5-coder-1.5b"
DEFAULT_ENGINE_URL = "http://localhost:8080/engine-rest"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def das_home() -> Path:
    home = Path(os.environ.get("DAS_HOME") or Path.home() / ".das").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_model() -> str:
    return os.environ.get("DAS_MODEL") or DEFAULT_MODEL


def engine_url() -> str:
    return (os.environ.get("DAS_ENGINE_URL") or DEFAULT_ENGINE_URL).rstrip("/")


def resource_dir(name: str) -> Path:
    """A top-level resource folder (guardrails, processes, prompts) of the source tree.

    ``DAS_RESOURCES`` overrides the root, so an installed package can point at a copy.
    """
    root = Path(os.environ.get("DAS_RESOURCES") or PROJECT_ROOT)
    return root / name
