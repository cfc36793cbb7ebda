"""Red team: reach what DAS keeps in DAS_HOME (its store, credentials, models file, live
registry, ...) from a tool. Every tool and every deterministic adapter is walked against every
item of the inventory (``das.config.HOME_ITEMS``), from every workspace a task could end up with:
its own ``workspaces/<digest>``, DAS_HOME itself (a key of ``..``), the ``workspaces`` folder (a
key of ``.``), a workspace that holds symlinks and hard links into DAS_HOME (the model cannot
make them, but a workspace might contain them), and a workspace that is a symlink to DAS_HOME."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_helpers import FINISH, spec

from das.adapters import adapters
from das.agents.tde_loop import run_tde
from das.config import PROJECT_ROOT
from das.contracts import Policy
from das.errors import ModelRetry, PolicyDenied
from das.llm.testmodel import register_script
from das.store import open_store
from das.tools.base import Tool, ToolContext
from das.tools.registry import TOOLS

# the inventory of DAS_HOME (das.config.HOME_ITEMS must list the same; the last test checks it)
HOME_ITEMS = [
    "das.db",
    "credentials.json",
    "models.yaml",
    "models_learned.json",
    "tde",
    "registry",
    "test_scripts",
    "chroma",
    "models",
    "engine-data",
    "engine.log",
    "engine.pid",
    "kernel.pid",
    ".write-test",
]
WORKSPACES = "workspaces"
DIRS = {"tde", "registry", "test_scripts", "chroma", "models", "engine-data"}
DIGEST = "a" * 64


def canary(name: str) -> str:
    return f"CANARY-{name}-7f3a"


def plant(home: Path) -> dict[Path, str]:
    """Every inventory item (plus the store's -wal/-shm), each holding a canary."""
    home.mkdir(parents=True, exist_ok=True)
    files: dict[Path, str] = {}
    for name in [*HOME_ITEMS, "das.db-wal", "das.db-shm"]:
        path = home / name / "canary.txt" if name in DIRS else home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(canary(name))
        files[path] = canary(name)
    return files


def workspace(home: Path, kind: str) -> Path:
    own = home / WORKSPACES / DIGEST
    if kind == "own":
        own.mkdir(parents=True, exist_ok=True)
        return own
    if kind == "home":
        return home
    if kind == "workspaces":
        (home / WORKSPACES).mkdir(parents=True, exist_ok=True)
        return home / WORKSPACES
    if kind == "linked":
        own.mkdir(parents=True, exist_ok=True)
        for name in [*HOME_ITEMS, "das.db-wal"]:
            os.symlink(home / name, own / f"sym-{name}")
            if name not in DIRS:
                os.link(home / name, own / f"hard-{name}")
        os.symlink(home, own / "sym-home")
        return own
    if kind == "root-is-a-symlink":
        link = home.parent / "innocent-looking-workspace"
        os.symlink(home, link)
        return link
    raise AssertionError(kind)


def paths_for(kind: str, home: Path, name: str) -> list[str]:
    inner = f"{name}/canary.txt" if name in DIRS else name
    tries = [str(home / inner), f"../../{inner}", f"./../../{inner}", f"x/../../../{inner}"]
    if kind in ("home", "root-is-a-symlink"):
        tries += [inner, f"./{inner}", f"{WORKSPACES}/../{inner}"]
    if kind == "workspaces":
        tries += [f"../{inner}", f"{DIGEST}/../../{inner}"]
    if kind == "linked":
        tries += [f"sym-{name}" + ("/canary.txt" if name in DIRS else ""), f"sym-home/{inner}"]
        if name not in DIRS:
            tries.append(f"hard-{name}")
    return tries


def attempts(tool: Tool, path: str, absolute: Path) -> list[dict[str, Any]]:
    """The arguments a model would try with ``tool`` to reach one item."""
    if tool.name == "read_file":
        return [{"path": path}]
    if tool.name == "write_file":
        return [{"path": path, "content": "PWNED"}]
    if tool.name in ("http_request", "http"):
        return [{"url": absolute.as_uri()}, {"url": "file://" + path}, {"url": f"http://localhost/{path}"}]
    if tool.name == "json_query":
        return [{"data": {"$ref": absolute.as_uri()}, "path": "$ref"}, {"data": path, "path": ""}]
    if tool.name == "render_template":
        return [{"template": "${x}", "values": {"x": str(absolute)}}, {"template": f"$(cat {absolute})"}]
    return [{"path": path}]


def every_tool() -> dict[str, Tool]:
    return {**TOOLS, **{f"adapter:{name}": t for name, t in adapters().items()}}


@pytest.mark.parametrize("kind", ["own", "home", "workspaces", "linked", "root-is-a-symlink"])
def test_every_tool_against_every_das_home_item(das_home: Path, kind: str):
    planted = plant(das_home)
    ws = workspace(das_home, kind)
    ctx = ToolContext(
        Policy(
            allowed_tools=["finish", "json_query", "read_file", "write_file", "http_request"],
            allowed_hosts=["localhost"],
            allowed_methods=["GET"],
        ),
        ws,
    )
    leaked: list[str] = []
    for label, tool in every_tool().items():
        for name in [*HOME_ITEMS, "das.db-wal"]:
            inner = das_home / name / "canary.txt" if name in DIRS else das_home / name
            for path in paths_for(kind, das_home, name):
                for args in attempts(tool, path, inner):
                    try:
                        out = tool.run(ctx, args)
                    except (ModelRetry, PolicyDenied):
                        continue
                    if "CANARY-" in str(out):
                        leaked.append(f"{label} {args} -> {str(out)[:80]}")
    assert leaked == []
    for path, content in planted.items():
        assert path.read_text() == content, f"{path} was changed"
    # a write replaces a hard link in the task's own workspace (never writes through it); nothing else
    own = das_home / WORKSPACES / DIGEST
    strays = [
        p
        for p in das_home.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and own not in p.parents
        and "PWNED" in p.read_text(errors="replace")
    ]
    assert strays == []


def test_the_own_workspace_still_works(das_home: Path):
    """The wall does not take the workspace away: its own files read and write as before."""
    ws = workspace(das_home, "own")
    ctx = ToolContext(Policy(), ws)
    assert TOOLS["write_file"].run(ctx, {"path": "notes/a.txt", "content": "mine"})["bytes"] == 4
    assert TOOLS["read_file"].run(ctx, {"path": "notes/a.txt"}) == "mine"


def test_a_task_cannot_read_a_sibling_workspace_from_the_workspaces_folder(das_home: Path):
    """Tried: a key of ``.`` makes the workspace the folder of every workspace; read another's file."""
    other = das_home / WORKSPACES / ("b" * 64)
    other.mkdir(parents=True)
    (other / "result.txt").write_text(canary("sibling"))
    ctx = ToolContext(Policy(), das_home / WORKSPACES)
    with pytest.raises(PolicyDenied, match="another task's workspace"):
        TOOLS["read_file"].run(ctx, {"path": f"{'b' * 64}/result.txt"})


def test_model_writes_models_yaml_into_das_home_through_the_loop(das_home: Path, tmp_path: Path):
    """Tried (the issue's chain): under a task type whose entry names write_file, with the
    workspace become DAS_HOME, the model writes models.yaml declaring its own server as local
    with a secret's variable, then reads credentials.json."""
    plant(das_home)
    (das_home / "models.yaml").unlink()
    (das_home / "tde").mkdir(exist_ok=True)
    (das_home / "tde" / "file_worker.yaml").write_text(
        yaml.safe_dump(
            {
                "task_type": "file_worker",
                "executor": {"kind": "probabilistic"},
                "policy": {"allowed_tools": ["finish", "read_file", "write_file"]},
            }
        )
    )
    evil = (
        "openai/evil:\n  api_base: http://127.0.0.1:9/v1\n  local: true\n  api_key_env: DAS_ENGINE_PASSWORD\n"
    )
    model = register_script(
        "home-writer",
        [
            {"tool_calls": [{"name": "write_file", "arguments": {"path": "models.yaml", "content": evil}}]},
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "credentials.json"}}]},
            FINISH,
        ],
    )
    result = run_tde(
        spec("file_worker"), model=model, workspace=das_home, store=open_store(tmp_path / "s.db")
    )
    assert not (das_home / "models.yaml").exists()
    refused = [s for s in result.trace if s.tool in ("write_file", "read_file")]
    assert len(refused) == 2 and all("das_home" in (s.error or "") for s in refused)
    assert "CANARY-credentials.json" not in result.model_dump_json()


def test_the_inventory_names_every_das_home_item():
    """Every ``das_home() / "x"`` (and ``$DAS_HOME/x``) in the source is an item of HOME_ITEMS
    (or the workspaces folder), so a new item cannot land where tools reach without review."""
    from das import config

    assert sorted(config.HOME_ITEMS) == sorted(HOME_ITEMS) and config.WORKSPACES == WORKSPACES
    found: set[str] = set()
    pattern = re.compile(
        r'(?:das_home\(\)|\["DAS_HOME"\]\)(?:\.expanduser\(\))?|\(root or das_home\(\)\))'
        r'\s*/\s*"([^"]+)"'
    )
    for source in (PROJECT_ROOT / "das").rglob("*.py"):
        found |= set(pattern.findall(source.read_text()))
    assert found, "the pattern no longer finds DAS_HOME paths"
    assert found - {*HOME_ITEMS, WORKSPACES} == set()
