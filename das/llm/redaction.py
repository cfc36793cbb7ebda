"""Reversible redaction of a whole model request for ``confidential`` / ``pii`` data.

Everything that leaves for an external provider is walked: messages (text, parts, tool-call
arguments), tool definitions (descriptions, schemas, ``enum`` values built from inputs) and the
response schema. Each distinct sensitive value becomes one numbered placeholder
(``[REDACTED:email:1:3f9a0c1e]``), the same one everywhere in the request, so a schema's
``enum`` and the prompt still agree and the model can answer with the placeholder. The reply is
mapped back before anyone validates it: classifying confidential text through an external
provider still yields one of the offered labels, and no original value is ever sent.

The placeholders carry a random per-request nonce: a placeholder an outsider wrote into the
input data cannot be guessed, so it never maps back to someone else's value. Patterns run on
RE2 (linear time), so a long input cannot stall the call; a request nested too deeply to walk
is refused, never sent half-redacted.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

import re2

from das.contracts import Policy
from das.errors import InvalidInput, PolicyDenied
from das.guardrails import data_class_rules

MAX_DEPTH = 64  # request shapes are shallow; deeper is refused (PolicyDenied), never sent as is
STRUCTURAL = frozenset({"role", "id", "tool_call_id", "type"})  # message fields that are protocol, not data
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _too_deep() -> PolicyDenied:
    return PolicyDenied(
        f"the model request is nested deeper than {MAX_DEPTH} levels and cannot be redacted; not sent",
        rule="data_class",
    )


class Redaction:
    """One request's mapping: original value <-> placeholder. Build one per model call."""

    def __init__(self, patterns: Iterable[tuple[str, Any]]) -> None:
        self.patterns = list(patterns)  # (name, compiled pattern with .sub)
        self.nonce = secrets.token_hex(4)
        self._forward: dict[str, str] = {}
        self._back: dict[str, str] = {}
        self._counter = 0
        self._placeholder_rx: re.Pattern[str] | None = None

    @property
    def mapped(self) -> int:
        """How many distinct values were replaced (for the trace and tests)."""
        return len(self._forward)

    def _placeholder(self, name: str, value: str) -> str:
        existing = self._forward.get(value)
        if existing is not None:
            return existing
        self._counter += 1
        token = f"[REDACTED:{name}:{self._counter}:{self.nonce}]"
        self._forward[value], self._back[token] = token, value
        self._placeholder_rx = None
        return token

    def text(self, text: str) -> str:
        """All patterns are matched on the original text and replaced in one pass (of overlapping
        matches the earliest, then the longest, wins), so no pattern rewrites another's placeholder."""
        spans: list[tuple[int, int, str]] = []
        for name, rx in self.patterns:
            spans.extend((m.start(), m.end(), name) for m in rx.finditer(text) if m.end() > m.start())
        if not spans:
            return text
        spans.sort(key=lambda span: (span[0], -span[1]))
        out, at = [], 0
        for start, end, name in spans:
            if start < at:
                continue
            out += [text[at:start], self._placeholder(name, text[start:end])]
            at = end
        return "".join(out) + text[at:]

    def value(self, value: Any, depth: int = 0) -> Any:
        """Every string in a JSON-like value, keys included, redacted."""
        return self._walk(value, depth, frozenset())

    def _walk(self, value: Any, depth: int, keep: frozenset[str]) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            return {
                k if k in keep else (self.text(k) if isinstance(k, str) else k): v
                if k in keep
                else self._walk(v, depth + 1, keep)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v, depth + 1, keep) for v in value]
        return value

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A chat message, every field of it (content in any shape, tool-call arguments as text or
        objects, ``function_call``, reasoning), except the protocol fields that pair a tool
        result with its call."""
        out: dict[str, Any] = self._walk(message, 0, STRUCTURAL)
        return out

    # -- back ----------------------------------------------------------------------------------
    def _rx(self) -> re.Pattern[str]:
        if self._placeholder_rx is None:
            self._placeholder_rx = re.compile(
                "|".join(re.escape(t) for t in sorted(self._back, key=len, reverse=True))
            )
        return self._placeholder_rx

    def restore_text(self, text: str) -> str:
        if not self._back or "[REDACTED:" not in text:
            return text
        return self._rx().sub(lambda m: self._back[m.group(0)], text)

    def restore_value(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.restore_text(value)
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {
                self.restore_text(k) if isinstance(k, str) else k: self.restore_value(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.restore_value(v, depth + 1) for v in value]
        return value

    def restore_json_text(self, text: str | None) -> str | None:
        """A reply that is JSON is restored value by value (an original with a quote stays valid
        JSON); anything else as text."""
        if not text or not self._back:
            return text
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return self.restore_text(text)
        return json.dumps(self.restore_value(parsed), ensure_ascii=False)


def redaction_for(policy: Policy, is_local: bool) -> Redaction | None:
    """A fresh mapping for one call when the data class redacts for this model, else None."""
    rules = data_class_rules()
    if is_local or not rules.get(policy.data_class, {}).get("redact"):
        return None
    compiled = []
    for name, rx in (rules.get("redaction_patterns") or {}).items():
        try:
            compiled.append((str(name), re2.compile(str(rx), options=_RE2_OPTIONS)))
        except re2.error as exc:
            raise InvalidInput(
                f"guardrails/data_classes.yaml: redaction pattern {name!r} needs a backtracking "
                f"regex engine; write it in RE2 syntax (no backreferences or lookaround): {exc}"
            ) from None
    return Redaction(compiled)


__all__ = ["Redaction", "redaction_for"]
