"""das/bpmn/ns.py is the only place a namespace URI is spelled, and ``local`` is defined once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lxml import etree

from das.bpmn import ns

DAS = Path(__file__).resolve().parents[2] / "das"
NS_FILE = DAS / "bpmn" / "ns.py"


def _sources() -> list[Path]:
    return [p for p in DAS.rglob("*.py") if "node_modules" not in p.parts and p != NS_FILE]


def _uris() -> set[str]:
    return {v for k, v in vars(ns).items() if k.isupper() and isinstance(v, str) and "://" in v}


def test_every_namespace_uri_is_spelled_only_in_ns_py() -> None:
    uris = _uris()
    assert ns.BPMN_NS in uris and ns.CAMUNDA_NS in uris and len(uris) >= 14
    pattern = re.compile("|".join(re.escape(u) for u in sorted(uris, key=len, reverse=True)), re.I)
    found = [
        f"{p.relative_to(DAS.parent)}:{n}: {m.group(0)}"
        for p in _sources()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        for m in [pattern.search(line)]
        if m
    ]
    assert found == [], "namespace URIs outside das/bpmn/ns.py (import them from there):\n" + "\n".join(found)


def test_no_other_module_defines_a_local_name_helper() -> None:
    defined = [
        f"{p.relative_to(DAS.parent)}:{node.lineno}"
        for p in _sources()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
        and node.name.lstrip("_") == "local"
        and [a.arg for a in node.args.args] == ["el"]
    ]
    assert defined == [], f"import das.bpmn.ns.local instead: {defined}"


def test_local_names_elements_comments_and_plain_tags() -> None:
    root = etree.fromstring(f'<d xmlns:b="{ns.BPMN_NS}"><b:task/><!-- note --><plain/></d>'.encode())
    assert [ns.local(el) for el in root] == ["task", "", "plain"]


def test_prefix_maps_are_inverse_for_every_canonical_prefix() -> None:
    assert {ns.PREFIX_NS[p]: p for p in ns.PREFIX_NS} == {
        u: p for u, p in ns.KNOWN_PREFIXES.items() if u != ns.ACTIVITI_NS
    }
