"""Names that must compare safely: people and task types.

A person's name is compared in one canonical form, so lookalikes (``Alice``, ``alice ``,
``ali\u200bce``, full-width letters) are one person. A task type becomes a file name and a
topic, so it must be a plain identifier before anything is written.
"""

from __future__ import annotations

import re
import unicodedata

TASK_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
_TASK_TYPE = re.compile(TASK_TYPE_PATTERN)
_INVISIBLE = re.compile(r"[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")


def identity(name: str | None) -> str:
    """The comparable form of a person's name: NFKC, invisible characters dropped, casefolded,
    inner whitespace collapsed. ``Alice``, ``alice `` and ``ali\u200bce`` are one person."""
    text = unicodedata.normalize("NFKC", name or "")
    text = _INVISIBLE.sub("", text)
    return " ".join(text.split()).casefold()


def is_task_type(name: str) -> bool:
    """``^[a-z][a-z0-9_.-]{0,63}$`` and no ``..``: safe as a file name and a topic suffix."""
    return bool(_TASK_TYPE.fullmatch(name)) and ".." not in name


def task_type_problem(name: str) -> str | None:
    if is_task_type(name):
        return None
    return (
        f"task type {name[:80]!r} is not an identifier: a lower-case letter, then up to 63 lower-case "
        "letters, digits, '_', '.', '-' (no '..', no '/')"
    )
