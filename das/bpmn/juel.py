"""JUEL for the simulator: parse a gateway condition once, then interpret it with JUEL's rules.

Why an interpreter and not Python ``eval``: Python's operators are not JUEL's. ``'x' * 10**8``
builds a 100 MB string in Python, while JUEL coerces ``'x'`` to a number and fails; ``+`` on
strings adds numbers in JUEL; ``null`` counts as 0 in arithmetic; integers are 64-bit.
Evaluating the parsed tree with EL 2.2's coercions (JSR 245, section 1.7-1.8) gives the
engine's answers, and since JUEL has no loops, calls or string concatenation here, one
evaluation costs at most one visit per node: the bounds below make it small.

Covers what gateways in DAS processes use: literals, comparisons (symbolic and ``eq ne lt
gt le ge``), ``&& || !`` and ``and or not``, ``empty``, ``null``, arithmetic and null-safe
``execution.getVariable('x')``. Anything else (ternaries, method calls, property access)
raises ``JuelUnsupported`` so the simulator names it instead of guessing. An evaluation that
breaks JUEL's rules raises ``JuelError`` (the engine would raise an ``ELException``), with one
leniency: ``==``/``!=`` between values JUEL cannot coerce to one type (a list and ``false``, a
number and ``'yes'``) is "not equal", because the simulator invents variable values per
condition and a type it invented must not read as the author's error.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

MAX_EXPRESSION_CHARS = 4000  # one condition's text
MAX_NODES = 400  # operators and operands in one expression
MAX_DEPTH = 48  # nesting of parentheses and unary operators
MAX_HEIGHT = 64  # levels of the parsed tree (``a + b + c`` is one level per ``+``)
MAX_NUMBER_CHARS = 40  # digits of one number literal (a Java BigInteger past Long's 19)
MAX_INT_BITS = 256  # a BigInteger result larger than this is refused
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|"
    r"(?P<getvar>execution\s*\.\s*getVariable\s*\(\s*(?:'([^']*)'|\"([^\"]*)\")\s*\))|"
    r"(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\+|-|\*|/|%)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_WORDS = {
    "and": "&&",
    "or": "||",
    "not": "!",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "div": "/",
    "mod": "%",
}
_LITERALS: dict[str, object] = {"null": None, "true": True, "false": False}
_LEVELS = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))
COIN = "_das_coin()"  # the prepared text of a condition decided by the seeded coin


class JuelUnsupported(ValueError):
    """The expression uses JUEL the simulator does not evaluate (or is over the size bounds)."""


class JuelError(ValueError):
    """Evaluating the expression broke JUEL's rules (Camunda raises an ``ELException``)."""


def strip_juel(text: str) -> str:
    body = text.strip()
    if (body.startswith("${") or body.startswith("#{")) and body.endswith("}"):
        return body[2:-1]
    raise JuelUnsupported(f"not a JUEL expression: {text[:60]!r}")


def _short(text: str) -> str:
    return repr(text[:60]) + ("..." if len(text) > 60 else "")


def variables(text: str) -> set[str]:
    """Names a JUEL expression reads (bare identifiers and getVariable arguments)."""
    out: set[str] = set()
    try:
        body = strip_juel(text)
    except JuelUnsupported:
        return out
    if len(body) > MAX_EXPRESSION_CHARS:
        return out
    for m in _TOKEN.finditer(body):
        if m.group("getvar"):
            out.add(m.group(4) or m.group(5) or "")
        elif (
            m.group("word")
            and m.group("word") not in _WORDS
            and m.group("word") not in _LITERALS
            and m.group("word") != "empty"
        ):
            out.add(m.group("word"))
    return out


_COMPARED = re.compile(
    r"(?:execution\.getVariable\(\s*['\"](\w+)['\"]\s*\)|\b(\w+)\b)\s*(?:==|!=|<=|>=|<|>|\beq\b|\bne\b)\s*"
    r"('[^']*'|\"[^\"]*\"|\d+(?:\.\d+)?|true|false)"
)


