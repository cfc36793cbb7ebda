"""Prompt templates live in ``prompts/`` as files, versioned with the code."""

from __future__ import annotations

from functools import lru_cache
from string import Template

from das.config import resource_dir


@lru_cache(maxsize=32)
def _template(name: str) -> Template:
    return Template((resource_dir("prompts") / f"{name}.md").read_text())


def render(name: str, **values: str) -> str:
    """Fill ``$placeholders``; a missing value is a bug, so it raises KeyError."""
    return _template(name).substitute(**values).strip()
