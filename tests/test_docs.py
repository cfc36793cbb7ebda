"""The docs keep up with the code: every module is named, and no file cites one the repo lacks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
SKIP_DIRS = {"node_modules", "__pycache__", ".git", "build", "vendor"}
DOCS = [
    REPO / "README.md",
    REPO / "CONTRIBUTING.md",
    REPO / "CHANGELOG.md",
    *sorted((REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MD_PATH = re.compile(r"(?<![\w./-])([\w./-]*\w\.md)\b")


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def _modules() -> list[Path]:
    return [p.relative_to(REPO) for p in _files(REPO / "das", "*.py")]


def _named(module: Path, text: str) -> bool:
    """Named by its path, or by its file name on a line (a table row) that names its package
    (``das/bpmn/`` … ``juel.py``); a package's ``__init__.py`` by its folder."""
    if module.as_posix() in text or module == Path("das/__main__.py") and "`__main__`" in text:
        return True
    folder = module.parent.as_posix()
    if module.name == "__init__.py":
        return f"`{folder}/" in text or (folder == "das" and "`das`" in text)
    word = re.compile(rf"(?<![\w.]){re.escape(module.name)}(?!\w)")
    return folder != "das" and any(f"{folder}/" in line and word.search(line) for line in text.splitlines())


def test_architecture_names_every_module() -> None:
    text = ARCHITECTURE.read_text()
    modules = _modules()
    assert len(modules) > 100 and not _named(Path("das/bpmn/nowhere.py"), text)  # the check can fail
    missing = [m.as_posix() for m in modules if not _named(m, text)]
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"


def test_every_relative_link_in_the_docs_points_at_a_file_of_the_repo() -> None:
    broken, checked = [], 0
    for doc in DOCS:
        if not doc.exists():
            continue
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            checked += 1
            if not (doc.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert checked >= 5 and not broken, broken


def _exists(cited: str, citing: Path, basenames: set[str]) -> bool:
    if (REPO / cited).exists() or (citing.parent / cited).exists():
        return True
    return "/" not in cited and cited in basenames  # a bare name such as SECURITY.md


def test_no_file_cites_a_markdown_file_the_repo_does_not_have() -> None:
    """Module docstrings, tests, scripts and docs cite only documents that exist."""
    basenames = {p.name for p in _files(REPO, "*.md")}
    citing = [
        *_files(REPO / "das", "*.py"),
        *_files(REPO / "tests", "*.py"),
        *_files(REPO / "scripts", "*"),
        *_files(REPO / "bench", "*.py"),
        *[d for d in DOCS if d.exists()],
        REPO / "pyproject.toml",
    ]
    missing = [
        f"{path.relative_to(REPO)} cites {cited}"
        for path in citing
        if path.is_file()
        for cited in MD_PATH.findall(path.read_text(errors="replace"))
        if not _exists(cited, path, basenames)
    ]
    assert not missing, missing
