"""The CLI boundary, run as a real subprocess: exit codes, one-line errors, JSON output."""

import json
import subprocess
import sys

SPEC = {
    "task_type": "greet",
    "prompt": "Say hello",
    "output_schema": {
        "type": "object",
        "properties": {"greeting": {"type": "string"}},
        "required": ["greeting"],
    },
}


def das(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "das", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_version_and_help():
    assert das("--version").stdout.startswith("das, version")
    out = das("--help").stdout
    assert "tde" in out and "schema" in out and "Exit codes" in out


def test_schema_prints_json_schema():
    out = das("schema", "TaskSpec")
    assert out.returncode == 0
    assert "task_type" in json.loads(out.stdout)["properties"]
    bad = das("schema", "Nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown contract")


def test_tde_list_json():
    out = das("tde", "list", "--format", "json")
    rows = json.loads(out.stdout)
    assert {r["task_type"] for r in rows} >= {"summarize", "classify", "http_fetch"}


def test_tde_run_success_json_and_exit_codes():
    ok = das(
        "tde",
        "run",
        "--spec",
        "-",
        "--model",
        "test/auto",
        "--format",
        "json",
        "--quiet",
        stdin=json.dumps(SPEC),
    )
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["status"] == "succeeded" and result["outputs"] == {"greeting": "x"}
    assert ok.stderr == ""  # --quiet
    loop = das(
        "tde",
        "run",
        "--spec",
        "-",
        "--model",
        "test/loop",
        "--format",
        "json",
        stdin=json.dumps({**SPEC, "policy": {"max_iterations": 2}}),
    )
    assert loop.returncode == 3 and json.loads(loop.stdout)["stop_reason"] == "max_iterations"


def test_bad_inputs_are_one_line_errors_never_tracebacks(tmp_path):
    cases = [
        ("{not json", 4, "not JSON"),
        (json.dumps({**SPEC, "policy": {"max_iterationz": 1}}), 4, "unknown policy key"),
        (json.dumps({"task_type": "x"}), 4, "prompt: required"),
    ]
    for stdin, code, text in cases:
        out = das("tde", "run", "--spec", "-", "--model", "test/auto", stdin=stdin)
        assert out.returncode == code, (stdin, out.stderr)
        assert text in out.stderr and "Traceback" not in out.stderr
    missing = das("tde", "run", "--spec", str(tmp_path / "nope.json"))
    assert missing.returncode == 4 and "cannot read spec" in missing.stderr
    usage = das("tde", "run")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
