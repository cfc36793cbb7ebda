"""Regenerate processes/*.bpmn from the authoring-form sources in processes/src/*.json.

Run from the repository root: ``python processes/build.py`` (``--check`` fails if any
.bpmn is out of date, for CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

from das.bpmn.compile import compile_to_xml

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for src in sorted((HERE / "src").glob("*.json")):
        out = HERE / f"{src.stem}.bpmn"
        xml = compile_to_xml(src.read_text(encoding="utf-8"))
        if check:
            if not out.exists() or out.read_text(encoding="utf-8") != xml:
                stale.append(out.name)
        else:
            out.write_text(xml, encoding="utf-8")
            print(f"wrote {out.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python processes/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
