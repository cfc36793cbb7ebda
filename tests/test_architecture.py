"""The shape of the package, checked: no import cycle among das modules, and the layer
contracts in pyproject.toml hold (the same check `lint-imports` runs in scripts/test.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def test_no_import_cycle_among_das_modules() -> None:
    graph = grimp.build_graph("das", include_external_packages=False)  # function-local imports count too
    cycles = sorted(
        {
            tuple(sorted((m, imp)))
            for m in graph.modules
            for imp in graph.find_modules_directly_imported_by(m)
            if m != imp and graph.chain_exists(importer=imp, imported=m)
        }
    )
    assert len(graph.modules) > 100
    assert cycles == [], cycles


def test_layer_contracts_hold() -> None:
    tool = shutil.which("lint-imports")
    assert tool, "import-linter is a test dependency (pip install -e '.[test]')"
    out = subprocess.run([tool], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "0 broken" in out.stdout and "3 kept" in out.stdout


def test_every_function_local_import_says_why() -> None:
    """Imports inside functions remain only for a reason written beside them (lazy CLI loading,
    a heavy optional dependency, typing only); everything else is imported at module level."""
    import re

    unexplained, count = [], 0
    for path in sorted((REPO / "das").rglob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^\s+(from das[\w.]* import|import das)", line):
                count += 1
                before = lines[i - 1].strip() if i else ""
                if "#" not in line and not before.startswith("#"):
                    unexplained.append(f"{path.relative_to(REPO)}:{i + 1}")
    assert unexplained == [], unexplained
    assert count <= 15, (
        count
    )  # 174 before the layers were written down, 80 before das/commands hoisted its own
