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

Read as the engine reads it: an element's text is all of its text (an XML comment or
processing instruction does not end it; such a split is itself flagged), a Java class may sit
in any ``camunda:*Class`` attribute or a form validator's ``config``, and any ``${...}`` in a
``camunda:``/``activiti:``/``flowable:`` value DAS does not know as a data field is flagged even
when it looks plain (a bare ``${bean}`` may be resolved and invoked as a delegate there).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml
from lxml import etree

from das.bpmn import model as m
from das.bpmn.ns import ACTIVITI_NS, BPMN_NS, CAMUNDA_NS, FLOWABLE_NS
from das.config import resource_dir
from das.contracts import ExecutableItem

_CAMUNDA = (CAMUNDA_NS, ACTIVITI_NS, FLOWABLE_NS)
_B = BPMN_NS
# BPMN elements whose text the engine evaluates (documentation and annotations are never run)
_EVALUATED_TEXT = {
    "conditionExpression": "condition",
    "condition": "condition",
    "completionCondition": "expression",
    "loopCardinality": "expression",
    "timeDate": "expression",
    "timeDuration": "expression",
    "timeCycle": "expression",
    "formalExpression": "expression",
}
# ... of which the engine runs as a script when a non-JUEL ``language`` is given
_SCRIPTABLE = frozenset({"conditionExpression", "condition", "completionCondition"})
# BPMN elements whose text and attributes are never evaluated
_B_INERT = frozenset({"documentation", "text"})
# Camunda elements whose text and attributes are never evaluated
_LITERAL = frozenset({"string", "connectorId", "property", "properties"})
# Camunda elements whose text is an expression used as data (plain JUEL there needs no acknowledgement)
_DATA_TEXT = frozenset(
    {"inputParameter", "outputParameter", "value", "entry", "expression", "failedJobRetryTimeCycle"}
)
# camunda:* attributes of BPMN elements, and attributes of Camunda elements, whose expression is data
_DATA_ATTRS = frozenset(
    {
        "assignee",
        "candidateUsers",
        "candidateGroups",
        "dueDate",
        "followUpDate",
        "priority",
        "formKey",
        "formRef",
        "formRefVersion",
        "collection",
        "taskPriority",
        "jobPriority",
        "historyTimeToLive",
        "calledElementVersion",
        "calledElementVersionTag",
        "calledElementTenantId",
        "caseRef",
        "caseVersion",
        "caseTenantId",
        "decisionRef",
        "decisionRefVersion",
        "decisionRefVersionTag",
        "decisionRefTenantId",
        "errorMessage",
        "topic",
        "candidateStarterUsers",
        "candidateStarterGroups",
        "sourceExpression",
        "businessKey",
        "defaultValue",
    }
)
_ATTR_KIND = {"class": "class", "delegateExpression": "delegate_expression", "expression": "expression"}
_UNKNOWN = " (not a field DAS knows as data)"
_SPLIT = " (text split by an XML comment or processing instruction)"
_EXPR = re.compile(r"[$#]\{")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_GET_VARIABLE = re.compile(
    r"\bexecution\s*\.\s*getVariable\s*\(\s*(?:'[A-Za-z_][\w.-]*'|\"[A-Za-z_][\w.-]*\")\s*\)"
)
_WORD_CALL = re.compile(r"([A-Za-z_$][\w$]*)\s*\(")
_OPERATOR_WORDS = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "div", "mod", "empty", "instanceof"}
)
# DAS's own compiled patterns (das/bpmn/compile.py): a loop counter set on a flow's take listener
DAS_PATTERNS = (
    re.compile(
        r"\$\{execution\.setVariable\('(das_loop_[A-Za-z0-9_]{1,80})', "
        r"(?:1|execution\.getVariable\('\1'\) \+ 1)\)\}"
    ),
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
    return AllowList(
        strings("classes"),
        strings("delegate_expressions"),
        strings("connectors"),
        patterns,
        frozenset(s.lower() for s in strings("scripts_sha256")),
        path,
    )


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
        out.append(text[match.start() : j])
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


def _allowed(item: ExecutableItem, allow: AllowList, strict: bool = False) -> bool:
    """``strict``: content in a place DAS does not know (or split by comments) is allowed only by
    the operator's ``expressions`` list (or, for a script, its digest)."""
    content = item.content
    if strict and item.kind != "script":
        return any(p.fullmatch(content) for p in allow.expressions)
    if item.kind == "script":
        return not strict and script_digest(content) in allow.scripts_sha256
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
    """The BPMN element it belongs to (a form field's or a Camunda element's own id is not one)."""
    node: etree._Element | None = el
    while node is not None and (node.get("id") is None or _ns_local(node.tag)[0] in _CAMUNDA):
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


def _full_text(el: etree._Element) -> tuple[str, bool]:
    """All the text the engine reads from ``el`` (a comment or processing instruction does not
    end it) and whether anything but text sits inside (the source then hides part of it)."""
    return "".join(el.itertext()).strip(), len(el) > 0


def _own_text(el: etree._Element) -> tuple[str, bool]:
    """``el``'s own text, before and between its child elements, and whether a comment or
    processing instruction splits it."""
    parts, split = [el.text or ""], False
    for child in el:
        split = split or not isinstance(child.tag, str)
        parts.append(child.tail or "")
    return "".join(parts).strip(), split


def _attr_kind(name: str) -> str | None:
    """``class``/``*Class`` name Java classes, ``delegateExpression``/``*DelegateExpression`` beans."""
    if name == "class" or name.endswith("Class"):
        return "class"
    if name == "delegateExpression" or name.endswith("DelegateExpression"):
        return "delegate_expression"
    return "expression" if name == "expression" else None


class _Add(Protocol):
    def __call__(
        self,
        el: etree._Element,
        kind: str,
        where: str,
        content: str,
        language: str | None = None,
        strict: bool = False,
    ) -> None: ...


def executable_content(defs: m.Definitions, allow: AllowList | None = None) -> list[ExecutableItem]:
    """Every executable element of the file, in document order, each marked ``flagged`` unless
    it is plain or allow-listed."""
    allow = allow or allow_list()
    tree = defs.tree
    if tree is None:
        return []
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    items: list[ExecutableItem] = []

    def add(
        el: etree._Element,
        kind: str,
        where: str,
        content: str,
        language: str | None = None,
        strict: bool = False,
    ) -> None:
        item = ExecutableItem(element=_owner(el), kind=kind, where=where, language=language, content=content)
        item.flagged = not _allowed(item, allow, strict)
        items.append(item)

    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        ns, local = _ns_local(el.tag)
        if ns == _B and local not in _B_INERT:
            _bpmn_element(el, local, add)
        elif ns in _CAMUNDA:
            _camunda_element(el, local, add)
    return items


def _bpmn_element(el: etree._Element, local: str, add: _Add) -> None:
    resource = el.get(f"{{{CAMUNDA_NS}}}resource")
    text, split = _full_text(el) if local == "script" or local in _EVALUATED_TEXT else ("", False)
    mark = _SPLIT if split else ""
    if local == "script":  # a script task's body
        parent = el.getparent()
        lang = parent.get("scriptFormat") if parent is not None else None
        add(el, "script", "scriptTask script" + mark, text, lang, strict=split)
    elif local == "scriptTask" and resource:
        add(el, "script", "scriptTask camunda:resource", "resource: " + resource, el.get("scriptFormat"))
    elif local in _EVALUATED_TEXT and (text or resource):
        lang = el.get("language")
        if resource:
            add(el, "script", local + " camunda:resource", "resource: " + resource, lang)
        elif lang and "juel" not in lang.lower() and local in _SCRIPTABLE:
            add(el, "script", local + mark, text, lang, strict=split)
        elif _EXPR.search(text):
            add(el, _EVALUATED_TEXT[local], local + mark, text, lang, strict=split)
    elif local not in _EVALUATED_TEXT:
        own, split = _own_text(el)
        if _EXPR.search(own):  # text DAS does not know the engine to read: shown, and flagged
            add(el, "expression", local + _UNKNOWN + (_SPLIT if split else ""), own, strict=True)
    for key, value in el.attrib.items():
        a_ns, a_local = _ns_local(key)
        if not value or (a_ns in _CAMUNDA and a_local == "resource"):
            continue
        if a_ns in _CAMUNDA:
            where = f"{local} camunda:{a_local}"
            kind = _attr_kind(a_local)
            if kind:
                add(el, kind, where, value)
            elif _EXPR.search(value):
                known = a_local in _DATA_ATTRS
                add(el, "expression", where + ("" if known else _UNKNOWN), value, strict=not known)
        elif a_ns == "" and _EXPR.search(value):  # calledElement, a message's or a user task's name ...
            add(el, "expression", f"{local} {a_local}", value)


def _camunda_element(el: etree._Element, local: str, add: _Add) -> None:
    context = _context(el)
    if local == "script":
        text, split = _full_text(el)
        add(
            el,
            "script",
            context + (_SPLIT if split else ""),
            text or f"resource: {el.get('resource') or ''}",
            el.get("scriptFormat"),
            strict=split,
        )
    elif local == "connectorId":
        text, split = _full_text(el)
        if text:
            add(el, "connector", "connector" + (_SPLIT if split else ""), text, strict=split)
    elif local not in _LITERAL:
        own, split = _own_text(el)
        if _EXPR.search(own):
            known = local in _DATA_TEXT
            add(
                el,
                "expression",
                context + ("" if known else _UNKNOWN) + (_SPLIT if split else ""),
                own,
                strict=split or not known,
            )
    if local in _LITERAL:
        return
    for key, value in el.attrib.items():
        a_ns, a_local = _ns_local(key)
        if not value or a_ns != "" or a_local in ("resource", "scriptFormat"):
            continue
        where = f"{context} {a_local}"
        kind = _attr_kind(a_local)
        if local == "constraint" and a_local == "config" and el.get("name") == "validator":
            add(el, "delegate_expression" if _EXPR.search(value) else "class", where, value.strip())
        elif kind:
            add(el, kind, where, value)
        elif _EXPR.search(value):
            known = a_local in _DATA_ATTRS
            add(el, "expression", where + ("" if known else _UNKNOWN), value, strict=not known)


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


__all__ = [
    "AllowList",
    "DAS_PATTERNS",
    "allow_list",
    "describe",
    "executable_content",
    "expressions_in",
    "is_plain",
    "mark_new",
    "script_digest",
]
