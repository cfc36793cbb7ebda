"""Camunda 7 extension elements: where the engine reads them, and what it needs inside them.

Why: Camunda's BPMN parser refuses a deployment when a listener names no implementation, a
field injection has no value or a form field no id, and it silently ignores an extension in
a place it does not read (a ``taskListener`` on a service task never fires). Both are found
here, before deployment, on every ``extensionElements`` block the parser recorded
(``Definitions.extension_sites``), flows, gateways, events and multi-instance included.

``ALLOWED_IN`` restates the Camunda 7 moddle descriptor (npm ``camunda-bpmn-moddle``,
``resources/camunda.json``, ``meta.allowedIn``) resolved to concrete BPMN element names;
``tests/bpmn/test_camunda_extensions.py`` checks it against the descriptor itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from das.bpmn import model as m
from das.bpmn.rules import Report, Severity

TASKS = frozenset(
    {
        "task",
        "serviceTask",
        "userTask",
        "manualTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
    }
)
SUB_PROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
ACTIVITIES = TASKS | SUB_PROCESSES | {"callActivity"}
GATEWAYS = frozenset(
    {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
)
EVENTS = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "implicitThrowEvent",
    }
)
FLOW_NODES = ACTIVITIES | GATEWAYS | EVENTS
SERVICE_TASK_LIKE = frozenset({"serviceTask", "businessRuleTask", "sendTask", "messageEventDefinition"})

# Camunda element (local name) -> BPMN elements whose extensionElements Camunda reads it in;
# None: anywhere.
ALLOWED_IN: dict[str, frozenset[str] | None] = {
    "properties": None,
    "in": frozenset({"callActivity", "signalEventDefinition"}),
    "out": frozenset({"callActivity"}),
    "connector": SERVICE_TASK_LIKE,
    "inputOutput": FLOW_NODES | {"connector", "callChoreography", "choreographyTask", "subChoreography"},
    "field": SERVICE_TASK_LIKE | {"executionListener", "taskListener"},
    "failedJobRetryTimeCycle": FLOW_NODES | {"multiInstanceLoopCharacteristics"},
    "executionListener": (FLOW_NODES - {"complexGateway", "implicitThrowEvent"})
    | {"sequenceFlow", "process"},
    "taskListener": frozenset({"userTask"}),
    "formData": frozenset({"startEvent", "userTask"}),
    "formProperty": frozenset({"startEvent", "userTask"}),
    "errorEventDefinition": frozenset({"serviceTask"}),
}
EXECUTION_EVENTS = frozenset({"start", "end", "take"})
TASK_EVENTS = frozenset({"create", "assignment", "complete", "delete", "update", "timeout"})
_IMPL = ("class", "expression", "delegateExpression")
_DURATION = r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"
_RETRY_CYCLE = re.compile(rf"R\d+/{_DURATION}|{_DURATION}(\s*,\s*{_DURATION})*")
_EXPR = re.compile(r"^\s*[$#]\{.*\}\s*$", re.S)


def camunda_local(ext: m.ExtensionElement) -> str | None:
    """``inputOutput`` for ``camunda:inputOutput`` (legacy Activiti namespace included)."""
    return ext.tag.split(":", 1)[1] if ext.tag.startswith("camunda:") else None


def check_extension_sites(
    defs: m.Definitions, report: Report, severity: Callable[[str | None], Severity]
) -> None:
    """Placement and content of every Camunda extension element in the file.

    ``severity(owner_id)``: how bad a content problem is for the element's process (errors
    where Camunda would refuse the deployment of an executable process)."""
    for site in defs.extension_sites:
        for ext in site.extensions:
            _check(ext, site.type, site.owner, report, severity)


def _check(
    ext: m.ExtensionElement,
    place: str,
    owner: str | None,
    report: Report,
    severity: Callable[[str | None], Severity],
) -> None:
    name = camunda_local(ext)
    if name is None or name not in ALLOWED_IN:
        return
    allowed = ALLOWED_IN[name]
    if allowed is not None and place not in allowed:
        report.add(
            "camunda.extension-placement",
            "warning",
            owner,
            f"camunda:{name} on a {place} is ignored by Camunda 7 (it reads it only on "
            f"{', '.join(sorted(allowed)[:6])}{' ...' if len(allowed) > 6 else ''}); move it or remove it",
        )
        return
    problem = _content_problem(name, ext)
    if problem:
        report.add(
            "camunda.extension", severity(owner), owner, f"camunda:{name} on {owner or place}: {problem}"
        )
    for child in ext.children:  # fields inside listeners, inputOutput inside a connector
        child_name = camunda_local(child)
        if child_name in ("field", "inputOutput") or (child_name or "").endswith("Listener"):
            _check(child, name, owner, report, severity)


def _children(ext: m.ExtensionElement, name: str) -> list[m.ExtensionElement]:
    return [c for c in ext.children if camunda_local(c) == name]


def _content_problem(name: str, ext: m.ExtensionElement) -> str | None:
    a = ext.attrs
    if name in ("executionListener", "taskListener"):
        impls = [k for k in _IMPL if a.get(k)] + (["script"] if _children(ext, "script") else [])
        if len(impls) != 1:
            return (
                f"needs exactly one of class, expression, delegateExpression or a script (has "
                f"{', '.join(impls) or 'none'}); Camunda refuses the deployment otherwise"
            )
        events = EXECUTION_EVENTS if name == "executionListener" else TASK_EVENTS
        event = a.get("event")
        if name == "taskListener" and not event:
            return f"needs an event ({', '.join(sorted(events))})"
        if event and event not in events:
            return f"event {event!r} is not one of {', '.join(sorted(events))}"
        return None
    if name == "field":
        values = [k for k in ("stringValue", "expression") if a.get(k) is not None]
        values += [
            c.tag.split(":", 1)[1] for c in ext.children if camunda_local(c) in ("string", "expression")
        ]
        if not a.get("name"):
            return "needs a name (the field of the delegate class it sets)"
        if len(values) != 1:
            return f"field {a['name']!r} needs exactly one value (stringValue, expression, or a string/expression child)"
        return None
    if name == "failedJobRetryTimeCycle":
        text = (ext.text or "").strip()
        if not text:
            return "is empty; write a cycle such as R3/PT10M"
        if not _EXPR.match(text) and not _RETRY_CYCLE.fullmatch(text):
            return f"{text!r} is not a retry cycle; write R<n>/<ISO-8601 duration> (R3/PT10M) or a list PT1M,PT5M"
        return None
    if name == "connector":
        ids = _children(ext, "connectorId")
        if not ids or not (ids[0].text or "").strip():
            return "needs a connectorId (http-connector, soap-http-connector or your own)"
        return None
    if name == "formData":
        missing = [i for i, f in enumerate(_children(ext, "formField")) if not f.attrs.get("id")]
        return f"form field #{missing[0] + 1} has no id" if missing else None
    if name == "formProperty":
        return None if a.get("id") else "needs an id"
    if name == "inputOutput":
        nameless = [
            c.tag
            for c in ext.children
            if camunda_local(c) in ("inputParameter", "outputParameter") and not c.attrs.get("name")
        ]
        return f"a {nameless[0]} has no name" if nameless else None
    if name in ("in", "out"):
        if not any(a.get(k) for k in ("source", "sourceExpression", "variables", "businessKey")):
            return 'needs source, sourceExpression, variables="all" or (for in) businessKey'
        if (a.get("source") or a.get("sourceExpression")) and not a.get("target"):
            return "has a source but no target variable"
        return None
    return None


__all__ = ["ALLOWED_IN", "camunda_local", "check_extension_sites"]
