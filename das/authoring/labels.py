"""Label matching shared by drafting and the evals: how two activity names compare.

Why its own module: the outline snaps a model's task names to the ones a user gave, and the
evals align draft labels to reference labels; both need the same tokenizer and Jaccard score,
and neither may import the other.
"""

from __future__ import annotations

import re

JACCARD_MIN = 0.5
ACTIVITY_FAMILY = {
    "task": "task",
    "serviceTask": "task",
    "userTask": "task",
    "sendTask": "task",
    "receiveTask": "task",
    "scriptTask": "task",
    "businessRuleTask": "task",
    "manualTask": "task",
    "callActivity": "call",
    "subProcess": "subprocess",
    "transaction": "subprocess",
}
STOPWORDS = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "and",
    "or",
    "for",
    "on",
    "in",
    "by",
    "with",
    "from",
    "via",
    "is",
    "it",
}


def tokens(name: str | None) -> frozenset[str]:
    """Lower-case alphanumeric words, stopwords dropped, a plural ``s`` stripped (len > 3)."""
    words = re.findall(r"[a-z0-9]+", (name or "").lower())
    return frozenset(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in words
        if w not in STOPWORDS
    )


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
