"""The outline: the small JSON a small model writes first, turned into the authoring form by DAS.

Why: a 1.5B model on a CPU follows the request well when it only has to say *what happens*
(tasks in order, who does each, conditions, parallel parts, repeats, waits) and badly when it
must also pick BPMN step kinds, topics, task types and structured conditions (measured: the
compact authoring form took several repair rounds per case). So the model writes an outline
and this module makes the rest deterministic: ``by: person`` becomes a user task (lane =
role), ``ai`` a probabilistic TDE step, ``system`` an external task; a condition such as
``amount > 10000`` becomes ``{variable: amount, op: ">", value: 10000}``.

Task names are kept as the model wrote them (trimmed, first letter capitalised); when the
user gave a list of task names, near matches are snapped to the given label verbatim and
missing ones are reported back to the model.
"""

from __future__ import annotations

import re
from typing import Any

from das.authoring.labels import jaccard, tokens
from das.bpmn.authoring import MAX_BRANCHES, MAX_STEPS

MAX_DEPTH = 3
_TASK = {
    "type": "object",
    "properties": {
        "task": {"type": "string", "minLength": 3, "maxLength": 80},
        "by": {"type": "string", "maxLength": 60},  # person | ai | system; anything else is a role
        "role": {"type": "string", "maxLength": 60},
    },
    "required": ["task"],
}
_STEPS = {"type": "array", "items": {"$ref": "#/$defs/step"}, "maxItems": MAX_STEPS}
OUTLINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3, "maxLength": 80},
        "steps": {**_STEPS, "minItems": 1},
    },
    "required": ["name", "steps"],
    "$defs": {
        "step": {
            "anyOf": [
                _TASK,
                {
                    "type": "object",
                    "properties": {
                        "if": {"type": "string", "minLength": 1, "maxLength": 120},
                        "then": _STEPS,
                        "else": _STEPS,
                    },
                    "required": ["if", "then"],
                },
                {
                    "type": "object",
                    "properties": {
                        "parallel": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": MAX_BRANCHES,
                            "items": _STEPS,
                        }
                    },
                    "required": ["parallel"],
                },
                {
                    "type": "object",
                    "properties": {"repeat": _STEPS, "while": {"type": "string", "maxLength": 120}},
                    "required": ["repeat", "while"],
                },
                {
                    "type": "object",
                    "properties": {"wait": {"type": "string", "minLength": 2, "maxLength": 80}},
                    "required": ["wait"],
                },
            ]
        }
    },
}

_STOP = {
    "a",
    "an",
    "the",
    "is",
    "are",
    "was",
    "be",
    "been",
    "of",
    "to",
    "for",
    "if",
    "it",
    "its",
    "has",
    "have",
    "by",
    "on",
    "in",
    "at",
    "and",
    "or",
    "not",
    "no",
}
_NEGATIVE = re.compile(r"\b(not|no|rejected|declined|denied|fails?|failed|invalid|missing|negative)\b", re.I)
_OPS = [
    (r">=|≥|\bat least\b", ">="),
    (r"<=|≤|\bat most\b", "<="),
    (r"!=|≠|\bis not\b|\bisn't\b", "!="),
    (r">|\b(?:is )?(?:above|over|more than|greater than|exceeds?|higher than)\b", ">"),
    (r"<|\b(?:is )?(?:below|under|less than|lower than)\b", "<"),
    (r"==|=|\bequals?\b|\bis\b", "=="),
]
_DURATION = re.compile(r"^P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$")
_TIME_WORDS = re.compile(r"(\d+)\s*(minute|min|hour|h|day|d|week|business day|working day)s?\b", re.I)


def slug(text: str, limit: int = 40, sep: str = "_") -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP][:4] or ["step"]
    out = sep.join(words)[:limit].strip(sep)
    return out if out[:1].isalpha() else f"x{sep}{out}"[:limit]


