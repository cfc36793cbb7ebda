"""A small JUEL -> Python translator for simulation (SpiffWorkflow evaluates Python).

Covers what gateways in DAS processes use: literals, comparisons (symbolic and ``eq ne lt
gt le ge``), ``&& || !`` and ``and or not``, ``empty``, ``null``, and null-safe
``execution.getVariable('x')``. Anything else (ternaries, method calls, property access)
raises ``JuelUnsupported`` so the simulator names it instead of guessing.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*'|\"[^\"]*\")|(?P<num>\d+(?:\.\d+)?)|"
    r"(?P<getvar>execution\s*\.\s*getVariable\s*\(\s*(?:'([^']*)'|\"([^\"]*)\")\s*\))|"
    r"(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\+|-|\*|/|%)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_WORDS = {"and": "and", "or": "or", "not": "not", "eq": "==", "ne": "!=", "lt": "<", "gt": ">",
          "le": "<=", "ge": ">=", "null": "None", "true": "True", "false": "False", "div": "/", "mod": "%"}
_OPS = {"&&": "and", "||": "or", "!": "not"}


class JuelUnsupported(ValueError):
    """The expression uses JUEL the simulator does not translate."""


def strip_juel(text: str) -> str:
    body = text.strip()
    if (body.startswith("${") or body.startswith("#{")) and body.endswith("}"):
        return body[2:-1]
    raise JuelUnsupported(f"not a JUEL expression: {text[:60]!r}")


def variables(text: str) -> set[str]:
    """Names a JUEL expression reads (bare identifiers and getVariable arguments)."""
    out: set[str] = set()
    try:
        body = strip_juel(text)
    except JuelUnsupported:
        return out
    for m in _TOKEN.finditer(body):
        if m.group("getvar"):
            out.add(m.group(4) or m.group(5) or "")
        elif m.group("word") and m.group("word") not in _WORDS and m.group("word") != "empty":
            out.add(m.group("word"))
    return out


def literals(text: str) -> dict[str, list[object]]:
    """Literals each variable is compared with, to make useful random mock values."""
    found: dict[str, list[object]] = {}
    try:
        body = strip_juel(text)
    except JuelUnsupported:
        return found
    pat = re.compile(
        r"(?:execution\.getVariable\(\s*['\"](\w+)['\"]\s*\)|\b(\w+)\b)\s*(?:==|!=|<=|>=|<|>|\beq\b|\bne\b)\s*"
        r"('[^']*'|\"[^\"]*\"|\d+(?:\.\d+)?|true|false)")
    for m in pat.finditer(body):
        name = m.group(1) or m.group(2)
        if name in _WORDS:
            continue
        raw = m.group(3)
        val: object = (raw[1:-1] if raw[0] in "'\"" else raw == "true" if raw in ("true", "false")
                       else float(raw) if "." in raw else int(raw))
        found.setdefault(name, []).append(val)
    return found


def to_python(text: str) -> str:
    """Translate one JUEL expression; raises ``JuelUnsupported``."""
    body = strip_juel(text)
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(body):
        pos = m.end()
        if m.group("bad"):
            raise JuelUnsupported(f"unsupported JUEL syntax {m.group('bad')!r} in {text[:60]!r}")
        if m.group("str"):
            out.append(m.group("str"))
        elif m.group("num"):
            out.append(m.group("num"))
        elif m.group("getvar"):
            out.append(f"_das_get({(m.group(4) or m.group(5) or '')!r})")
        elif m.group("op"):
            out.append(_OPS.get(m.group("op"), m.group("op")))
        else:
            word = m.group("word")
            if word == "empty":
                out.append("not")
            elif word == "execution" or word.startswith("_") or body[m.end():].lstrip().startswith("("):
                raise JuelUnsupported(f"unsupported JUEL (method call or reserved name) in {text[:60]!r}")
            else:
                out.append(_WORDS.get(word, word))
    if body[pos:].strip():
        raise JuelUnsupported(f"cannot translate {text[:60]!r}")
    expr = " ".join(out)
    try:
        compile(expr, "<juel>", "eval")
    except SyntaxError as exc:
        raise JuelUnsupported(f"cannot translate {text[:60]!r}") from exc
    return expr


_SETVAR = re.compile(r"^\s*[$#]\{\s*execution\s*\.\s*setVariable\s*\(\s*['\"](\w+)['\"]\s*,(.*)\)\s*\}\s*$", re.S)


def set_variable(text: str) -> tuple[str, str]:
    """``${execution.setVariable('v', EXPR)}`` -> (v, python EXPR); raises ``JuelUnsupported``."""
    m = _SETVAR.match(text)
    if not m:
        raise JuelUnsupported(f"unsupported listener expression {text[:60]!r}")
    inner = to_python("${" + m.group(2) + "}")
    # JUEL arithmetic treats null as 0
    inner = re.sub(r"_das_get\(('[^']*')\)\s*([+\-])", r"(_das_get(\1) or 0) \2", inner)
    return m.group(1), inner


_STRINGS = re.compile(r"'[^']*'|\"[^\"]*\"")


def safe_eval(expr: str, data: dict[str, object], extra: dict[str, object] | None = None) -> object:
    """Evaluate a translated expression without builtins, dunders or attribute access."""
    rest = _STRINGS.sub("''", expr)
    if "__" in rest or re.search(r"\.(?!\d)", rest) or re.search(r"\b(lambda|import|yield)\b", rest):
        raise JuelUnsupported(f"refusing to evaluate {expr[:60]!r}")
    scope: dict[str, object] = {"__builtins__": {}, "_das_get": data.get, **(extra or {})}
    scope.update(data)
    return eval(expr, scope)  # noqa: S307 - restricted above: no builtins, no attributes
