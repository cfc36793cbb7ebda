"""Every piece of executable content in a BPMN file, and which of it the operator allows.

Why: a reviewer approves what the engine will run, and Camunda 7 runs far more than service
tasks: script tasks, ``camunda:script`` in listeners and input/output parameters, Java classes
and (delegate) expressions on tasks, listeners, events and fields, connectors, and every
``${...}`` in a condition, timer, parameter or attribute. Such content is easy to miss in a
diagram and invisible in a diff against no base, so it is read straight from the XML tree
(not from the graph model, which keeps only some of it) and listed in full.

What needs no acknowledgement (``flagged`` false): plain JUEL — variables, literals, operators,
``execution.getVariable('name')`` — DAS's own loop-counter listeners, and whatever the
operator lists in ``guardrails/executable.yaml`` (Java classes, delegate expressions and
connector ids by exact value, other expressions by full-match regex, scripts by the sha256
of their body). Everything else is flagged: a reviewer must acknowledge it to approve.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from das.bpmn import model as m
from das.config import resource_dir
from das.contracts import ExecutableItem

_CAMUNDA = (m.CAMUNDA_NS, m.ACTIVITI_NS)
_B = m.BPMN_NS
# BPMN elements whose text the engine evaluates (documentation and annotations are never run)
_EVALUATED_TEXT = {"conditionExpression": "condition", "condition": "condition", "completionCondition": "expression",
                   "loopCardinality": "expression", "timeDate": "expression", "timeDuration": "expression",
                   "timeCycle": "expression"}
# ... of which the engine runs as a script when a non-JUEL ``language`` is given
_SCRIPTABLE = frozenset({"conditionExpression", "condition", "completionCondition"})
# Camunda elements whose text and attributes are never evaluated
_LITERAL = frozenset({"string", "connectorId", "property", "properties"})
_ATTR_KIND = {"class": "class", "delegateExpression": "delegate_expression", "expression": "expression"}
_EXPR = re.compile(r"[$#]\{")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_GET_VARIABLE = re.compile(r"\bexecution\s*\.\s*getVariable\s*\(\s*(?:'[A-Za-z_][\w.-]*'|\"[A-Za-z_][\w.-]*\")\s*\)")
_WORD_CALL = re.compile(r"([A-Za-z_$][\w$]*)\s*\(")
_OPERATOR_WORDS = frozenset({"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "div", "mod", "empty",
                             "instanceof"})
# DAS's own compiled patterns (das/bpmn/compile.py): a loop counter set on a flow's take listener
DAS_PATTERNS = (
    re.compile(r"\$\{execution\.setVariable\('(das_loop_[A-Za-z0-9_]{1,80})', "
               r"(?:1|execution\.getVariable\('\1'\) \+ 1)\)\}"),
)


@dataclass(frozen=True)
class AllowList:
    """The operator's allow-list (``guardrails/executable.yaml``)."""

    classes: frozenset[str] = frozenset()
    delegate_expressions: frozenset[str] = frozenset()
    connectors: frozenset[str] = frozenset()
    expressions: tuple[re.Pattern[str], ...] = ()
    scripts_sha256: frozenset[str] = frozenset()
    source: str = "built-in"


def allow_list(path: Path | None = None) -> AllowList:
    """The allow-list in ``path`` (default ``guardrails/executable.yaml``; none there: allow only
    plain expressions and DAS's own patterns). Re-read when the file changes."""
    path = path or resource_dir("guardrails") / "executable.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return AllowList()
    return _load(str(path), stamp)


