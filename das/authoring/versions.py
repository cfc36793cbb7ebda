"""Semantic versions for process keys: a change is always a minor bump of its base."""

from __future__ import annotations

import re

from das.errors import InvalidInput

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse(version: str) -> tuple[int, int, int]:
    match = _SEMVER.match(version or "")
    if not match:
        raise InvalidInput(f"version {version!r} is not semver MAJOR.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def minor_bump(version: str) -> str:
    major, minor, _ = parse(version)
    return f"{major}.{minor + 1}.0"


def latest(versions: list[str]) -> str | None:
    return max(versions, key=parse) if versions else None


def split_ref(ref: str) -> tuple[str, str | None]:
    """``invoice@1.2.0`` -> ("invoice", "1.2.0"); ``invoice`` -> ("invoice", None)."""
    key, _, version = ref.partition("@")
    if not key:
        raise InvalidInput(f"base {ref!r} must look like KEY@VERSION")
    if version:
        parse(version)
    return key, version or None
