"""Mutation fuzzing: broken, odd and hostile variants of real BPMN never crash DAS.

Seeds: the MIWG reference models, DAS's own processes and the generated Camunda extension
corpus. Each mutant gets 1-4 mutations (drop / duplicate / retarget elements and attributes,
insert unknown extension elements, break ids, swap namespaces, mix BPMN prefixes, garbage
expressions, truncate) and must come out of validate, simulate and diff as a report (or, for
the CLI, a clean exit 4), never an exception, within a time bound.
``DAS_FUZZ_EXAMPLES`` sets the number of mutants (CI: the default below).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from das.bpmn.diff import diff
from das.bpmn.parse import parse
from das.bpmn.safexml import BpmnParseError
from das.bpmn.simulate import simulate_xml
from das.bpmn.validate import validate
from das.cli import main

HERE = Path(__file__).parent
REPO = HERE.parents[1]
MIWG = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"
sys.path.insert(0, str(HERE))
import extension_generator as gen  # noqa: E402

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
EXAMPLES = int(os.environ.get("DAS_FUZZ_EXAMPLES", "600"))
SECONDS_PER_MUTANT = 15.0
REF_ATTRS = (
    "sourceRef",
    "targetRef",
    "attachedToRef",
    "default",
    "processRef",
    "bpmnElement",
    "calledElement",
    "messageRef",
    "errorRef",
    "signalRef",
)
GARBAGE = (
    "",
    " ",
    "${",
    "${a >}",
    "#{x.y()}",
    "PT5X",
    "R-1/PT1M",
    "\u00e9\u4e2d\u0000x".replace("\u0000", ""),
    "x" * 5000,
    "1 2",
    "-",
    "${" + "(" * 200 + "}",
    "<",
    "&amp;",
)
VENDORS = (
    ("http://www.signavio.com", "signavioMetaData"),
    ("http://www.bizagi.com/bpmn20", "BizagiExtensions"),
    ("http://camunda.org/schema/zeebe/1.0", "taskDefinition"),
    ("http://camunda.org/schema/1.0/bpmn", "taskListener"),
    ("http://camunda.org/schema/1.0/bpmn", "inputOutput"),
    ("urn:nobody", "thing"),
)
NAMESPACES = (
    "http://camunda.org/schema/1.0/bpmn",
    "http://www.omg.org/bpmn20",
    "urn:other",
    BPMN + "/",
    "http://www.omg.org/spec/BPMN/20100524/DI",
)


def _seeds() -> list[tuple[str, bytes]]:
    return [(Path(name).name, data) for name, data in gen.corpus(generated_every=6)]


SEEDS = _seeds()


def _parse_plain(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=False)
    return etree.fromstring(data, parser)


def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str) and e is not root]


def _mutate(draw: st.DrawFn, data: bytes) -> tuple[bytes, list[str]]:
    root = _parse_plain(data)
    done: list[str] = []
    text_ops: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        els = _elements(root)
        if not els:
            break
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "duplicate",
                    "retarget",
                    "drop_attr",
                    "garbage_attr",
                    "extension",
                    "break_id",
                    "swap_ns",
                    "garbage_text",
                    "mix_prefix",
                    "truncate",
                ]
            )
        )
        el = els[draw(st.integers(0, len(els) - 1))]
        parent = el.getparent()
        ids = [e.get("id") for e in els if e.get("id")]
        if op == "drop" and parent is not None:
            parent.remove(el)
        elif op == "duplicate" and parent is not None:
            parent.insert(parent.index(el) + 1, etree.fromstring(etree.tostring(el)))
        elif op == "retarget":
            refs = [(e, a) for e in els for a in REF_ATTRS if e.get(a) is not None]
            if refs:
                target, attr = refs[draw(st.integers(0, len(refs) - 1))]
                target.set(attr, draw(st.sampled_from(ids + ["nowhere", ""])) if ids else "nowhere")
        elif op == "drop_attr" and el.attrib:
            del el.attrib[draw(st.sampled_from(sorted(el.attrib)))]
        elif op == "garbage_attr":
            name = draw(st.sampled_from(sorted(el.attrib) + ["id", "name", "isExecutable", "cancelActivity"]))
            el.set(name, draw(st.sampled_from(GARBAGE)))
        elif op == "extension":
            ns, local = draw(st.sampled_from(VENDORS))
            holder = etree.SubElement(el, f"{{{BPMN}}}extensionElements") if draw(st.booleans()) else el
            etree.SubElement(holder, f"{{{ns}}}{local}", {"event": "create", "a": "1"})
        elif op == "break_id":
            el.set("id", draw(st.sampled_from(ids + ["", "1 bad", "id\u00e9"])) if ids else "")
        elif op == "swap_ns" and el.tag.startswith("{"):
            el.tag = "{" + draw(st.sampled_from(NAMESPACES)) + "}" + el.tag.split("}", 1)[1]
        elif op == "garbage_text":
            el.text = draw(st.sampled_from(GARBAGE))
        else:
            text_ops.append(op)
        done.append(op)
    out = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for op in text_ops:
        if op == "mix_prefix":  # the same namespace under another prefix, declared where it is used
            tags = list(re.finditer(rb"<([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)([^<>]*?)/>", out))
            if tags:
                m = tags[draw(st.integers(0, len(tags) - 1))]
                ns = root.nsmap.get(m.group(1).decode())
                if ns:
                    repl = b"<mix:" + m.group(2) + b' xmlns:mix="' + ns.encode() + b'"' + m.group(3) + b"/>"
                    out = out[: m.start()] + repl + out[m.end() :]
        elif op == "truncate" and len(out) > 10:
            out = out[: draw(st.integers(1, len(out) - 1))]
    return out, done


def _check_mutant(name: str, original: bytes, mutant: bytes, ops: list[str]) -> None:
    started = time.monotonic()
    report = validate(mutant, name=name)
    internal = [f.message for f in report.findings if f.rule == "internal-error"]
    assert not internal, (name, ops, internal)
    sim = simulate_xml(mutant, runs=2, max_steps=200)
    assert {"runs", "completed", "stuck", "coverage"} <= set(sim), (name, ops)
    try:
        after = parse(mutant, name=name)
    except BpmnParseError:
        after = None
    if after is not None:
        diff(parse(original, name=name), after)  # a report, whatever changed
        # DAS reads it as BPMN, so the simulator must too (or name what it cannot run)
        assert not [u for u in sim["unsupported"] if u["construct"] == "unparseable"], (
            name,
            ops,
            sim["unsupported"],
        )
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS_PER_MUTANT, (name, ops, elapsed)


@st.composite
def _mutants(draw: st.DrawFn, seed_index: int) -> tuple[bytes, list[str]]:
    """Mutants of ``SEEDS[seed_index]`` (an index, so hypothesis never prints the whole file)."""
    return _mutate(draw, SEEDS[seed_index][1])


def _fuzz_one_seed(index: int, examples: int, tried: list[tuple[str, list[str]]]) -> None:
    name, original = SEEDS[index]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        mutant, ops = data.draw(_mutants(index), label="mutant")
        _check_mutant(name, original, mutant, ops)
        tried.append((name, ops))

    run()


def test_mutants_of_real_bpmn_never_crash_validate_simulate_or_diff() -> None:
    assert SEEDS, "no seed BPMN: the generator, processes/ and the MIWG corpus all gave none"
    tried: list[tuple[str, list[str]]] = []
    per_seed = max(3, EXAMPLES // len(SEEDS))
    for index in range(len(SEEDS)):  # every seed gets its share of mutants
        _fuzz_one_seed(index, per_seed, tried)
    seeds_used = {name for name, _ in tried}
    kinds = {op for _, ops in tried for op in ops}
    print(f"\nfuzz: {len(tried)} mutants of {len(seeds_used)} seed files, mutation kinds: {sorted(kinds)}")
    assert len(tried) >= per_seed * len(SEEDS) * 0.9  # hypothesis really ran them, not a handful
    assert seeds_used == {name for name, _ in SEEDS}
    assert len(kinds) >= 10


def test_a_batch_of_mutants_through_the_cli_gives_one_report_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []

    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def make(data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(SEEDS) - 1))
        name = SEEDS[index][0]
        mutant, _ops = data.draw(_mutants(index))
        path = tmp_path / f"m{len(files):03d}_{name}"
        path.write_bytes(mutant)
        files.append(path)

    make()
    truncated = tmp_path / "truncated.bpmn"  # always at least one file that is no longer BPMN
    truncated.write_bytes(SEEDS[0][1][:200])
    files.append(truncated)
    with pytest.raises(SystemExit) as done:
        main(["bpmn", "validate", "--format", "json", *map(str, files)])
    out, err = capsys.readouterr()
    assert done.value.code in (0, 1)
    reports = json.loads(out)
    assert [r["file"] for r in reports] == [str(p) for p in files]
    assert "Traceback" not in err
    assert any(f["rule"].startswith("xml") for f in reports[-1]["findings"])
    # diff of a file that is not BPMN any more: one clear line, exit 4
    with pytest.raises(SystemExit) as done:
        main(["bpmn", "diff", str(truncated), str(truncated)])
    _out, err = capsys.readouterr()
    assert done.value.code == 4 and err.startswith("error: ") and "Traceback" not in err
