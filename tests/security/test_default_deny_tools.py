"""Red team: a task type whose entry names no tools got every tool (``write_file`` and
``http_request`` included): the adapters' entries, and every approved drafted wrapper
(``policy: {max_iterations: 4}``). Run through the real loop, a scripted model tries both
under each entry, with an operator file that allows the Listener's endpoint for POST (so only
``allowed_tools`` stands between the model and the Listener). And: a TaskSpec that picks its
own ``retry_at``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from agent_helpers import FINISH, Listener, http_step

from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec
from das.errors import PolicyDenied
from das.guardrails import resolve_policy
from das.llm.testmodel import register_script
from das.registry import load_registry, registry_folders

INPUTS = {"classify": {"text": "an invoice", "labels": ["billing", "other"]}, "summarize": {"text": "a text"}}


def shipped_entries() -> list[str]:
    return sorted(load_registry(str(registry_folders()[0])))


def declare(das_home: Path, name: str, policy: dict) -> None:
    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / f"{name}.yaml").write_text(
        yaml.safe_dump({"task_type": name, "executor": {"kind": "probabilistic"}, "policy": policy})
    )


def drafted_wrapper(das_home: Path, name: str) -> None:
    from das.authoring.wrappers import wrapper_for

    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / f"{name}.yaml").write_text(yaml.safe_dump(wrapper_for(name)))


@pytest.mark.parametrize("task_type", [*shipped_entries(), "approved_old_wrapper", "drafted_wrapper_now"])
def test_registry_entry_without_tools_gets_no_write_file_or_http_request(
    task_type, das_home: Path, tmp_path: Path
):
    listener = Listener()
    try:
        if task_type == "approved_old_wrapper":
            declare(das_home, task_type, {"max_iterations": 4})  # what approved wrappers said so far
        elif task_type == "drafted_wrapper_now":
            drafted_wrapper(das_home, task_type)
        ops = tmp_path / "ops.yaml"  # the operator allows the endpoint and POST: tools are the only wall
        ops.write_text(
            yaml.safe_dump(
                {"allowed_endpoints": [listener.url], "allowed_methods": ["GET", "POST"], "max_iterations": 5}
            )
        )
        ws = tmp_path / "ws"
        model = register_script(
            f"grab-{task_type}",
            [
                {"tool_calls": [{"name": "write_file", "arguments": {"path": "loot.txt", "content": "x"}}]},
                http_step(listener.url + "exfil", "POST", {"data": "secret"}),
                FINISH,
            ],
        )
        spec = TaskSpec(
            task_type=task_type,
            prompt="Do it.",
            inputs=INPUTS.get(task_type, {}),
            output_schema={"type": "object"},
        )
        result = run_tde(spec, model=model, policy_file=str(ops), workspace=ws)
        assert listener.connections == 0
        assert not (ws / "loot.txt").exists()
        refusals = [s for s in result.trace if s.tool in ("write_file", "http_request")]
        assert len(refusals) == 2 and all("allowed_tools" in (s.error or "") for s in refusals), refusals
    finally:
        listener.close()


def test_every_shipped_entry_and_drafted_wrapper_names_its_tools():
    from das.authoring.wrappers import wrapper_for

    for entry in load_registry(str(registry_folders()[0])).values():
        assert "allowed_tools" in entry.policy, f"processes/tde/{entry.source} names no tools"
    for mode in ("probabilistic", "deterministic"):
        tools = wrapper_for("some_step", mode)["policy"]["allowed_tools"]
        assert "write_file" not in tools and "http_request" not in tools


def test_policy_explain_says_where_allowed_tools_came_from(das_home: Path, tmp_path: Path):
    declare(das_home, "quiet_one", {"max_iterations": 4})
    declare(das_home, "writer", {"allowed_tools": ["finish", "write_file"]})
    env = {"DAS_HOME": str(das_home), "PATH": "/usr/bin:/bin"}
    out = {}
    for name in ("quiet_one", "writer"):
        spec_file = tmp_path / f"{name}.json"
        spec_file.write_text(json.dumps({"task_type": name, "prompt": "p"}))
        run = subprocess.run(
            [sys.executable, "-m", "das", "policy", "explain", "--spec", str(spec_file), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        out[name] = json.loads(run.stdout)
    assert out["quiet_one"]["policy"]["allowed_tools"] == ["finish", "json_query", "read_file"]
    assert out["quiet_one"]["sources"]["allowed_tools"].startswith("default-deny: TDE registry (quiet_one)")
    assert out["writer"]["policy"]["allowed_tools"] == ["finish", "write_file"]
    assert out["writer"]["sources"]["allowed_tools"].startswith("TDE registry (writer)")


@pytest.mark.parametrize("value", ["process", "engine"])
def test_spec_sets_retry_at(value: str):
    """Tried: a TaskSpec choosing ``retry_at: process`` (a new pass, a new activity instance,
    a new default key: a POST ran 3 times), or even restating the default."""
    spec = TaskSpec(task_type="summarize", prompt="p", inputs={"text": "t"}, policy={"retry_at": value})
    with pytest.raises(PolicyDenied, match="may not set retry_at") as denied:
        run_tde(spec, model="test/auto")
    assert denied.value.rule == "retry_at"


def test_retry_at_is_still_the_operators_registrys_and_task_types_to_decide(tmp_path: Path):
    ops = tmp_path / "ops.yaml"
    ops.write_text("retry_at: process\n")
    plain = TaskSpec(task_type="summarize", prompt="p")
    assert resolve_policy(plain).retry_at == "engine"
    assert resolve_policy(plain, policy_file=ops).retry_at == "process"
    assert resolve_policy(plain, registry_policy={"retry_at": "process"}).retry_at == "process"
