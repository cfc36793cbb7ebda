"""Keep secrets out of logs and traces: values of secret-looking env vars are masked."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)


_cache: tuple[int, list[str]] = (-1, [])


def secret_values() -> list[str]:
    """Values of secret-looking variables, longest first (recomputed when the env changes)."""
    global _cache
    marker = hash(frozenset(os.environ.items()))
    if marker != _cache[0]:
        values = sorted((v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6),
                        key=len, reverse=True)
        _cache = (marker, values)
    return _cache[1]


def scrub(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, "[SECRET]")
    return text
