"""Camunda 7 executability and ProcOS governance rules.

Why: Camunda 7 / Operaton deploy many processes that then fail at run time (an external task
without a topic, an unparsable JUEL condition, a ``PT5X`` timer, a call to an unknown key).
ProcOS adds governance from its design: no inline logic in a PEO, every external/TDE task has
an error boundary or retry policy, probabilistic TDEs name a guardrail policy, and
``correlationId`` travels into every call activity.

Scope and severity:
* Camunda rules run on ProcOS processes and on executable processes of Camunda 7 dialect
  files (Camunda or legacy Activiti extensions used; ``Definitions.dialect``); they are
  errors, except ``camunda.history-ttl`` and foreign condition languages, which are warnings
  outside ProcOS (an engine may be configured to accept them). Camunda 8 (Zeebe) files get
  one info finding instead: their rules differ.
* Governance rules are errors in ProcOS processes (see :func:`das.bpmn.rules.is_procos`:
  id prefix peo/pdo/tde, a ``procos.kind`` property, or a ``das-`` topic), warnings in other
  executable Camunda 7 processes, and skipped for everything else.
"""

from __future__ import annotations

from collections.abc import Callable

from das.bpmn import model as m
from das.bpmn.exprcheck import check_juel, check_timer
from das.bpmn.ns import JUEL_LANGUAGE
from das.bpmn.rules import Report, Severity, is_procos, procos_kind
from das.bpmn.rules_camunda_ext import check_extension_sites
from das.names import task_type_problem

_JUEL_ATTRS = (
    "camunda:expression",
    "camunda:delegateExpression",
    "camunda:assignee",
    "camunda:candidateUsers",
    "camunda:candidateGroups",
    "camunda:dueDate",
    "camunda:followUpDate",
    "camunda:priority",
    "camunda:taskPriority",
    "camunda:jobPriority",
    "camunda:collection",
    "camunda:calledElementVersion",
    "camunda:decisionRef",
    "calledElement",
)
_IMPL_ATTRS = ("camunda:class", "camunda:expression", "camunda:delegateExpression", "camunda:type")
_NEEDS_IMPL = ("serviceTask", "sendTask", "businessRuleTask")
RETRY_NAMES = ("retries", "retry", "maxRetries")
POLICY_NAMES = ("policy", "guardrailPolicy", "guardrail_policy", "guardrail", "das:policy", "policyName")
MODE_NAMES = ("mode", "das:mode")
PROBABILISTIC_TOPIC = "das-tde-probabilistic"


def _in_scope(proc: m.Process, defs: m.Definitions) -> bool:
    return is_procos(proc, defs) or (proc.is_executable and defs.dialect == "camunda7")


def _condition_language(f: m.SequenceFlow, defs: m.Definitions) -> str | None:
    """The flow's own language, else one declared on definitions (Camunda ignores the latter)."""
    return f.condition_language or defs.attrs.get("expressionLanguage")


def _is_juel(lang: str | None) -> bool:
    return lang in (None, "", "juel", JUEL_LANGUAGE) or "juel" in (lang or "").lower()


def _has_ext(n: m.FlowNode, tag: str) -> bool:
    def walk(exts: list[m.ExtensionElement]) -> bool:
        return any(e.tag == tag or walk(e.children) for e in exts)

    return walk(n.extensions)


def _named(n: m.FlowNode, names: tuple[str, ...]) -> str | None:
    """The value a task gives ``name`` via input parameter, property or camunda:in, if any."""
    for name in names:
        for source in (n.input_parameters, n.properties):
            if name in source:
                return source[name] or "?"
        for io in n.io:
            if io.kind == "in" and io.target == name:
                return io.source_expression or io.source or "?"
    return None


def is_probabilistic(n: m.FlowNode) -> bool:
    if n.camunda("topic") == PROBABILISTIC_TOPIC:
        return True
    mode = _named(n, MODE_NAMES)
    return mode is not None and "probabilistic" in mode


def is_tde_task(n: m.FlowNode) -> bool:
    """An external task, or a call of a TDE template (calledElement starting with ``tde``)."""
    if n.is_external_task:
        return True
    return n.type == "callActivity" and (n.called_element or "").lower().startswith("tde")


