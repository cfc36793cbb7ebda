"""Reversible redaction of a whole model request for ``confidential`` / ``pii`` data.

Everything that leaves for an external provider is walked: messages (text, parts, tool-call
arguments), tool definitions (descriptions, schemas, ``enum`` values built from inputs) and the
response schema. Each distinct sensitive value becomes one numbered placeholder
(``[REDACTED:email:1]``), the same one everywhere in the request, so a schema's ``enum`` and
the prompt still agree and the model can answer with the placeholder. The reply is mapped back
before anyone validates it: classifying confidential text through an external provider still
yields one of the offered labels, and no original value is ever sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from das.contracts import Policy
from das.guardrails import data_class_rules

MAX_DEPTH = 64  # request shapes are shallow; deeper is someone's schema bomb, kept as is


class Redaction:
    """One request's mapping: original value <-> placeholder. Build one per model call."""

    def __init__(self, patterns: Iterable[tuple[str, re.Pattern[str]]]) -> None:
        self.patterns = list(patterns)
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
        token = f"[REDACTED:{name}:{self._counter}]"
        self._forward[value], self._back[token] = token, value
        self._placeholder_rx = None
        return token

    def text(self, text: str) -> str:
        for name, rx in self.patterns:
            text = rx.sub(lambda m, n=name: self._placeholder(n, m.group(0)), text)  # type: ignore[misc]
        return text

    def value(self, value: Any, depth: int = 0) -> Any:
        """Every string in a JSON-like value, keys included, redacted."""
        if isinstance(value, str):
            return self.text(value)
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, depth + 1) for v in value]
        return value

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A chat message: string or list content and tool-call arguments (JSON text) redacted."""
        out = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            out["content"] = self.text(content)
        elif isinstance(content, list):
            out["content"] = self.value(content)
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                fn = dict(call.get("function") or {})
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = self.text(fn["arguments"])
                calls.append({**call, "function": fn})
            out["tool_calls"] = calls
        return out

    # -- back ----------------------------------------------------------------------------------
    def _rx(self) -> re.Pattern[str]:
        if self._placeholder_rx is None:
            self._placeholder_rx = re.compile("|".join(re.escape(t) for t in sorted(self._back, key=len,
                                                                                     reverse=True)))
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
            return {self.restore_text(k) if isinstance(k, str) else k: self.restore_value(v, depth + 1)
                    for k, v in value.items()}
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
    return Redaction((name, re.compile(rx)) for name, rx in (rules.get("redaction_patterns") or {}).items())


__all__ = ["Redaction", "redaction_for"]