def literals(text: str) -> dict[str, list[object]]:
    """Literals each variable is compared with, to make useful random mock values."""
    found: dict[str, list[object]] = {}
    try:
        body = strip_juel(text)
    except JuelUnsupported:
        return found
    if len(body) > MAX_EXPRESSION_CHARS:
        return found
    for m in _COMPARED.finditer(body):
        name = m.group(1) or m.group(2)
        if name in _WORDS or name in _LITERALS:
            continue
        raw = m.group(3)
        val: object = (
            raw[1:-1]
            if raw[0] in "'\""
            else raw == "true"
            if raw in ("true", "false")
            else float(raw)
            if "." in raw
            else int(raw)
        )
        found.setdefault(name, []).append(val)
    return found


# ---- parsing ------------------------------------------------------------------------------
Node = tuple[Any, ...]  # ("lit", v) | ("var", name) | ("get", name) | ("un", op, n) | ("bin", op, a, b)


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def _tokens(body: str, text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    for m in _TOKEN.finditer(body):
        pos = m.end()
        if m.group("bad"):
            raise JuelUnsupported(f"unsupported JUEL syntax {m.group('bad')!r} in {_short(text)}")
        if m.group("str") is not None:
            out.append(("lit", _unescape(m.group("str"))))
        elif m.group("num"):
            raw = m.group("num")
            if len(raw) > MAX_NUMBER_CHARS:
                raise JuelUnsupported(
                    f"number literal longer than {MAX_NUMBER_CHARS} characters in {_short(text)}"
                )
            is_int = not any(c in raw for c in ".eE")
            out.append(("lit", int(raw) if is_int else float(raw)))
        elif m.group("getvar"):
            out.append(("get", m.group(4) or m.group(5) or ""))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        else:
            word = m.group("word")
            rest = body[m.end() :].lstrip()
            if word in _WORDS:
                out.append(("op", _WORDS[word]))
            elif word == "empty":
                out.append(("op", "empty"))
            elif word in _LITERALS:
                out.append(("lit", _LITERALS[word]))
            elif word == "execution" or word.startswith("_") or word == "instanceof" or rest.startswith("("):
                raise JuelUnsupported(f"unsupported JUEL (method call or reserved name) in {_short(text)}")
            else:
                out.append(("var", word))
    if body[pos:].strip():
        raise JuelUnsupported(f"cannot evaluate {_short(text)}")
    return out


class _Parser:
    def __init__(self, toks: list[tuple[str, Any]], text: str) -> None:
        self.toks, self.text, self.i, self.nodes = toks, text, 0, 0

    def fail(self, why: str) -> JuelUnsupported:
        return JuelUnsupported(f"cannot evaluate {_short(self.text)}: {why}")

    def node(self, n: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES} operators and operands")
        return n

    def accept(self, *ops: str) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i][0] == "op" and self.toks[self.i][1] in ops:
            self.i += 1
            return str(self.toks[self.i - 1][1])
        return None

    def parse(self) -> Node:
        if not self.toks:
            raise self.fail("empty expression")
        tree = self.binary(0, 0)
        if self.i < len(self.toks):
            raise self.fail(f"unexpected {self.toks[self.i][1]!r}")
        return tree

    def binary(self, level: int, depth: int) -> Node:
        if level == len(_LEVELS):
            return self.unary(depth)
        left = self.binary(level + 1, depth)
        while (op := self.accept(*_LEVELS[level])) is not None:
            left = self.node(("bin", op, left, self.binary(level + 1, depth)))
        return left

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        op = self.accept("-", "!", "empty")
        if op is not None:
            return self.node(("un", op, self.unary(depth + 1)))
        if self.accept("("):
            inner = self.binary(0, depth + 1)
            if not self.accept(")"):
                raise self.fail("missing ')'")
            return inner
        if self.i >= len(self.toks) or self.toks[self.i][0] == "op":
            raise self.fail("a value is missing")
        kind, value = self.toks[self.i]
        self.i += 1
        return self.node((kind, value))


def _height(tree: Node) -> int:
    """Levels of the tree, counted without recursion (evaluation recurses once per level)."""
    best, stack = 0, [(tree, 1)]
    while stack:
        n, level = stack.pop()
        best = max(best, level)
        stack.extend((c, level + 1) for c in n[2:] if isinstance(c, tuple))
    return best