def _owner_severity(defs: m.Definitions) -> Callable[[str | None], Severity]:
    """Error when the owner lives in a process Camunda would deploy, warning otherwise."""

    def severity(owner: str | None) -> Severity:
        proc_id = owner if owner in defs.processes else None
        if owner in defs.nodes:
            proc_id = defs.nodes[owner].process
        elif owner in defs.flows:
            proc_id = defs.flows[owner].process
        proc = defs.processes.get(proc_id or "")
        return "error" if proc is not None and _in_scope(proc, defs) else "warning"

    return severity


def check_camunda(defs: m.Definitions, report: Report, known_processes: set[str] | None) -> None:
    if defs.dialect == "camunda8" and any(p.is_executable for p in defs.processes.values()):
        report.add(
            "camunda.dialect",
            "info",
            None,
            "Camunda 8 (Zeebe) file: Camunda 7 executability rules were skipped; DAS deploys to Camunda 7 / Operaton",
        )
    if defs.dialect == "camunda7":
        check_extension_sites(defs, report, _owner_severity(defs))
    for proc in defs.processes.values():
        procos = is_procos(proc, defs)
        if not _in_scope(proc, defs):
            continue
        if procos and not proc.is_executable:
            report.add(
                "camunda.executable",
                "error",
                proc.id,
                f'process {proc.id} is not executable; set isExecutable="true" so the engine deploys it',
            )
        if proc.is_executable and "camunda:historyTimeToLive" not in proc.attrs:
            report.add(
                "camunda.history-ttl",
                "error" if procos else "warning",
                proc.id,
                f"process {proc.id} has no camunda:historyTimeToLive; Camunda 7.20+ / Operaton refuse the "
                'deployment: add camunda:historyTimeToLive="P30D" (or a number of days)',
            )
        for nid in proc.node_ids:
            _check_node(defs, defs.nodes[nid], report, known_processes)
        for fid in proc.flow_ids:
            f = defs.flows[fid]
            if not f.condition:
                continue
            lang = _condition_language(f, defs)
            if f.condition_language is None and not _is_juel(lang) and "${" not in f.condition:
                report.add(
                    "camunda.expression-language",
                    "error" if procos else "warning",
                    f.id,
                    f"condition of flow {f.id} is in {lang} (declared on definitions), but Camunda 7 reads "
                    "conditions without a language attribute as JUEL; rewrite it as ${...}",
                )
            elif _is_juel(f.condition_language):
                err = check_juel(f.condition, require_expression=True)
                if err:
                    report.add("camunda.juel", "error", f.id, f"condition of flow {f.id}: {err}")


