"""Proven principals for tests of the rules (not of the proof): the user exists in the store."""

from __future__ import annotations

from das.errors import UsageError
from das.identity import Principal, Role, Users


def proven(name: str, role: Role = "reviewer") -> Principal:
    """``name`` as a registered, active DAS user of ``role`` in the current $DAS_HOME store."""
    try:
        Users().add(name, role)
    except UsageError:
        pass  # already there
    return Principal(name, role, "token")