@lru_cache(maxsize=2048)
def _parse(body: str) -> Node:
    if len(body) > MAX_EXPRESSION_CHARS:
        raise JuelUnsupported(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    tree = _Parser(_tokens(body, body), body).parse()
    if _height(tree) > MAX_HEIGHT:
        raise JuelUnsupported(f"cannot evaluate {_short(body)}: more than {MAX_HEIGHT} operators in a chain")
    return tree


def to_body(text: str) -> str:
    """Check one ``${...}`` expression and return its body, the text the simulator's script
    engine is handed and ``evaluate`` runs; raises ``JuelUnsupported``."""
    body = strip_juel(text)
    try:
        _parse(body)
    except JuelUnsupported as exc:
        raise JuelUnsupported(f"{exc} (in {_short(text)})") from None
    return body


_SETVAR = re.compile(
    r"^\s*[$#]\{\s*execution\s*\.\s*setVariable\s*\(\s*['\"](\w+)['\"]\s*,(.*)\)\s*\}\s*$", re.S
)


def set_variable(text: str) -> tuple[str, str]:
    """``${execution.setVariable('v', EXPR)}`` -> (v, EXPR's body); raises ``JuelUnsupported``."""
    m = _SETVAR.match(text) if len(text) <= MAX_EXPRESSION_CHARS else None
    if not m:
        raise JuelUnsupported(f"unsupported listener expression {_short(text)}")
    return m.group(1), to_body("${" + m.group(2) + "}")


# ---- evaluation (EL 2.2 coercions) ----------------------------------------------------------
def _kind(v: object) -> str:
    return "boolean" if isinstance(v, bool) else type(v).__name__


def _float_like(v: object) -> bool:
    """Arithmetic switches to Double for a Double, or a String holding '.', 'e' or 'E'."""
    return isinstance(v, float) or (isinstance(v, str) and any(c in v for c in ".eE"))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def to_long(v: object) -> int:
    if v is None:
        return 0
    if _is_int(v):
        return v  # type: ignore[return-value]  # checked by _is_int
    if isinstance(v, float):
        return 0 if math.isnan(v) else LONG_MAX if v >= LONG_MAX else LONG_MIN if v <= LONG_MIN else int(v)
    if isinstance(v, str):
        if v == "":
            return 0
        if len(v) <= MAX_NUMBER_CHARS and re.fullmatch(r"[+-]?\d+", v):
            n = int(v)
            if LONG_MIN <= n <= LONG_MAX:
                return n
    raise JuelError(f"cannot coerce {_value(v)} ({_kind(v)}) to a number")


def to_double(v: object) -> float:
    if v is None:
        return 0.0
    if _is_int(v) or isinstance(v, float):
        return float(v)  # type: ignore[arg-type]  # a number here
    if isinstance(v, str):
        s = v.strip()
        if v == "":
            return 0.0
        if len(s) <= MAX_EXPRESSION_CHARS and re.fullmatch(
            r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[dDfF]?", s
        ):
            return float(s.rstrip("dDfF"))
        if s in ("NaN", "Infinity", "+Infinity", "-Infinity"):
            return float(s.replace("Infinity", "inf"))
    raise JuelError(f"cannot coerce {_value(v)} ({_kind(v)}) to a number")


def to_bool(v: object) -> bool:
    if v is None or v == "":
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.lower() == "true"
    raise JuelError(f"cannot coerce {_value(v)} ({_kind(v)}) to a boolean")


def to_str(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e7:
        return f"{v:.1f}"
    return str(v)


def _value(v: object) -> str:
    text = repr(v)
    return text[:40] + ("..." if len(text) > 40 else "")


def _long_result(n: int, big: bool) -> int:
    """Long arithmetic wraps like Java's; BigInteger arithmetic (a literal past Long) is capped."""
    if big:
        if n.bit_length() > MAX_INT_BITS:
            raise JuelError(f"number larger than {MAX_INT_BITS} bits")
        return n
    return (n - LONG_MIN) % 2**64 + LONG_MIN


def _arith(op: str, a: object, b: object) -> object:
    if a is None and b is None:
        return 0
    if op == "/":
        x, y = to_double(a), to_double(b)
        if y == 0:
            return math.nan if x == 0 or math.isnan(x) else math.copysign(math.inf, x) * math.copysign(1, y)
        return x / y
    if _float_like(a) or _float_like(b):
        x, y = to_double(a), to_double(b)
        if op == "%":  # Java's %: NaN for an infinite or NaN dividend, a NaN or zero divisor
            return math.nan if y == 0 or math.isnan(y) or not math.isfinite(x) else math.fmod(x, y)
        return x + y if op == "+" else x - y if op == "-" else x * y
    i, j = to_long(a), to_long(b)
    big = not (LONG_MIN <= i <= LONG_MAX and LONG_MIN <= j <= LONG_MAX)
    if op == "%":
        if j == 0:
            raise JuelError("division by zero")
        r = abs(i) % abs(j)
        return _long_result(-r if i < 0 else r, big)
    return _long_result(i + j if op == "+" else i - j if op == "-" else i * j, big)


def _equal(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return to_double(a) == to_double(b)
    if _is_int(a) or _is_int(b):
        return to_long(a) == to_long(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return to_bool(a) == to_bool(b)
    if isinstance(a, str) or isinstance(b, str):
        return to_str(a) == to_str(b)
    return a == b


def _compare(op: str, a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None and op in ("<=", ">=")
    x: Any
    y: Any
    if isinstance(a, float) or isinstance(b, float):
        x, y = to_double(a), to_double(b)
    elif _is_int(a) or _is_int(b):
        x, y = to_long(a), to_long(b)
    elif isinstance(a, str) or isinstance(b, str):
        x, y = to_str(a), to_str(b)
    elif isinstance(a, bool) and isinstance(b, bool):
        x, y = a, b
    else:
        raise JuelError(f"cannot compare {_kind(a)} with {_kind(b)}")
    return bool(x < y if op == "<" else x > y if op == ">" else x <= y if op == "<=" else x >= y)


def _empty(v: object) -> bool:
    if v is None or v == "":
        return True
    if isinstance(v, list | tuple | dict | set):
        return len(v) == 0
    return False


def _eval(n: Node, data: dict[str, Any]) -> object:
    kind = n[0]
    if kind == "lit":
        return n[1]
    if kind == "get":
        return data.get(n[1])
    if kind == "var":
        if n[1] not in data:
            raise JuelError(f"cannot resolve identifier {n[1]!r}")
        return data[n[1]]
    if kind == "un":
        v = _eval(n[2], data)
        if n[1] == "!":
            return not to_bool(v)
        if n[1] == "empty":
            return _empty(v)
        if v is None:
            return 0
        if isinstance(v, str):
            return -to_double(v) if _float_like(v) else _long_result(-to_long(v), False)
        if isinstance(v, float):
            return -v
        return _long_result(-to_long(v), not LONG_MIN <= to_long(v) <= LONG_MAX)
    op = n[1]
    if op == "&&":
        return to_bool(_eval(n[2], data)) and to_bool(_eval(n[3], data))
    if op == "||":
        return to_bool(_eval(n[2], data)) or to_bool(_eval(n[3], data))
    a, b = _eval(n[2], data), _eval(n[3], data)
    if op in ("==", "!="):
        try:
            same = _equal(a, b)
        except JuelError:  # the simulator invents values: one of another type is just "not equal"
            same = False
        return same if op == "==" else not same
    if op in ("<", ">", "<=", ">="):
        return _compare(op, a, b)
    return _arith(op, a, b)


def evaluate(expression: str, data: dict[str, Any], coin: Any = None) -> object:
    """Evaluate a prepared expression (a JUEL body, or ``${...}``) over ``data``.

    ``COIN`` asks ``coin()`` instead. Raises ``JuelUnsupported`` for text this module does not
    evaluate and ``JuelError`` where JUEL itself fails; never builds a value larger than the
    expression's own literals and ``data`` (bounded numbers, no string building)."""
    text = expression.strip()
    if text == COIN and coin is not None:
        return coin()
    if text.startswith(("${", "#{")) and text.endswith("}"):
        text = text[2:-1]
    return _eval(_parse(text), data)


__all__ = [
    "COIN",
    "JuelError",
    "JuelUnsupported",
    "evaluate",
    "literals",
    "set_variable",
    "strip_juel",
    "to_body",
    "variables",
]
