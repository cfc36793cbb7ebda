"""Seeded, schema-valid sample values: what a simulated TDE step "returns" from its registry
output schema (and what a simulated start event provides for a step's inputs)."""

from __future__ import annotations

import random
from typing import Any

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def sample(schema: dict[str, Any] | None, rng: random.Random, depth: int = 0) -> Any:
    """A value valid for simple JSON Schemas (types, enum/const, bounds, required, items,
    allOf); never raises. Callers check the value and treat an invalid one as unknown."""
    try:
        return _sample(schema, rng, depth)
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _sample(schema: dict[str, Any] | None, rng: random.Random, depth: int = 0) -> Any:
    schema = schema if isinstance(schema, dict) else {}
    if depth > 6:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample(rng.choice(schema[key]), rng, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.setdefault("properties", {}).update(part.get("properties", {}))
                merged["required"] = sorted(set(merged.get("required", [])) | set(part.get("required", [])))
                merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return sample(merged, rng, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = rng.choice([k for k in kind if k != "null"] or ["null"])
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: sample(props.get(k, {}), rng, depth + 1) for k in required}
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", low + 2)), low + 3))
        return [sample(schema.get("items", {}), rng, depth + 1) for _ in range(rng.randint(low, high))]
    if kind == "string":
        low = int(schema.get("minLength", 1))
        high = max(low, min(int(schema.get("maxLength", 40)), 40))
        text = " ".join(rng.choice(WORDS) for _ in range(8))
        while len(text) < low:
            text += " " + rng.choice(WORDS)
        return text[: rng.randint(low, high)] or "x" * max(low, 1)
    if kind in ("integer", "number"):
        lo: Any = schema.get("minimum", schema.get("exclusiveMinimum", None))
        hi: Any = schema.get("maximum", schema.get("exclusiveMaximum", None))
        low = (hi - 100 if hi is not None else 0) if lo is None else lo
        high = low + 100 if hi is None else hi
        if kind == "integer":
            lo = int(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
            hi = int(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
            return rng.randint(lo, hi) if lo <= hi else lo
        return round(rng.uniform(float(low), float(high)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return None
