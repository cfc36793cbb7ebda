"""Idempotency keys as data: a key names a task only inside its owner's namespace.

A TaskSpec's key is written by whoever wrote the spec (a process author, an upstream system,
a CLI user), so it is never used as a path or as a store key directly. DAS stores results,
side-effect claims and workspaces under ``scoped_key(namespace, key)``: a sha256 digest of the
namespace (who may use the key, proven by the engine or the authenticated principal) and the
key. Another owner's same key is another digest, and no key can spell a path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from das.config import das_home
from das.contracts import IDEMPOTENCY_KEY
from das.errors import InvalidInput


def check_key(key: str) -> str:
    """``key`` if it is a valid idempotency key, else ``InvalidInput`` (exit 4, an incident)."""
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput(
            f"invalid idempotency key {str(key)[:60]!r}: 1-200 characters of letters, digits and "
            "_ . : - starting with a letter or digit"
        )
    return key


def scoped_key(namespace: str, key: str) -> str:
    """The digest results, effects and workspaces live under (64 hex characters).

    The namespace is checked to be non-empty: an unscoped key would be shared by everyone.
    """
    if not namespace:
        raise ValueError("an idempotency key needs a namespace (its owner)")
    return hashlib.sha256(json.dumps([namespace, check_key(key)]).encode()).hexdigest()


def as_key(text: str) -> str:
    """A DAS-made key (engine ids, a correlation id) in the key alphabet: kept when valid,
    otherwise replaced by a digest of it, so two different texts never become one key."""
    if IDEMPOTENCY_KEY.fullmatch(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()


def is_scoped(value: str | None) -> bool:
    """Whether ``value`` is a scoped key digest (what the store and the workspaces are keyed by)."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def workspace_dir(scoped: str, root: Path | None = None) -> Path:
    """A task's file workspace: ``$DAS_HOME/workspaces/<digest>`` (never the home or above it)."""
    if not is_scoped(scoped):
        raise ValueError("a workspace is named by a scoped key digest")
    return (root or das_home()) / "workspaces" / scoped


def principal_namespace(name: str) -> str:
    """The namespace of CLI/API runs: the authenticated principal's canonical name."""
    if not name:
        raise ValueError("a principal namespace needs the principal's name")
    return f"principal:{name}"


__all__ = ["as_key", "check_key", "is_scoped", "principal_namespace", "scoped_key", "workspace_dir"]
