"""Fault isolation: a bug met on one file becomes that file's finding, never a lost batch.

Why: a user validating 50 files must get 50 reports even when DAS trips over something in
one of them. The exception is not swallowed: it becomes an ``internal-error`` finding
(severity error, so the command exits 1) that names the exception type and the element DAS
was working on, and stderr names the file. A test over the corpora fails CI whenever any
file produces one, so a bug stays a bug.
"""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any

from das.bpmn.rules import Finding
from das.output import progress

RULE = "internal-error"


def _element_id(value: Any) -> str | None:
    """The id of a model element or lxml element, if ``value`` is one (a whole ``Definitions``
    or ``Process`` is too coarse to point at, so it does not count)."""
    ident = getattr(value, "id", None)
    if isinstance(ident, str) and ident and type(value).__module__.startswith("das.bpmn"):
        return None if type(value).__name__ in ("Definitions", "Process") else ident
    get = getattr(value, "get", None)
    if callable(get) and hasattr(value, "tag") and isinstance(getattr(value, "tag", None), str):
        found = get("id")
        return found if isinstance(found, str) and found else None
    return None


def element_of(exc: BaseException) -> str | None:
    """The element DAS was on when ``exc`` was raised: the innermost frame holding a model
    object or XML element (a rule's ``node``, ``flow`` or ``el``)."""
    frames: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for frame in reversed(frames):
        if "/das/" not in frame.tb_frame.f_code.co_filename.replace("\\", "/"):
            continue
        for value in frame.tb_frame.f_locals.values():
            ident = _element_id(value)
            if ident:
                return ident
    return None


def where(exc: BaseException) -> str:
    """``file.py:line in function`` of the innermost DAS frame (for the bug report)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/das/" in f.filename.replace("\\", "/")]
    if not frames:
        return "outside DAS"
    last = frames[-1]
    return f"{last.filename.rsplit('/das/', 1)[-1]}:{last.lineno} in {last.name}"


def internal_error(exc: BaseException, file: str, stage: str) -> Finding:
    """The finding for an unexpected exception while ``stage`` ran on ``file``; also names the
    file on stderr."""
    element = element_of(exc)
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
    progress(f"{file}: internal error during {stage}: {detail} (at {where(exc)})")
    return Finding(
        rule=RULE,
        severity="error",
        element=element,
        message=f"DAS failed during {stage}: {detail} (das/{where(exc)}). This is a bug in DAS, "
        "not in your file; the other checks still ran. Please report it with this file.",
    )


__all__ = ["RULE", "element_of", "internal_error", "where"]
