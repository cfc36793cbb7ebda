"""Syntax checks for what Camunda 7 evaluates at run time: JUEL expressions and timer values.

Why here and not at deploy time: the engine accepts a deployment with a broken
``${a >}`` condition or a ``PT5X`` timer and fails only when a token gets there, often days
later. These checks are small recursive-descent / regex parsers: syntax only, no evaluation.
"""

from __future__ import annotations

import re
from datetime import datetime

_RESERVED = frozenset(
    {
        "and",
        "or",
        "not",
        "eq",
        "ne",
        "lt",
        "gt",
        "le",
        "ge",
        "true",
        "false",
        "null",
        "empty",
        "div",
        "mod",
        "instanceof",
    }
)
_WORD_OPS = {
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
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    )""",
    re.VERBOSE,
)


class JuelSyntaxError(ValueError):
    pass


def _tokens(text: str, start: int) -> tuple[list[tuple[str, str, int]], int]:
    """Tokens of one ``${...}`` body starting at ``start``; returns them and the index after '}'."""
    out: list[tuple[str, str, int]] = []
    pos = start
    depth = 0
    while True:
        if pos >= len(text) or not text[pos:].strip():
            raise JuelSyntaxError(
                f"unterminated expression starting at column {start - 1}: add the closing '}}'"
            )
        mt = _TOKEN.match(text, pos)
        if not mt or mt.end() == pos:
            raise JuelSyntaxError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = mt.lastgroup or ""
        value = mt.group(kind)
        tok_pos = mt.start(kind)
        pos = mt.end()
        if kind == "op" and value == "{":
            depth += 1
        if kind == "op" and value == "}":
            if depth == 0:
                return out, pos
            depth -= 1
        if kind == "id" and value in _WORD_OPS:
            kind, value = "op", _WORD_OPS[value]
        elif kind == "id" and value in ("true", "false", "null"):
            kind = "lit"
        elif kind == "id" and value in ("empty", "instanceof"):
            kind = "op"
        out.append((kind, value, tok_pos))


MAX_NESTING = 64  # parentheses, brackets, unary operators and ?: inside one expression


class _Parser:
    def __init__(self, toks: list[tuple[str, str, int]]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    def nest(self) -> None:
        """One level deeper; the check is recursive, so its depth is bounded (never a RecursionError)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            t = self.peek()
            where = f" at column {t[2] + 1}" if t else ""
            raise JuelSyntaxError(f"expression nested deeper than {MAX_NESTING} levels{where}; simplify it")

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def accept(self, *ops: str) -> str | None:
        t = self.peek()
        if t and t[0] == "op" and t[1] in ops:
            self.i += 1
            return t[1]
        return None

    def expect(self, op: str) -> None:
        if not self.accept(op):
            t = self.peek()
            where = f"{t[1]!r} at column {t[2] + 1}" if t else "the end"
            raise JuelSyntaxError(f"expected {op!r} but found {where}")

    def parse(self) -> None:
        if not self.toks:
            raise JuelSyntaxError("empty expression ${}: write the expression inside the braces")
        self.expr()
        if self.i < len(self.toks):
            t = self.toks[self.i]
            raise JuelSyntaxError(f"unexpected {t[1]!r} at column {t[2] + 1}")

    def expr(self) -> None:
        self.nest()
        self.binary(0)
        if self.accept("?"):
            self.expr()
            self.expect(":")
            self.expr()
        self.depth -= 1

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> None:
        if level == len(self._LEVELS):
            self.unary()
            return
        self.binary(level + 1)
        while self.accept(*self._LEVELS[level]):
            self.binary(level + 1)

    def unary(self) -> None:
        if self.accept("-", "!", "empty"):
            self.nest()
            self.unary()
            self.depth -= 1
            return
        self.value()

    def value(self) -> None:
        t = self.peek()
        if t is None:
            raise JuelSyntaxError("expression ends where a value was expected")
        kind, val, pos = t
        if kind in ("num", "str", "lit"):
            self.i += 1
            return
        if kind == "op" and val == "(":
            self.i += 1
            self.expr()
            self.expect(")")
        elif kind == "id":
            self.i += 1
            nxt = self.toks[self.i : self.i + 3]
            if len(nxt) == 3 and nxt[0][1] == ":" and nxt[1][0] == "id" and nxt[2][1] == "(":
                self.i += 2  # namespaced function prefix:name(...); else ':' belongs to a ?:
            if self.peek() and self.peek()[1] == "(":  # type: ignore[index]
                self.args()
        else:
            raise JuelSyntaxError(f"unexpected {val!r} at column {pos + 1}")
        while True:  # suffixes: .name, .name(args), [expr]
            if self.accept("."):
                t2 = self.peek()
                if (
                    not t2
                    or t2[0] not in ("id", "lit")
                    and not (t2[0] == "op" and t2[1] in _WORD_OPS.values())
                ):
                    raise JuelSyntaxError("expected a property name after '.'")
                self.i += 1
                if self.peek() and self.peek()[1] == "(":  # type: ignore[index]
                    self.args()
            elif self.accept("["):
                self.expr()
                self.expect("]")
                if self.peek() and self.peek()[1] == "(":  # type: ignore[index]
                    self.args()
            else:
                return

    def args(self) -> None:
        self.expect("(")
        if self.accept(")"):
            return
        self.expr()
        while self.accept(","):
            self.expr()
        self.expect(")")


