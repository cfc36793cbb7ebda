"""What the authoring agent is told about the world: task types, similar processes, known keys."""

from __future__ import annotations

import re
from functools import lru_cache

from das.config import resource_dir
from das.output import progress
from das.registry import load_registry
from das.store import open_store

_PROCESS_ID = re.compile(r"<(?:\w+:)?process\b[^>]*\bid=\"([^\"]+)\"")
_VERSION_TAG = re.compile(r"versionTag=\"([0-9]+\.[0-9]+\.[0-9]+)\"")


def task_type_lines() -> str:
    return "\n".join(
        f"- {t.task_type}: {t.description} ({t.executor.kind})" for t in load_registry().values()
    )


@lru_cache(maxsize=1)
def reference_processes() -> dict[str, str]:
    """Process key -> XML for every file in processes/ (a file's first process names it)."""
    out: dict[str, str] = {}
    for path in sorted(resource_dir("processes").glob("*.bpmn")):
        xml = path.read_text()
        for key in _PROCESS_ID.findall(xml):
            out.setdefault(key, xml)
    return out


def known_process_keys() -> set[str]:

    keys = set(reference_processes())
    keys |= {r[0] for r in open_store().db.execute("SELECT DISTINCT key FROM process_versions")}
    return keys


def seed_from_processes(queue) -> None:
    """Register each reference process as a base version (its versionTag, else 1.0.0)."""
    for key, xml in reference_processes().items():
        if queue.current_version(key) is None:
            tag = _VERSION_TAG.search(xml)
            queue.seed_version(key, tag.group(1) if tag else "1.0.0", xml)


def similar_context(prompt: str, k: int = 3) -> str:
    """Similar processes and task types from the retrieval index, if it is available."""
    try:
        # lazy: chromadb loads only when retrieval is used
        from das.retrieval import Index, index_processes, index_tde_registry
    except ImportError:
        return "(retrieval not installed)"
    try:
        index = Index.open()
        index_processes(resource_dir("processes"), index=index)
        index_tde_registry(index=index)
        hits = index.search(prompt, k=k)
    except TypeError:  # older signature without index=
        index = Index.open()
        hits = index.search(prompt, k=k)
    except Exception as exc:  # retrieval is advisory; drafting goes on without it
        progress(f"retrieval unavailable: {type(exc).__name__}: {exc}")
        return "(none)"
    return (
        "\n".join(
            f"- {h.kind} {h.id} (score {h.score:.2f}, {h.embedding}): {h.text_excerpt[:160]}" for h in hits
        )
        or "(none)"
    )


def similar_names(prompt: str, k: int = 2) -> str:
    """One line of similar process/task names: enough context for a small model's short prompt."""
    lines = [line.split(":", 1)[0].removeprefix("- ") for line in similar_context(prompt, k).splitlines()]
    return ", ".join(line.split(" (")[0] for line in lines if line.startswith(("process", "tde"))) or "none"
