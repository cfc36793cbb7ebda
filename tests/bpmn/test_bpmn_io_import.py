"""DAS's BPMN read by bpmn-io's own parser (bpmn-moddle + camunda-bpmn-moddle, what bpmn-js and
Camunda Modeler use): no import warnings, and a DI shape or edge for every flow element.
Covers processes/*.bpmn, the all-features fixture and every eval reference model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from needs import missing

from das.bpmn.compile import compile_to_xml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "node" / "moddle_import.mjs"


@pytest.fixture(scope="module")
def node_tools() -> str:
    node = shutil.which("node")
    ready = node and (REPO / "tools" / "node" / "node_modules" / "bpmn-moddle").is_dir()
    if not ready:
        missing(
            "DAS_REQUIRE_NODE_TOOLS",
            "node or tools/node/node_modules is missing (scripts/install.sh runs npm ci --prefix tools/node)",
        )
    return node


def import_with_bpmn_io(node: str, files: list[Path]) -> list[dict]:
    out = subprocess.run(
        [node, str(SCRIPT), *map(str, files)], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout)


def compiled_sources(tmp_path: Path) -> list[Path]:
    docs = [json.loads((REPO / "tests" / "bpmn" / "authoring_all_features.json").read_text())]
    docs += [
        json.loads(p.read_text())["reference"]
        for p in sorted((REPO / "evals" / "authoring" / "cases").glob("*.json"))
    ]
    files = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"doc{i}_{doc['key']}.bpmn"
        path.write_text(compile_to_xml(doc))
        files.append(path)
    return files


def test_reference_and_compiled_processes_import_cleanly_with_full_di(node_tools, tmp_path):
    files = sorted((REPO / "processes").glob("*.bpmn")) + compiled_sources(tmp_path)
    assert len(files) >= 20
    for entry in import_with_bpmn_io(node_tools, files):
        assert entry["error"] is None, entry
        assert entry["warnings"] == [], entry
        assert entry["missing_di"] == [], entry
        assert entry["elements"] > 0, entry


def test_the_check_catches_a_dangling_reference_and_a_missing_shape(node_tools, tmp_path):
    xml = compile_to_xml({"key": "k", "name": "K", "steps": [{"type": "user", "name": "Review"}]})
    broken = xml.replace('targetRef="end"', 'targetRef="nowhere"', 1)
    broken = broken.replace('bpmnElement="s1"', 'bpmnElement="s1_gone"', 1)
    path = tmp_path / "broken.bpmn"
    path.write_text(broken)
    [entry] = import_with_bpmn_io(node_tools, [path])
    assert any("nowhere" in w for w in entry["warnings"])
    assert "s1" in entry["missing_di"]