def camel(text: str) -> str:
    words = [w for w in re.findall(r"[A-Za-z0-9]+", text) if w.lower() not in _STOP][:3] or ["flag"]
    name = words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])
    return name if name[:1].isalpha() else f"v{name}"[:40]


def clean_label(text: str) -> str:
    label = re.sub(r"\s+", " ", str(text)).strip(" .;:-\"'")
    label = re.sub(r"[<>&{}]", "", label)[:80].strip()
    return (label[:1].upper() + label[1:]) if label else "Do the step"


def parse_condition(text: str) -> dict[str, Any]:
    """``amount > 10000`` → structured; ``invoice rejected`` → ``invoiceRejected == true``."""
    raw = str(text).strip().rstrip("?").strip()
    for pattern, op in _OPS:
        m = re.search(rf"^(.*?)\s*(?:{pattern})\s*(.+)$", raw, re.I)
        if not m or not m.group(1).strip():
            continue
        left, right = m.group(1).strip(), m.group(2).strip().strip("'\"")
        number = re.fullmatch(r"[-+]?[\d,]*\.?\d+\s*(?:[a-zA-Z€$£%]{0,4})", right.replace(" ", ""))
        if number:
            digits = re.sub(r"[^\d.+-]", "", right)
            try:
                value: Any = int(digits) if re.fullmatch(r"[-+]?\d+", digits) else float(digits)
            except ValueError:
                continue
            return {"variable": camel(left), "op": op, "value": value}
        if op in ("==", "!=") and re.fullmatch(r"[A-Za-z][A-Za-z0-9 _-]{0,30}", right):
            low = right.lower()
            if low in ("true", "yes"):
                return {"variable": camel(left), "op": op, "value": True}
            if low in ("false", "no"):
                return {"variable": camel(left), "op": op, "value": False}
            return {"variable": camel(left), "op": op, "value": low.replace(" ", "_")[:40]}
    return {"variable": camel(raw), "op": "==", "value": True}


def _negate(cond: dict[str, Any]) -> dict[str, Any]:
    flip = {"==": "!=", "!=": "==", ">": "<=", "<": ">=", ">=": "<", "<=": ">"}
    return {**cond, "op": flip[cond["op"]]}


def _duration(text: str) -> str | None:
    token = text.strip().upper()
    if _DURATION.fullmatch(token) and token not in ("P", "PT"):
        return token
    m = _TIME_WORDS.search(text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2).lower()
    if unit.startswith(("min",)):
        return f"PT{n}M"
    if unit in ("h", "hour"):
        return f"PT{n}H"
    if unit.startswith("week"):
        return f"P{n * 7}D"
    return f"P{n}D"


_AI = {"ai", "llm", "model", "assistant", "bot", "agent ai"}
_SYSTEM = {
    "system",
    "it",
    "it system",
    "service",
    "software",
    "application",
    "app",
    "automation",
    "erp",
    "crm",
}
_PERSON = {"person", "human", "user", "people", "staff", "employee"}


def _who(by: Any, role: Any) -> tuple[str, str | None]:
    """Normalise ``by``: a small model often writes the role there ("finance manager")."""
    kind = str(by or "").strip().lower()
    role_text = (
        clean_label(role)
        if isinstance(role, str) and role.strip() and role.strip().lower() not in (_AI | _SYSTEM | _PERSON)
        else None
    )
    if kind in _AI:
        return "ai", None
    if kind in _SYSTEM or not kind:
        return ("person", role_text) if (not kind and role_text) else ("system", None)
    if kind in _PERSON:
        return "person", role_text
    return "person", role_text or clean_label(kind)


