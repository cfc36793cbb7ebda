"""parse -> write keeps everything: byte-stable for DAS's own output, semantically identical
(same elements, attributes, extension elements, DI, comments) for every corpus file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lxml import etree

from das.bpmn.compile import compile_to_xml
from das.bpmn.parse import parse
from das.bpmn.write import to_bytes

HERE = Path(__file__).parent
REPO = HERE.parents[1]
MIWG = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"
sys.path.insert(0, str(HERE))
import extension_generator as gen  # noqa: E402


def _canonical(data: bytes) -> bytes:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.tostring(etree.fromstring(data, parser).getroottree(), method="c14n2", with_comments=True)


def _corpus() -> list[tuple[str, bytes]]:
    return gen.corpus()


CORPUS = _corpus()


def test_every_corpus_file_round_trips_semantically() -> None:
    assert len(CORPUS) > 100
    changed = []
    for name, data in CORPUS:
        written = to_bytes(parse(data, name=name))
        if _canonical(written) != _canonical(data):
            changed.append(name)
        assert to_bytes(parse(written, name=name)) == written, name  # and stable from then on
    assert not changed, changed


@pytest.mark.parametrize(
    "case", sorted((REPO / "evals" / "authoring" / "cases").glob("*.json"))[:8], ids=lambda p: p.stem
)
def test_das_output_round_trips_byte_for_byte(case: Path) -> None:
    xml = compile_to_xml(json.loads(case.read_text())["reference"]).encode()
    assert to_bytes(parse(xml, name=case.name)) == xml
