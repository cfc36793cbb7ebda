"""`das bpmn` on bad input: one clear line and exit 4, never a traceback (what was tried is named)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def das(*args):
    return subprocess.run([sys.executable, "-m", "das", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "content, expect",
    [
        ("plain text, not XML", "not well-formed XML"),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DOCTYPE"),
        ("<root><child/></root>", "BPMN"),
    ],
)
def test_simulate_rejects_non_bpmn_with_exit_4(tmp_path, content, expect):
    bad = tmp_path / "bad.bpmn"
    bad.write_text(content)
    out = das("bpmn", "simulate", str(bad))
    assert out.returncode == 4, out.stderr
    assert expect in out.stderr and "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_compile_to_an_unwritable_path_is_one_line(tmp_path):
    out = das(
        "bpmn",
        "compile",
        str(REPO / "processes" / "src" / "peo_example.json"),
        "-o",
        str(tmp_path / "missing-dir" / "x.bpmn"),
    )
    assert out.returncode == 4 and "cannot write" in out.stderr and "Traceback" not in out.stderr