def _quoted(text: str) -> str:
    """The expression as a finding quotes it: at most 200 characters."""
    body = text.strip()
    return repr(body[:200]) + (f" (+{len(body) - 200} more characters)" if len(body) > 200 else "")


def check_juel(text: str, require_expression: bool = False) -> str | None:
    """None if ``text`` is a valid JUEL composite (literal text with ``${..}``/``#{..}``), else why not.

    ``require_expression``: the text must be exactly one expression (conditions are).
    """
    pos = 0
    kinds: set[str] = set()
    literal = False
    n_expr = 0
    while pos < len(text):
        i_dollar = text.find("${", pos)
        i_hash = text.find("#{", pos)
        cands = [i for i in (i_dollar, i_hash) if i >= 0]
        if not cands:
            if text[pos:].strip():
                literal = True
            break
        i = min(cands)
        if i > 0 and text[i - 1] == "\\":  # escaped \${ is literal text
            pos = i + 2
            literal = True
            continue
        if text[pos:i].strip():
            literal = True
        kinds.add(text[i])
        try:
            toks, pos = _tokens(text, i + 2)
            _Parser(toks).parse()
        except JuelSyntaxError as exc:
            return f"invalid JUEL in {_quoted(text)}: {exc}"
        n_expr += 1
    if len(kinds) > 1:
        return f"{_quoted(text)} mixes ${{...}} and #{{...}}; use one kind"
    if require_expression and (n_expr != 1 or literal):
        if n_expr == 0:
            return f"{_quoted(text)} is not a JUEL expression; write it as ${{...}}, e.g. ${{amount > 100}}"
        return f"{_quoted(text)} mixes literal text with an expression; put the whole condition inside one ${{...}}"
    return None


# ---- timers ---------------------------------------------------------------------------
_DURATION = re.compile(
    r"^-?P(?!$)(\d+(?:[.,]\d+)?Y)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?W)?(\d+(?:[.,]\d+)?D)?"
    r"(T(?=\d)(\d+(?:[.,]\d+)?H)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?S)?)?$"
)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#\-LW]+$")


def _is_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return True
    except ValueError:
        return False


def _is_duration(value: str) -> bool:
    return bool(_DURATION.match(value))


def check_timer(kind: str, value: str) -> str | None:
    """None if ``value`` is a valid Camunda 7 ``timeDate``/``timeDuration``/``timeCycle``, else why not."""
    v = value.strip()
    if not v:
        return f"empty {kind}; give an ISO-8601 value such as PT5M (duration), 2025-01-31T09:00:00Z (date) or R3/PT1H (cycle)"
    if "${" in v or "#{" in v:
        return check_juel(v)
    if kind == "timeDuration":
        return (
            None
            if _is_duration(v)
            else f"{v!r} is not an ISO-8601 duration; write e.g. PT30S, PT5M, P1D or P1DT12H"
        )
    if kind == "timeDate":
        return None if _is_date(v) else f"{v!r} is not an ISO-8601 date-time; write e.g. 2025-01-31T09:00:00Z"
    if kind == "timeCycle":
        if v.upper().startswith("R"):
            parts = v.split("/")
            if not re.fullmatch(r"R\d*", parts[0], re.IGNORECASE) or len(parts) not in (2, 3):
                return (
                    f"{v!r} is not an ISO-8601 repeating interval; write R<count>/<duration>, e.g. R3/PT10M"
                )
            rest = parts[1:]
            ok = (len(rest) == 1 and _is_duration(rest[0])) or (
                len(rest) == 2
                and (
                    (_is_date(rest[0]) and _is_duration(rest[1]))
                    or (_is_duration(rest[0]) and _is_date(rest[1]))
                    or (_is_date(rest[0]) and _is_date(rest[1]))
                )
            )
            return (
                None
                if ok
                else f"{v!r}: the interval after R is not a valid ISO-8601 duration/date; e.g. R3/PT10M"
            )
        fields = v.split()
        if len(fields) in (6, 7) and all(_CRON_FIELD.match(f) for f in fields):
            return None
        return f"{v!r} is neither an ISO-8601 cycle (R3/PT10M) nor a 6-7 field Quartz cron expression (0 0/5 * * * ?)"
    return f"unknown timer kind {kind}; use timeDate, timeDuration or timeCycle"
