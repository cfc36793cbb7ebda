"""Keep secrets out of logs and traces: values of secret-looking env vars are masked."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)


def secret_values() -> list[str]:
    return sorted((v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6), key=len, reverse=True)


def scrub(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, "[SECRET]")
    return text
