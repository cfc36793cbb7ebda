"""Settings from the environment, in one documented lookup order.

Order, first wins: command-line option > environment variable > built-in default.

* ``DAS_HOME``        data directory (SQLite store, workspace, indexes). Default ``~/.das``.
* ``DAS_MODEL``       litellm model string. Default ``local/qwen2.5-coder-1.5b`` (embedded, offline).
* ``DAS_ENGINE_URL``  Camunda 7 REST base ending in ``/engine-rest``.
                      Default ``http://localhost:8080/engine-rest``.
* ``DAS_ENGINE_USER`` / ``DAS_ENGINE_PASSWORD`` basic auth, or ``DAS_ENGINE_TOKEN`` bearer.
* ``DAS_ALLOW_MODEL_REQUESTS`` ``0`` turns off every network model request (tests do this).
Provider keys (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, a model's ``api_key_env``) are read from
the environment, sent only to the hosts they are bound to (``das.llm.capabilities``) and never
logged.

What ``DAS_HOME`` holds is listed in ``HOME_ITEMS``; only ``workspaces/`` is reachable by tools
(``protected_reason`` is the second wall the file tools check after their workspace wall).
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


# Everything DAS keeps in DAS_HOME, and why no tool may reach it. A test (tests/security/
# test_das_home_reach.py) checks every path the source builds under das_home() is listed here.
HOME_ITEMS: dict[str, str] = {
    "das.db": "the SQLite store (results, traces, effects, users, proposals); -wal/-shm beside it",
    "credentials.json": "the CLI's API token (das login)",
    "models.yaml": "the operator's model declarations: servers, key variables, key bindings",
    "models_learned.json": "what model servers refused (capability lessons)",
    "tde": "the live TDE registry: approved wrappers, each with its policy",
    "registry": "deployed proposals (local registry)",
    "test_scripts": "scripted test-model replies",
    "chroma": "the retrieval index",
    "models": "embedded model weights",
    "engine-data": "the engine's H2 database",
    "engine.log": "the engine's log",
    "engine.pid": "the engine the kernel started",
    "kernel.pid": "the running kernel",
    ".write-test": "the kernel's writability probe",
}
WORKSPACES = "workspaces"  # the one tool-reachable folder: one sub-folder per task (a key digest)


def workspaces_dir() -> Path:
    """Where task workspaces live: ``$DAS_HOME/workspaces/<digest>``, beside (never above) the
    items of ``HOME_ITEMS``."""
    return das_home() / WORKSPACES


def protected_paths() -> list[Path]:
    """What DAS trusts outside DAS_HOME as well: the models file, test scripts, model weights,
    the SQLite store and the resource folders (guardrails, processes, prompts)."""
    out = [resource_dir(name) for name in ("guardrails", "processes", "prompts")]
    for var in ("DAS_MODELS_FILE", "DAS_TEST_SCRIPTS", "DAS_MODEL_DIR"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]).expanduser())
    out.append(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "das" / "models"
    )
    store = os.environ.get("DAS_STORE_URL", "").strip()
    if store.startswith("sqlite:///"):
        db = Path(store.removeprefix("sqlite://"))
        out += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return out


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def protected_reason(target: Path, workspace: Path) -> str | None:
    """Why a tool may not touch ``target`` (both already resolved), or None.

    Inside DAS_HOME only ``workspaces/<one>/`` is reachable, and only from that same workspace;
    anything else of DAS_HOME, and every path of ``protected_paths``, is refused whatever the
    workspace is (a workspace that became DAS_HOME itself, or holds a link into it)."""
    home = das_home().resolve()
    if _inside(target, home):
        spaces = home / WORKSPACES
        if target == spaces or spaces not in target.parents:
            item = target.relative_to(home).parts[:1]
            return f"it is DAS_HOME{'/' + item[0] if item else ''}, which no tool may reach"
        own = spaces / target.relative_to(spaces).parts[0]
        if not _inside(workspace, own):
            return "it is another task's workspace"
    for path in protected_paths():
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if _inside(target, resolved):
            return f"it is {path}, which DAS trusts and no tool may reach"
    return None


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
