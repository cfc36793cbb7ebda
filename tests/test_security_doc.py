"""docs/SECURITY.md names the test that proves each boundary; every named test must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
AUDIENCES = ("A task spec", "A model reply", "A proposal", "A reviewer", "An operator")


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_test_named_in_security_md_exists() -> None:
    text = (ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    named = REFERENCE.findall(text)
    assert len(named) >= 40, f"SECURITY.md names only {len(named)} tests"
    missing = []
    cache: dict[str, set[str]] = {}
    for file, name in named:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
            continue
        if name not in cache.setdefault(file, _defined_tests(path)):
            missing.append(f"{file}::{name}")
    assert not missing, "SECURITY.md names tests that do not exist: " + ", ".join(missing)


def test_security_md_has_a_section_per_audience_each_naming_tests() -> None:
    text = (ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    for audience in AUDIENCES:
        body = next((s for s in sections if s.startswith(audience)), None)
        assert body is not None, f"no section for {audience!r}"
        assert REFERENCE.search(body), f"the section {audience!r} names no test"