@lru_cache(maxsize=4)
def _load(path: str, stamp: int) -> AllowList:
    try:
        data: Any = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the executable allow-list {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of lists")

    def strings(key: str) -> frozenset[str]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{path}: {key} must be a list of strings")
        return frozenset(value)

    try:
        patterns = tuple(re.compile(p) for p in strings("expressions"))
    except re.error as exc:
        raise ValueError(f"{path}: an expressions entry is not a regular expression: {exc}") from exc
    return AllowList(strings("classes"), strings("delegate_expressions"), strings("connectors"), patterns,
                     frozenset(s.lower() for s in strings("scripts_sha256")), path)


def script_digest(body: str) -> str:
    """What ``scripts_sha256`` lists: the sha256 of the script body, stripped, as UTF-8."""
    return hashlib.sha256(body.strip().encode()).hexdigest()


def expressions_in(text: str) -> list[str]:
    """The ``${...}`` / ``#{...}`` expressions in ``text`` (braces inside strings skipped)."""
    out: list[str] = []
    i = 0
    while True:
        match = _EXPR.search(text, i)
        if not match:
            return out
        j, depth, quote = match.end(), 1, ""
        while j < len(text) and depth:
            c = text[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            j += 1
        out.append(text[match.start():j])
        i = j


def is_plain(expression: str) -> bool:
    """Plain JUEL: variables, literals, operators and ``execution.getVariable('name')`` only —
    no method call, property or index access (a getter of a bean runs code), no assignment."""
    text = expression.strip()
    if len(text) < 3 or text[:2] not in ("${", "#{") or not text.endswith("}"):
        return False
    inner = _STRING.sub(" '' ", _GET_VARIABLE.sub(" v ", text[2:-1]))
    if re.search("['\"]", inner.replace("''", "")):  # an unterminated string
        return False
    if any(w.group(1) not in _OPERATOR_WORDS for w in _WORD_CALL.finditer(inner)):
        return False
    return not re.search(r"[\])]\s*\(|[\w$\])']\s*\.\s*[A-Za-z_$]|[\[\]{};]|->|(?<![=!<>])=(?!=)", inner)


def _allowed(item: ExecutableItem, allow: AllowList) -> bool:
    content = item.content
    if item.kind == "script":
        return script_digest(content) in allow.scripts_sha256
    if item.kind == "class":
        return content in allow.classes
    if item.kind == "connector":
        return content in allow.connectors
    if item.kind == "delegate_expression" and content in allow.delegate_expressions:
        return True
    if any(p.fullmatch(content) for p in allow.expressions):
        return True
    if item.kind == "delegate_expression":
        return False
    exprs = expressions_in(content)
    return all(is_plain(e) or any(p.fullmatch(e) for p in DAS_PATTERNS) for e in exprs)


def _owner(el: etree._Element) -> str | None:
    node: etree._Element | None = el
    while node is not None and node.get("id") is None:
        node = node.getparent()
    return node.get("id") if node is not None else None


def _ns_local(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str) or not tag.startswith("{"):
        return "", str(tag)
    ns, local = tag[1:].split("}", 1)
    return ns, local


def _label(el: etree._Element) -> str:
    """``executionListener (start)``, ``inputParameter 'x'``, ``serviceTask``."""
    ns, local = _ns_local(el.tag)
    extra = el.get("event") or (f"'{el.get('name')}'" if el.get("name") else "")
    return f"{local} ({extra})" if el.get("event") else (f"{local} {extra}" if extra else local)


def _context(el: etree._Element) -> str:
    """The chain of Camunda extension elements down to ``el``: ``executionListener (start) / script``."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None and _ns_local(node.tag)[0] in _CAMUNDA:
        parts.append(_label(node))
        node = node.getparent()
    return " / ".join(reversed(parts))


def executable_content(defs: m.Definitions, allow: AllowList | None = None) -> list[ExecutableItem]:
    """Every executable element of the file, in document order, each marked ``flagged`` unless
    it is plain or allow-listed."""
    allow = allow or allow_list()
    tree = defs.tree
    if tree is None:
        return []
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    items: list[ExecutableItem] = []

    def add(el: etree._Element, kind: str, where: str, content: str, language: str | None = None) -> None:
        item = ExecutableItem(element=_owner(el), kind=kind, where=where, language=language,
                              content=content)
        item.flagged = not _allowed(item, allow)
        items.append(item)

    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        ns, local = _ns_local(el.tag)
        text = (el.text or "").strip()
        if ns == _B and local == "script":  # a script task's body
            parent = el.getparent()
            lang = parent.get("scriptFormat") if parent is not None else None
            add(el, "script", "scriptTask script", text, lang)
        elif ns == _B and local == "scriptTask" and el.get(f"{{{m.CAMUNDA_NS}}}resource"):
            add(el, "script", "scriptTask camunda:resource", "resource: " + el.get(f"{{{m.CAMUNDA_NS}}}resource", ""),
                el.get("scriptFormat"))
        elif ns in _CAMUNDA and local == "script":
            resource = el.get("resource")
            add(el, "script", _context(el), text or f"resource: {resource or ''}", el.get("scriptFormat"))
        elif ns in _CAMUNDA and local == "connectorId" and text:
            add(el, "connector", "connector", text)
        elif ns == _B and local in _EVALUATED_TEXT and (text or el.get(f"{{{m.CAMUNDA_NS}}}resource")):
            lang = el.get("language")
            kind = _EVALUATED_TEXT[local]
            if el.get(f"{{{m.CAMUNDA_NS}}}resource"):
                add(el, "script", local + " camunda:resource", "resource: " + el.get(f"{{{m.CAMUNDA_NS}}}resource", ""),
                    lang)
            elif lang and "juel" not in lang.lower() and local in _SCRIPTABLE:
                add(el, "script", local, text, lang)
            elif _EXPR.search(text):
                add(el, kind, local, text, lang)
        elif ns in _CAMUNDA and local not in _LITERAL and text and _EXPR.search(text) and not len(el):
            add(el, "expression", _context(el), text)
        if ns in _CAMUNDA and local in _LITERAL:
            continue
        for key, value in el.attrib.items():
            where = _attribute_site(ns, local, el, key)
            if not value or where is None:
                continue
            a_local = _ns_local(key)[1]
            if a_local in _ATTR_KIND:
                add(el, _ATTR_KIND[a_local], where, value)
            elif _EXPR.search(value):
                add(el, "expression", where, value)
    return items


def _attribute_site(ns: str, local: str, el: etree._Element, key: str) -> str | None:
    """How an attribute the engine may evaluate is shown (None: never evaluated)."""
    a_ns, a_local = _ns_local(key)
    if ns == _B:
        if a_ns in _CAMUNDA and a_local != "resource":
            return f"{local} camunda:{a_local}"
        return f"{local} {a_local}" if a_ns == "" and a_local == "calledElement" else None
    if ns in _CAMUNDA and a_ns == "" and a_local not in ("name", "id", "event", "scriptFormat", "resource",
                                                         "stringValue", "target", "variables", "local"):
        return f"{_context(el)} {a_local}"
    return None


def mark_new(items: list[ExecutableItem], base: list[ExecutableItem]) -> list[ExecutableItem]:
    """Mark which items the base version did not have (same element, place and content)."""
    seen = {(b.element, b.kind, b.where, b.content) for b in base}
    for item in items:
        item.new = (item.element, item.kind, item.where, item.content) not in seen
    return items


def describe(item: ExecutableItem, limit: int = 120) -> str:
    """One line: ``class com.x.Y on Task_1 (executionListener (start) camunda:class)``."""
    content = " ".join(item.content.split())
    content = content if len(content) <= limit else content[: limit - 3] + "..."
    lang = f" [{item.language}]" if item.language else ""
    return f"{item.kind.replace('_', ' ')}{lang} {content!r} on {item.element or '-'} ({item.where})"


__all__ = ["AllowList", "DAS_PATTERNS", "allow_list", "describe", "executable_content", "expressions_in", "is_plain",
           "mark_new", "script_digest"]
