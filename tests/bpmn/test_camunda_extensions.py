"""Camunda extension elements anywhere: read, checked where Camunda reads them, round-tripped.

The generated corpus (``extension_generator``) puts every Camunda 7 extension element in every
place the Camunda moddle descriptor allows, plus vendor extensions where nobody expects them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from needs import missing

from das.bpmn.parse import parse
from das.bpmn.rules_camunda_ext import ALLOWED_IN
from das.bpmn.validate import validate
from das.bpmn.write import to_bytes

sys.path.insert(0, str(Path(__file__).parent))
import extension_generator as gen  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated() -> list[gen.Generated]:
    if not gen.CAMUNDA_JSON.is_file() or not gen.BPMN_JSON.is_file():
        missing(
            "DAS_REQUIRE_NODE_TOOLS",
            "tools/node/node_modules lacks the moddle descriptors "
            "(scripts/install.sh runs npm ci --prefix tools/node)",
        )
    docs = gen.generate()
    assert len(docs) > 100  # every placement of 12 Camunda elements, plus the vendor ones
    return docs


def test_placement_table_restates_the_camunda_descriptor(generated: list[gen.Generated]) -> None:
    from_descriptor = gen.placements()
    assert set(from_descriptor) == set(ALLOWED_IN)
    for tag, hosts in from_descriptor.items():
        mine = ALLOWED_IN[tag]
        assert (mine is None) == (hosts == {"*"}), tag
        if mine is not None:
            assert set(mine) == hosts, (tag, sorted(set(mine) ^ hosts))


def test_every_generated_file_validates_without_internal_or_placement_findings(
    generated: list[gen.Generated],
) -> None:
    bad = {}
    for g in generated:
        report = validate(g.xml.encode(), name=g.name)
        rules = {f.rule for f in report.findings}
        wrong = rules & {"internal-error", "camunda.extension-placement", "camunda.extension", "xml.syntax"}
        if wrong:
            bad[g.name] = [f.message for f in report.findings if f.rule in wrong]
    assert not bad, bad


def test_every_extension_is_recorded_where_it_sits(generated: list[gen.Generated]) -> None:
    for g in generated:
        defs = parse(g.xml.encode(), name=g.name)
        sites = [s for s in defs.extension_sites if s.type == g.host]
        assert sites and sites[0].extensions, g.name
        if g.extension != "vendor":
            assert any(e.tag == f"camunda:{g.extension}" for s in sites for e in s.extensions), g.name


def test_round_trip_is_byte_stable_and_keeps_every_extension(generated: list[gen.Generated]) -> None:
    for g in generated:
        once = to_bytes(parse(g.xml.encode(), name=g.name))
        twice = to_bytes(parse(once, name=g.name))
        assert once == twice, g.name
        assert etree.tostring(etree.fromstring(once), method="c14n") == etree.tostring(
            etree.fromstring(g.xml.encode()), method="c14n"
        ), g.name


def test_generated_files_import_cleanly_in_bpmn_io(generated: list[gen.Generated], tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node missing although the node tools are installed")
    camunda_only = [g for g in generated if g.extension != "vendor"]
    paths = []
    for g in camunda_only:
        path = tmp_path / f"{g.name}.bpmn"
        path.write_text(g.xml)
        paths.append(path)
    out = subprocess.run(
        [node, str(REPO / "tools" / "node" / "moddle_import.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(out.stdout)
    assert len(results) == len(paths)
    warned = {r["file"]: r["warnings"] for r in results if r.get("warnings")}
    assert not warned, warned  # the generator puts each element only where the descriptor allows it


BAD = {
    "listener without an implementation": (
        "serviceTask",
        '<camunda:executionListener event="start"/>',
        "camunda.extension",
        "exactly one of",
    ),
    "listener with two implementations": (
        "task",
        '<camunda:executionListener event="end" class="A" expression="${b}"/>',
        "camunda.extension",
        "has class, expression",
    ),
    "task listener with an unknown event": (
        "userTask",
        '<camunda:taskListener class="A" event="finish"/>',
        "camunda.extension",
        "not one of",
    ),
    "field without a value": (
        "serviceTask",
        '<camunda:field name="x"/>',
        "camunda.extension",
        "exactly one value",
    ),
    "retry cycle that is not a cycle": (
        "serviceTask",
        "<camunda:failedJobRetryTimeCycle>three times</camunda:failedJobRetryTimeCycle>",
        "camunda.extension",
        "not a retry cycle",
    ),
    "connector without an id": (
        "serviceTask",
        "<camunda:connector><camunda:inputOutput/></camunda:connector>",
        "camunda.extension",
        "connectorId",
    ),
    "form field without an id": (
        "userTask",
        '<camunda:formData><camunda:formField label="x"/></camunda:formData>',
        "camunda.extension",
        "no id",
    ),
    "camunda:in without a source": (
        "callActivity",
        '<camunda:in target="x"/>',
        "camunda.extension",
        "needs source",
    ),
    "task listener on a service task": (
        "serviceTask",
        '<camunda:taskListener class="A" event="create"/>',
        "camunda.extension-placement",
        "ignored",
    ),
    "form data on a gateway": (
        "exclusiveGateway",
        '<camunda:formData><camunda:formField id="a"/></camunda:formData>',
        "camunda.extension-placement",
        "ignored",
    ),
    "field inside a listener without a value": (
        "task",
        '<camunda:executionListener class="A" event="start"><camunda:field name="f"/></camunda:executionListener>',
        "camunda.extension",
        "exactly one value",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_camunda_extension_problems_are_found(case: str) -> None:
    host, ext, rule, words = BAD[case]
    xml = gen.host_document(host, ext)
    assert xml is not None
    report = validate(xml.encode(), name=case)
    hits = [f for f in report.findings if f.rule == rule]
    assert hits and words in hits[0].message, [f"{f.rule}: {f.message}" for f in report.findings]
    assert hits[0].element == "h"
    if rule == "camunda.extension":
        assert hits[0].severity == "error" and not report.valid  # Camunda would refuse the deployment


def test_sequence_flow_with_camunda_properties_is_read_not_a_crash() -> None:
    xml = gen.host_document("sequenceFlow", gen.CONTENT["properties"])
    assert xml is not None
    defs = parse(xml.encode(), name="flow.bpmn")
    assert defs.flows["h"].properties == {"k": "v"}
    report = validate(xml.encode(), name="flow.bpmn")
    assert report.valid and not [f for f in report.findings if f.rule == "internal-error"]
