"""Keep secrets out of logs and traces: values of secret-looking env vars are masked.

A secret leaks in many spellings: raw, JSON-escaped (inside a JSON string), URL-encoded
(in a query string), base64 (in a header or a blob). Each value is masked in all of them.
"""

from __future__ import annotations

import base64
import json
import os
import re
from urllib.parse import quote, quote_plus

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)


_cache: tuple[int, list[str]] = (-1, [])


def spellings(value: str) -> set[str]:
    """The forms in which ``value`` may appear in a JSON trace or a log line."""
    raw = value.encode()
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
        quote(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    }
    forms |= {raw.hex(), raw.hex().upper()}
    for k in (1, 2):  # inside a longer base64 blob (e.g. Basic "user:SECRET") at each alignment
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            enc = encode(b"\0" * k + raw).decode().rstrip("=")
            whole_groups = (len(raw) + k) // 3 * 4
            forms.add(enc[4:whole_groups])  # the groups made only of the secret's bytes
    forms.add(base64.b64encode(raw).decode()[: len(raw) // 3 * 4])
    forms |= {json.dumps(f)[1:-1] for f in list(forms)}  # any of them again inside a JSON string
    return {f for f in forms if len(f) >= 8}


def secret_values() -> list[str]:
    """Every spelling of every secret-looking variable's value, longest first."""
    global _cache
    marker = hash(frozenset(os.environ.items()))
    if marker != _cache[0]:
        values: set[str] = set()
        for k, v in os.environ.items():
            if _SECRET_NAME.search(k) and len(v) >= 6:
                values |= spellings(v)
        _cache = (marker, sorted(values, key=len, reverse=True))
    return _cache[1]


def scrub(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, "[SECRET]")
    return text