def _check_node(defs: m.Definitions, n: m.FlowNode, report: Report, known: set[str] | None) -> None:
    topic = n.camunda("topic")
    if n.camunda("type") == "external" and not topic:
        report.add(
            "camunda.topic",
            "error",
            n.id,
            f'external task {n.id} has no camunda:topic; add camunda:topic="<topic>" that a worker subscribes to',
        )
    if topic and n.camunda("type") != "external" and n.type in _NEEDS_IMPL:
        report.add(
            "camunda.topic",
            "error",
            n.id,
            f'{n.id} has camunda:topic but not camunda:type="external"; add camunda:type="external"',
        )
    if (
        n.type in _NEEDS_IMPL
        and not any(n.attrs.get(a) for a in _IMPL_ATTRS)
        and not _has_ext(n, "camunda:connector")
        and not (n.type == "businessRuleTask" and n.camunda("decisionRef"))
    ):
        report.add(
            "camunda.implementation",
            "error",
            n.id,
            f'{n.type} {n.id} has no implementation; add camunda:type="external" with camunda:topic '
            "(ProcOS adapters), or camunda:class / camunda:expression / camunda:delegateExpression",
        )
    for key in _JUEL_ATTRS:
        val = n.attrs.get(key)
        if val and ("${" in val or "#{" in val):
            err = check_juel(val)
            if err:
                report.add("camunda.juel", "error", n.id, f"{key} of {n.id}: {err}")
    for io in n.io:
        if io.source_expression:
            err = check_juel(io.source_expression)
            if err:
                report.add(
                    "camunda.juel", "error", n.id, f"camunda:{io.kind} sourceExpression of {n.id}: {err}"
                )
    for kind, params in (("input", n.input_parameters), ("output", n.output_parameters)):
        for name, val in params.items():
            if "${" in val or "#{" in val:
                err = check_juel(val)
                if err:
                    report.add("camunda.juel", "error", n.id, f"{kind} parameter {name} of {n.id}: {err}")
    mi = n.multi_instance
    if mi is not None:
        for label, expr in (
            ("loopCardinality", mi.loop_cardinality),
            ("completionCondition", mi.completion_condition),
        ):
            if expr and ("${" in expr or "#{" in expr):
                err = check_juel(expr)
                if err:
                    report.add("camunda.juel", "error", n.id, f"{label} of {n.id}: {err}")
        if not mi.loop_cardinality and not mi.attrs.get("camunda:collection"):
            report.add(
                "camunda.multi-instance",
                "error",
                n.id,
                f"multi-instance {n.id} has neither loopCardinality nor camunda:collection; add one",
            )
    for ed in n.event_definitions:
        if ed.kind == "timer":
            if len(ed.timer) != 1:
                report.add(
                    "camunda.timer",
                    "error",
                    n.id,
                    f"timer {n.id} needs exactly one of timeDate, timeDuration, timeCycle (has {len(ed.timer)}); "
                    "e.g. <timeDuration>PT5M</timeDuration>",
                )
            for kind, value in ed.timer.items():
                err = check_timer(kind, value)
                if err:
                    report.add("camunda.timer", "error", n.id, f"{kind} of {n.id}: {err}")
        if ed.kind == "conditional" and ed.condition:
            err = check_juel(ed.condition, require_expression=True)
            if err:
                report.add("camunda.juel", "error", n.id, f"condition of {n.id}: {err}")
        if (
            ed.kind == "message"
            and not ed.ref
            and n.type in ("startEvent", "intermediateCatchEvent", "boundaryEvent")
        ):
            report.add(
                "camunda.message",
                "error",
                n.id,
                f"message event {n.id} has no messageRef; Camunda correlates by message name: add "
                "<message id=.. name=..> and messageRef",
            )
        if ed.kind == "error" and not ed.ref and n.type == "endEvent":
            report.add(
                "camunda.error-ref",
                "warning",
                n.id,
                f"error end event {n.id} has no errorRef; add <error errorCode=..> so boundary events can catch it",
            )
    if n.type == "callActivity" and n.called_element:
        target = n.called_element
        if "${" in target or "#{" in target or target in defs.processes:
            pass  # an expression is resolved at run time; a process of this file is always known
        elif known is None:  # "not known" (validate()'s default): say so, never an error
            report.add(
                "camunda.call-target",
                "info",
                n.id,
                f"call target {target!r} of {n.id} was not checked; validate it together with the file that "
                "defines it, or pass --known KEY",
            )
        elif target not in known:
            report.add(
                "camunda.call-target",
                "error",
                n.id,
                f"call activity {n.id} calls {target!r}, which none of the given files defines and is not a known "
                "key; fix calledElement or include the target process",
            )


def check_governance(
    defs: m.Definitions, report: Report, known_task_types: set[str] | dict[str, str] | None = None
) -> None:
    """``known_task_types``: names, or name -> executor kind (then the step's mode is checked too)."""
    for proc in defs.processes.values():
        procos = is_procos(proc, defs)
        if not _in_scope(proc, defs):
            continue
        sev: Severity = "error" if procos else "warning"
        peo = procos_kind(proc) == "peo"
        for nid in proc.node_ids:
            n = defs.nodes[nid]
            if peo:
                _no_inline_logic(defs, n, report)
            _check_task_type(
                n,
                report,
                set(known_task_types) if known_task_types is not None else None,
                known_task_types if isinstance(known_task_types, dict) else None,
            )
            if is_tde_task(n):
                has_error_boundary = any("error" in b.event_kinds() for b in defs.boundaries(n.id))
                has_retry = (
                    _has_ext(n, "camunda:failedJobRetryTimeCycle") or _named(n, RETRY_NAMES) is not None
                )
                if not (has_error_boundary or has_retry):
                    report.add(
                        "governance.error-handling",
                        sev,
                        n.id,
                        f"{n.type} {n.id}{_nm(n)} has neither an error boundary event nor a retry policy; attach an "
                        "error boundary event, or add camunda:failedJobRetryTimeCycle (e.g. R3/PT1M) or a "
                        "'retries' input parameter",
                    )
            if is_probabilistic(n) and _named(n, POLICY_NAMES) is None:
                report.add(
                    "governance.guardrail",
                    sev,
                    n.id,
                    f"probabilistic TDE {n.id}{_nm(n)} names no guardrail policy; add an input parameter "
                    "(or camunda:in target) 'policy' naming a policy in guardrails/",
                )
            if n.type == "callActivity" and not any(
                io.kind == "in" and (io.target == "correlationId" or io.variables == "all") for io in n.io
            ):
                report.add(
                    "governance.correlation",
                    sev,
                    n.id,
                    f"call activity {n.id}{_nm(n)} does not pass correlationId; add "
                    '<camunda:in source="correlationId" target="correlationId"/>',
                )
        if peo:
            for fid in proc.flow_ids:
                f = defs.flows[fid]
                if f.condition and not _is_juel(f.condition_language):
                    report.add(
                        "governance.no-script",
                        "error",
                        f.id,
                        f"flow {f.id} in PEO {proc.id} has a {f.condition_language} script condition; PEOs route with "
                        "plain JUEL on routing variables: write ${...}",
                    )