class _Converter:
    def __init__(self, labels: list[str] | None) -> None:
        self.labels = labels or []
        self.ids: dict[str, int] = {}

    def _unique(self, base: str) -> str:
        n = self.ids.get(base, 0)
        self.ids[base] = n + 1
        return base if n == 0 else f"{base}_{n + 1}"[:64]

    def task(self, step: dict[str, Any], top: bool) -> dict[str, Any]:
        name = clean_label(step.get("task") or "")
        by, role = _who(step.get("by"), step.get("role"))
        out: dict[str, Any]
        if by == "person":
            out = {"type": "user", "name": name}
            if role:
                out["candidate_groups"] = [slug(role, 40)]
        elif by == "ai":
            out = {
                "type": "tde",
                "name": name,
                "task_type": self._unique(slug(name, 60, "_")),
                "mode": "probabilistic",
            }
        else:
            out = {"type": "external", "name": name, "topic": self._unique(slug(name, 60, "-"))}
        if top and role and by == "person":
            out["lane"] = role
        return out

    def steps(self, items: Any, depth: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                out += self.step(item, depth)
        return out[:MAX_STEPS]

    def step(self, item: dict[str, Any], depth: int) -> list[dict[str, Any]]:
        top = depth == 1
        nested_ok = depth < MAX_DEPTH
        if "task" in item:
            return [self.task(item, top)]
        if "if" in item:
            then, other = self.steps(item.get("then"), depth + 1), self.steps(item.get("else"), depth + 1)
            if not nested_ok:
                return [s for s in then + other if s["type"] != "choice"]
            cond = parse_condition(item["if"])
            if not then and other:  # "if X then nothing else Y" is "if not X then Y"
                cond, then, other = _negate(cond), other, []
            if not then:
                return []
            return [
                {
                    "type": "choice",
                    "name": clean_label(str(item["if"]))[:60] + "?",
                    "branches": [{"condition": cond, "steps": then}],
                    "default": {"steps": other},
                }
            ]
        if "parallel" in item:
            branches = [self.steps(b, depth + 1) for b in item["parallel"] if isinstance(b, list)]
            branches = [b for b in branches if b][:MAX_BRANCHES]
            if not nested_ok or len(branches) < 2:
                return [s for b in branches for s in b]
            return [{"type": "parallel", "name": "In parallel", "branches": [{"steps": b} for b in branches]}]
        if "repeat" in item:
            body = self.steps(item.get("repeat"), depth + 1)
            if not body:
                return []
            if not nested_ok:
                return body
            cond = parse_condition(str(item.get("while") or "repeat needed"))
            return [
                {
                    "type": "loop",
                    "name": clean_label(str(item.get("while") or "Repeat"))[:60],
                    "condition": cond,
                    "max_iterations": 3,
                    "steps": body,
                }
            ]
        if "wait" in item:
            what = str(item["wait"])
            duration = _duration(what)
            on = {"timer": duration} if duration else {"message": camel(what)}
            return [
                {
                    "type": "wait",
                    "name": clean_label(f"Wait for {what}" if not what.lower().startswith("wait") else what),
                    "on": on,
                }
            ]
        return []


def snap_labels(names: list[str], labels: list[str]) -> dict[str, str]:
    """Map written task names to the user's labels (best token overlap, one-to-one, >= 0.5)."""

    pairs = sorted(
        (
            (jaccard(tokens(n), tokens(lab)), i, j)
            for i, n in enumerate(names)
            for j, lab in enumerate(labels)
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_n: set[int] = set()
    used_l: set[int] = set()
    mapping: dict[str, str] = {}
    for sim, i, j in pairs:
        if sim < 0.5:
            break
        if i not in used_n and j not in used_l:
            used_n.add(i)
            used_l.add(j)
            mapping[names[i]] = labels[j]
    # the rest, in order: a user who names the tasks means these names, so each given label
    # goes to the unlabelled task that shares most words with it (else the next one in order)
    for j, label in enumerate(labels):
        free = [i for i in range(len(names)) if i not in used_n]
        if j in used_l or not free:
            continue
        best = max(free, key=lambda i: (jaccard(tokens(names[i]), tokens(label)), -i))
        used_n.add(best)
        used_l.add(j)
        mapping[names[best]] = label
    return mapping


def _walk(steps: list[dict[str, Any]]):
    for s in steps:
        yield s
        for b in s.get("branches", []):
            yield from _walk(b.get("steps", []))
        if "default" in s:
            yield from _walk(s["default"].get("steps", []))
        yield from _walk(s.get("steps", []))


def to_authoring(outline: Any, key: str, labels: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The authoring document for an outline, and problems to send back (missing labels)."""
    if not isinstance(outline, dict):
        raise ValueError("the outline must be a JSON object with name and steps")
    conv = _Converter(labels)
    steps = conv.steps(outline.get("steps"), 1)
    if not steps:
        raise ValueError("the outline has no task: list the process's tasks in steps")
    problems: list[str] = []
    if labels:
        tasks = [s for s in _walk(steps) if s["type"] in ("user", "tde", "external")]
        mapping = snap_labels([s["name"] for s in tasks], labels)
        for s in tasks:
            s["name"] = mapping.get(s["name"], s["name"])
        _insert_missing(steps, labels, conv)
        present = {s["name"] for s in _walk(steps)}
        missing = [lab for lab in labels if lab not in present]
        if missing:
            problems.append(
                "use every given task name verbatim as a task; missing: "
                + "; ".join(f'"{m}"' for m in missing)
            )
    doc = {"key": key, "name": clean_label(str(outline.get("name") or key.replace("_", " "))), "steps": steps}
    return doc, problems


_PERSON_VERBS = (
    "approve",
    "review",
    "decide",
    "sign",
    "interview",
    "inspect",
    "confirm",
    "authorise",
    "authorize",
)
_AI_VERBS = (
    "classify",
    "extract",
    "analyse",
    "analyze",
    "summarise",
    "summarize",
    "draft",
    "assess",
    "categorise",
)


def _insert_missing(steps: list[dict[str, Any]], labels: list[str], conv: _Converter) -> None:
    """A given name the model left out becomes a task right after its predecessor in the user's
    list (or first): the user named the tasks in order, so that is where it belongs."""
    for j, label in enumerate(labels):
        if any(s.get("name") == label for s in _walk(steps)):
            continue
        first = label.split()[0].lower() if label.split() else ""
        by = (
            "person" if first.startswith(_PERSON_VERBS) else "ai" if first.startswith(_AI_VERBS) else "system"
        )
        task = conv.task({"task": label, "by": by}, top=False)
        task["name"] = label
        placed = False
        for prev in reversed(labels[:j]):
            for holder in _lists(steps):
                idx = next((i for i, s in enumerate(holder) if s.get("name") == prev), None)
                if idx is not None and len(holder) < MAX_STEPS:
                    holder.insert(idx + 1, task)
                    placed = True
                    break
            if placed:
                break
        if not placed and len(steps) < MAX_STEPS:
            steps.insert(0, task)


def _lists(steps: list[dict[str, Any]]):
    yield steps
    for s in steps:
        for b in s.get("branches", []):
            yield from _lists(b.get("steps", []))
        if "default" in s:
            yield from _lists(s["default"].get("steps", []))
        if "steps" in s:
            yield from _lists(s["steps"])


def missing_labels(doc: dict[str, Any], labels: list[str]) -> list[str]:
    """Given labels that no task of an authoring document carries verbatim."""
    present = {s.get("name") for s in _walk(doc.get("steps", []))}
    return [lab for lab in labels if lab not in present]


_LABEL_LIST = re.compile(
    r"(?:use|with|using)\s+(?:these|the following|exactly these)\s+(?:task|activity|step)\s+(?:names|labels)"
    r"\s*(?:verbatim)?\s*:\s*(.+)$",
    re.I | re.S,
)


def labels_in_prompt(prompt: str) -> list[str]:
    """Task names the user asked for ("use these task names: A; B; C"), in order."""
    m = _LABEL_LIST.search(prompt)
    if not m:
        return []
    body = m.group(1).strip()
    quoted = re.findall(r"[\"“']([^\"”']{2,80})[\"”']", body)
    parts = quoted or re.split(r"\s*[;\n|]\s*|,\s+(?=[A-Z])", body)
    return [p.strip().rstrip(".") for p in parts if p.strip().rstrip(".")][:40]
