"""JSON Schemas in the forms providers accept: strict structured output, llama.cpp grammars.

OpenAI's strict mode wants every property required (optional ones nullable instead),
``additionalProperties: false`` on every object, and none of the keywords it does not
support. ``to_strict`` makes that form (or says why it cannot: an open object such as a
free ``inputs`` map has no strict form, so that call is sent non-strict); ``from_strict``
drops the ``null`` a strict model writes for an optional property, so the answer validates
against the original schema again.
"""

from __future__ import annotations

from typing import Any

import jsonschema

# keywords strict mode rejects or ignores; dropping them only widens the schema, and every
# answer is validated against the original schema afterwards
UNSUPPORTED = frozenset(
    {
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "default",
        "examples",
        "$schema",
        "$id",
        "if",
        "then",
        "else",
        "not",
        "contains",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "unevaluatedItems",
        "prefixItems",
    }
)


GRAMMAR_MAX_STRING = 100
_GRAMMAR_UNSAFE = ("format", "$comment", "description", "title", "examples", "discriminator")


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def grammar_schema(schema: Any) -> Any:
    """The schema without keywords llama.cpp's grammar converter cannot take (regex patterns),
    for the embedded models and for any server taking ``json_object`` + ``schema``.

    Bounds that keep a small model short (maxLength, maxItems, enum) stay; patterns are
    checked afterwards by the caller's own validation, and failures are fed back. Names inside
    ``properties`` (a property called ``format`` or ``pattern``) are data, never stripped.
    """
    if isinstance(schema, dict):
        max_len, min_len = schema.get("maxLength"), schema.get("minLength", 0)
        if isinstance(max_len, int) and max_len > GRAMMAR_MAX_STRING:
            # llama.cpp expands {m,n} into n nested optionals; long bounds make sampling crawl
            schema = {
                **schema,
                "maxLength": max(GRAMMAR_MAX_STRING, min_len if isinstance(min_len, int) else 0),
            }
        out: dict[str, Any] = {}
        for k, v in schema.items():
            if k in _SCHEMA_MAPS and isinstance(v, dict):
                out[k] = {name: grammar_schema(sub) for name, sub in v.items()}
            elif (
                k not in _GRAMMAR_UNSAFE or (k in ("title", "description") and not isinstance(v, str))
            ) and not (k == "pattern" and "\\" in str(v)):
                out[k] = grammar_schema(v)
        return out
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


class NotStrictable(ValueError):
    """The schema has no strict form (an open object, ``oneOf``, ...)."""


def to_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict-compatible form of ``schema``; raises ``NotStrictable`` naming the spot (any
    shape this code does not know to be safe is not strictable: the call then goes non-strict)."""
    if not isinstance(schema, dict) or (schema.get("type") != "object" and "properties" not in schema):
        raise NotStrictable("strict mode needs an object at the root")
    try:
        out: dict[str, Any] = _strict(schema, "$")
    except (TypeError, AttributeError, KeyError, RecursionError) as exc:
        raise NotStrictable(f"unexpected schema shape: {type(exc).__name__}") from None
    return out


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    kind = node.get("type")
    if isinstance(kind, str) and "enum" not in node and "const" not in node:
        return {**node, "type": [kind, "null"]}
    if isinstance(kind, list) and "enum" not in node and "const" not in node:
        return node if "null" in kind else {**node, "type": [*kind, "null"]}
    return {"anyOf": [node, {"type": "null"}]}


def _strict(node: Any, where: str) -> Any:
    if isinstance(node, bool):
        raise NotStrictable(f"{where}: a boolean schema")
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("items"), list):
        raise NotStrictable(f"{where}: tuple-form items")
    if "oneOf" in node:
        raise NotStrictable(f"{where}: oneOf")
    out: dict[str, Any] = {k: v for k, v in node.items() if k not in UNSUPPORTED}
    is_object = (
        out.get("type") == "object"
        or (isinstance(out.get("type"), list) and "object" in out["type"])
        or "properties" in out
    )
    if is_object:
        extra = out.get("additionalProperties", True)
        if extra not in (False, None) and not out.get("properties"):
            raise NotStrictable(f"{where}: an open object (no fixed properties)")
        if isinstance(extra, dict) or (extra is True and "additionalProperties" in node):
            raise NotStrictable(f"{where}: additionalProperties")
        props = out.get("properties", {})
        required = set(out.get("required", []))
        new_props = {}
        for name, sub in props.items():
            strict_sub = _strict(sub, f"{where}.{name}")
            new_props[name] = strict_sub if name in required else _nullable(strict_sub)
        out["properties"] = new_props
        out["required"] = list(new_props)
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _strict(out["items"], f"{where}[]")
    for key in ("anyOf", "allOf"):
        if key in out:
            out[key] = [_strict(sub, f"{where}.{key}[{i}]") for i, sub in enumerate(out[key])]
    for key in ("$defs", "definitions"):
        if key in out:
            out[key] = {name: _strict(sub, f"{where}.{key}.{name}") for name, sub in out[key].items()}
    return out


def from_strict(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with the nulls of optional properties removed, following ``schema`` (on any
    schema shape it cannot follow, ``value`` unchanged: the caller validates it anyway)."""
    try:
        return _clean(value, schema, schema, 0)
    except (RecursionError, TypeError, AttributeError):
        return value


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return target if isinstance(target, dict) else {}
    return node


def _allows_null(node: dict[str, Any], root: dict[str, Any], depth: int = 0) -> bool:
    """Whether the original schema lets this property be null (then a null is the answer's)."""
    node = _resolve(node, root)
    if depth > 16:
        return True  # cannot tell: keep the value, validation decides
    if not node or node.get("const", 0) is None:
        return True  # {} takes anything, null included
    kind = node.get("type")
    return (
        kind == "null"
        or (isinstance(kind, list) and "null" in kind)
        or None in node.get("enum", [0])
        or any(isinstance(s, dict) and _allows_null(s, root, depth + 1) for s in node.get("anyOf", []))
    )


def _clean(value: Any, node: Any, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict) or depth > 64:
        return value
    node = _resolve(node, root)
    if "anyOf" in node:
        for branch in node["anyOf"]:
            candidate = _clean(value, branch, root, depth + 1)
            try:
                jsonschema.validate(
                    candidate,
                    {
                        **_resolve(branch, root),
                        "$defs": root.get("$defs", {}),
                        "definitions": root.get("definitions", {}),
                    },
                )
                return candidate
            except (jsonschema.ValidationError, jsonschema.SchemaError):
                continue
        return value
    if isinstance(value, dict):
        props = node.get("properties", {})
        required = set(node.get("required", []))
        out = {}
        for key, item in value.items():
            sub = props.get(key)
            if (
                item is None
                and key not in required
                and not (isinstance(sub, dict) and _allows_null(sub, root))
            ):
                continue
            out[key] = _clean(item, sub, root, depth + 1) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_clean(item, node["items"], root, depth + 1) for item in value]
    return value


__all__ = ["GRAMMAR_MAX_STRING", "NotStrictable", "UNSUPPORTED", "from_strict", "grammar_schema", "to_strict"]