def _check_task_type(
    n: m.FlowNode, report: Report, known: set[str] | None, known_executors: dict[str, str] | None = None
) -> None:
    """A literal ``taskType`` becomes a registry file name and a topic: it must be an identifier,
    and a step the worker serves from the registry must name a task type the registry has."""
    value = _named(n, ("taskType",))
    if value is None or "${" in value or "#{" in value:
        return
    value = value.strip()
    problem = task_type_problem(value)
    if problem:
        report.add("governance.task-type", "error", n.id, f"{n.type} {n.id}{_nm(n)}: {problem}")
        return
    if not is_tde_task(n):
        return
    if known is None:
        report.add(
            "governance.task-type-unknown",
            "info",
            n.id,
            f"{n.type} {n.id}{_nm(n)} names task type {value!r}; it must be in the TDE registry (or come "
            "with a wrapper) when deployed",
        )
    elif value not in known:
        report.add(
            "governance.task-type-unknown",
            "error",
            n.id,
            f"{n.type} {n.id}{_nm(n)} names task type {value!r}, which is not in the TDE registry "
            f"({', '.join(sorted(known)) or 'empty'}); the worker could not run it (`das tde list`)",
        )
    elif known_executors:
        _check_executor(n, value, known_executors.get(value), report)


def _check_executor(n: m.FlowNode, task_type: str, kind: str | None, report: Report) -> None:
    """A step's topic must be one an executor of its task type serves."""
    topic = n.camunda("topic") or ""
    if topic == "das-tde-probabilistic" and kind == "adapter":
        report.add(
            "governance.task-type-executor",
            "error",
            n.id,
            f"{n.type} {n.id}{_nm(n)} runs {task_type!r} probabilistically, but its registry executor is an "
            f"adapter: use mode deterministic (topic das-tde-{task_type})",
        )
    elif (
        topic.startswith("das-tde-")
        and topic not in ("das-tde-probabilistic", "das-tde-compensate")
        and kind == "probabilistic"
    ):
        report.add(
            "governance.task-type-executor",
            "error",
            n.id,
            f"{n.type} {n.id}{_nm(n)} runs {task_type!r} deterministically on {topic}, but it has no adapter "
            "(its registry executor is the probabilistic loop): use mode probabilistic",
        )


def _no_inline_logic(defs: m.Definitions, n: m.FlowNode, report: Report) -> None:
    proc = n.process
    if n.type == "scriptTask":
        report.add(
            "governance.no-script",
            "error",
            n.id,
            f"script task {n.id}{_nm(n)} in PEO {proc}: PEOs hold no inline logic; move the logic to an adapter "
            "(external task) or a TDE and call it",
        )
    elif _has_ext(n, "camunda:script"):
        report.add(
            "governance.no-script",
            "error",
            n.id,
            f"{n.id} in PEO {proc} carries an inline camunda:script (listener or parameter); move the logic to an "
            "adapter or TDE",
        )
    elif n.type in _NEEDS_IMPL and any(
        n.attrs.get(a) for a in ("camunda:class", "camunda:expression", "camunda:delegateExpression")
    ):
        report.add(
            "governance.no-script",
            "error",
            n.id,
            f"{n.id} in PEO {proc} runs in-engine code (camunda:class/expression); PEO work goes through external "
            'tasks: use camunda:type="external" with a topic',
        )


def _nm(n: m.FlowNode) -> str:
    return f" ({n.name!r})" if n.name else ""
