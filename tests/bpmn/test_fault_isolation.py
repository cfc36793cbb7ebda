"""One file that trips a DAS bug never hides the reports of the others (validate, simulate,
diff, compile), and no corpus file trips one at all."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from das.bpmn import model as m
from das.bpmn.compile import compile_to_xml
from das.bpmn.simulate import simulate_file
from das.bpmn.validate import validate
from das.cli import main

HERE = Path(__file__).parent
REPO = HERE.parents[1]
MIWG = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"
sys.path.insert(0, str(HERE))
import extension_generator as gen  # noqa: E402

ALL = json.loads((HERE / "authoring_all_features.json").read_text())


def run_das(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), json.loads(out) if out.strip() else None, err


@pytest.fixture()
def three_files(tmp_path: Path) -> list[Path]:
    good = tmp_path / "good.bpmn"
    good.write_text(compile_to_xml(ALL))
    buggy = tmp_path / "buggy.bpmn"
    buggy.write_text(compile_to_xml(ALL).replace('"s2"', '"boom"'))  # the element the bug meets
    broken = tmp_path / "broken.bpmn"
    broken.write_text("<definitions><process")
    return [good, buggy, broken]


def test_a_rule_that_crashes_on_one_file_is_that_files_finding(
    three_files: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = m.FlowNode.camunda

    def crashing(self: m.FlowNode, name: str) -> str | None:
        if self.id == "boom":
            raise AttributeError(
                "'SequenceFlow' object has no attribute 'properties'"
            )  # the kind the issue met
        return real(self, name)

    monkeypatch.setattr(m.FlowNode, "camunda", crashing)
    code, reports, err = run_das(capsys, "bpmn", "validate", "--format", "json", *map(str, three_files))
    assert code == 1
    by_file = {Path(r["file"]).name: r for r in reports}
    assert set(by_file) == {"good.bpmn", "buggy.bpmn", "broken.bpmn"}
    assert not [f for f in by_file["good.bpmn"]["findings"] if f["rule"] == "internal-error"]
    internal = [f for f in by_file["buggy.bpmn"]["findings"] if f["rule"] == "internal-error"]
    assert internal and all("AttributeError" in f["message"] for f in internal)
    assert {f["element"] for f in internal} == {"boom"}  # the element DAS was on, in each rule group it broke
    # the rule groups that did not meet the bug still ran on the buggy file: diagram rules, say
    rules = {k: {f["rule"] for f in by_file[k]["findings"]} for k in ("good.bpmn", "buggy.bpmn")}
    assert {r for r in rules["good.bpmn"] if r.startswith("di.")} <= rules["buggy.bpmn"]
    assert any(f["rule"].startswith("xml") for f in by_file["broken.bpmn"]["findings"])
    assert "buggy.bpmn" in err and "internal error" in err and "Traceback" not in err


def test_simulate_reports_every_file_when_one_crashes_or_is_broken(
    three_files: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import das.commands.bpmn_build as s  # where `das bpmn simulate` looks it up

    real = s.simulate_file

    def crashing(path: Any, **kw: Any) -> dict[str, Any]:
        if str(path).endswith("buggy.bpmn"):
            raise KeyError("flow_x")
        return real(path, **kw)

    monkeypatch.setattr(s, "simulate_file", crashing)
    missing = three_files[0].parent / "missing.bpmn"
    code, results, err = run_das(
        capsys, "bpmn", "simulate", "--runs", "2", "--format", "json", *map(str, three_files), str(missing)
    )
    assert code == 1
    by_file = {Path(r["file"]).name: r for r in results}
    assert set(by_file) == {"good.bpmn", "buggy.bpmn", "broken.bpmn", "missing.bpmn"}
    assert by_file["good.bpmn"]["runs"] == 2 and by_file["good.bpmn"]["completed"] == 2
    assert by_file["buggy.bpmn"]["findings"][0]["rule"] == "internal-error"
    assert "KeyError" in by_file["buggy.bpmn"]["findings"][0]["message"]
    assert by_file["broken.bpmn"]["findings"][0]["rule"].startswith("xml")
    assert by_file["missing.bpmn"]["findings"][0]["rule"] == "xml.missing"
    assert "buggy.bpmn" in err and "Traceback" not in err


def test_diff_and_compile_turn_a_crash_into_a_finding(
    three_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import das.commands.bpmn as d  # where `das bpmn diff` looks it up
    import das.commands.bpmn_build as c  # where `das bpmn compile` looks it up

    monkeypatch.setattr(d, "diff", lambda a, b: {}["boom"])
    code, out, err = run_das(
        capsys, "bpmn", "diff", "--format", "json", str(three_files[0]), str(three_files[1])
    )
    assert code == 1 and out["findings"][0]["rule"] == "internal-error" and "Traceback" not in err

    def broken_compile(proc: Any) -> Any:
        raise ValueError("layout overflow")

    monkeypatch.setattr(c, "compile_process", broken_compile)
    src = tmp_path / "doc.json"
    src.write_text(json.dumps(ALL))
    code, out, err = run_das(
        capsys, "bpmn", "compile", "--format", "json", str(src), "-o", str(tmp_path / "o.bpmn")
    )
    assert code == 1 and "layout overflow" in out["findings"][0]["message"] and "Traceback" not in err


def _corpus() -> list[tuple[str, bytes]]:
    return gen.corpus()


def test_no_corpus_file_produces_an_internal_error(tmp_path: Path) -> None:
    """A bug stays a bug: fault isolation must not hide one from CI."""
    corpus = _corpus()
    assert len(corpus) > 100
    bad = {}
    for name, data in corpus:
        found = [f.message for f in validate(data, name=name).findings if f.rule == "internal-error"]
        path = tmp_path / "sim.bpmn"
        path.write_bytes(data)
        res = simulate_file(path, runs=2)
        found += [u["element"] for u in res["unsupported"] if u["construct"] == "unparseable"]
        if found:
            bad[name] = found
    assert not bad, bad
