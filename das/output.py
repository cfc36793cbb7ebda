"""Printing: data to stdout (text or ``--format json``), progress to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def progress(message: str) -> None:
    """Progress for humans goes to stderr, so stdout stays machine-readable."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def emit(data: Any, fmt: str, text: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as JSON (stable keys) or through the ``text`` renderer."""
    if fmt == "json" or text is None:
        print(json.dumps(to_jsonable(data), indent=2, sort_keys=False, default=str))
    else:
        print(text(data))
