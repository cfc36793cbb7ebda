"""Rewrite BPMN so SpiffWorkflow's Camunda parser can run it, and collect what the
simulation driver needs (mock keys, error codes, listeners, coverage targets).

Everything the rewrite cannot keep faithfully is named in ``unsupported``.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from das.bpmn import juel
from das.bpmn.ns import BPMN_NS, CAMUNDA_NS, local
from das.bpmn.safexml import load_xml
from das.bpmn.simulate_implicit import make_explicit

TASKLIKE = {
    "serviceTask",
    "sendTask",
    "scriptTask",
    "businessRuleTask",
    "userTask",
    "receiveTask",
    "task",
    "callActivity",
    "manualTask",
}
NOT_FLOW_NODES = {
    "sequenceFlow",
    "association",
    "textAnnotation",
    "dataObject",
    "dataObjectReference",
    "dataStoreReference",
    "laneSet",
    "group",
    "ioSpecification",
    "extensionElements",
    "documentation",
    "property",
    "dataInputAssociation",
    "dataOutputAssociation",
}
FLOW_NODES = TASKLIKE | {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "exclusiveGateway",
    "inclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
    "complexGateway",
    "subProcess",
    "transaction",
    "adHocSubProcess",
}
SUBPROCESSES = {"subProcess", "transaction", "adHocSubProcess"}
BOUNDARY_TIMER = '"P36500D"'  # JUEL string literals: the script engine evaluates timer values
IMMEDIATE_TIMER = '"PT0S"'
MAX_CARDINALITY = 100  # multi-instance instances per activity in simulation
_BPMN_LANGUAGE = BPMN_NS.lower()  # expressionLanguage naming BPMN itself means JUEL to Camunda


def m(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


@dataclass
class Prepared:
    spec: Any = None
    subprocess_specs: dict[str, Any] = field(default_factory=dict)
    engine: Any = None
    flow_nodes: set[str] = field(default_factory=set)
    end_events: set[str] = field(default_factory=set)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    condition_values: dict[str, list[Any]] = field(default_factory=dict)
    collections: set[str] = field(default_factory=set)
    listeners_into: dict[str, list[tuple[str | None, list[tuple[str, str]]]]] = field(default_factory=dict)
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    synthetic: set[str] = field(default_factory=set)  # elements the rewrite added (not coverage targets)
    coin: random.Random = field(default_factory=random.Random)

    def note(self, construct: str, element: str | None) -> None:
        item = {"construct": construct, "element": element}
        if item not in self.unsupported:
            self.unsupported.append(item)


def _load(path: str | Path) -> etree._ElementTree:
    return load_xml(str(path))  # the safe loader: no DTD, no entities, size-capped


def prepare(path: str | Path) -> Prepared:
    """Parse ``path`` safely, rewrite it for SpiffWorkflow and build the process spec."""
    prep = Prepared()
    root = copy.deepcopy(_load(path).getroot())
    if root.tag != m("definitions"):
        raise ValueError("not a BPMN 2.0 definitions document")
    processes = root.findall(m("process"))
    for collab in root.findall(m("collaboration")):
        pools = [p for p in collab.findall(m("participant")) if p.get("processRef")]
        if len(pools) > 1:
            prep.note(
                f"collaboration with {len(pools)} pools (first executable pool simulated)", collab.get("id")
            )
        for mf in collab.iter(m("messageFlow")):
            prep.note("messageFlow (messages are delivered at once)", mf.get("id"))
        root.remove(collab)
    main = _pick_main(processes)
    if main is None:
        prep.note("no process with flow elements", None)
        return prep
    for other in processes:
        if other is not main:
            root.remove(other)
    main.set("isExecutable", "true")
    _rewrite(prep, root, main)
    _build(prep, root, main.get("id", ""), str(path))
    return prep


def _pick_main(processes: list[etree._Element]) -> etree._Element | None:
    def has_start(p: etree._Element) -> bool:
        return p.find(m("startEvent")) is not None

    def has_nodes(p: etree._Element) -> bool:
        return any(local(c) in FLOW_NODES for c in p)

    for p in processes:
        if p.get("isExecutable") == "true" and has_start(p):
            return p
    # else a process with a start event, else one whose start is implicit (elements without
    # incoming flows; see simulate_implicit)
    return next((p for p in processes if has_start(p)), next((p for p in processes if has_nodes(p)), None))


def _rewrite(prep: Prepared, root: etree._Element, main: etree._Element) -> None:
    errors = {
        e.get("id"): e.get("errorCode") or e.get("name") or e.get("id") for e in root.findall(m("error"))
    }
    comp_handlers: set[str] = set()
    make_explicit(prep, main)
    for el in list(main.iter()):
        if not isinstance(el.tag, str) or el.getparent() is None:
            continue
        tag = local(el)
        eid = el.get("id")
        if el.get("isForCompensation") == "true":
            comp_handlers.add(eid or "")
            prep.note("compensation handler (not executed)", eid)
            el.getparent().remove(el)
            continue
        if tag in ("startEvent", "intermediateCatchEvent", "boundaryEvent"):
            for ced in el.findall(m("conditionalEventDefinition")):
                _conditional_event(prep, el, ced, tag)
        if tag == "boundaryEvent":
            _boundary(prep, el, errors)
        elif tag in ("intermediateCatchEvent", "startEvent"):
            for t in el.findall(m("timerEventDefinition")):
                _set_timer(t, IMMEDIATE_TIMER)
        if tag in ("intermediateThrowEvent", "endEvent"):
            for ced in el.findall(m("compensateEventDefinition")):
                prep.note("compensation throw (no-op in simulation)", eid)
                el.remove(ced)
            for med in el.findall(m("messageEventDefinition")):
                el.remove(med)  # the receiving pool is not simulated
        if tag in ("dataStoreReference", "dataInputAssociation", "dataOutputAssociation", "dataStore"):
            if tag == "dataStoreReference":
                prep.note("data store (ignored)", eid)
            el.getparent().remove(el)
            continue

        if tag in TASKLIKE:
            _tasklike(prep, el)
        elif tag in SUBPROCESSES:
            _multi_instance(prep, el)  # a multi-instance sub-process needs its collection too
        if tag == "conditionExpression":
            _condition(prep, el)
        if tag in ("sequenceFlow",) or tag in FLOW_NODES:
            _listeners(prep, el, tag)
        if tag in FLOW_NODES and eid and el.getparent() is not None and eid not in prep.synthetic:
            prep.flow_nodes.add(eid)
        if tag == "endEvent" and el.getparent() is main and eid:
            prep.end_events.add(eid)
    for gw in list(main.iter(m("exclusiveGateway"), m("inclusiveGateway"))):
        _gateway_defaults(prep, main, gw)
    for ds in root.findall(m("dataStore")):
        root.remove(ds)
    for assoc in list(main.iter(m("association"))):
        if assoc.get("targetRef") in comp_handlers or assoc.get("sourceRef") not in prep.flow_nodes:
            assoc.getparent().remove(assoc)
    for var, vals in list(prep.condition_values.items()):
        if var.startswith("das_loop_"):
            del prep.condition_values[var]
            continue
        uniq: list[Any] = []
        for v in vals:
            if v not in uniq:
                uniq.append(v)
        prep.condition_values[var] = uniq + _others(uniq)


def _conditional_event(prep: Prepared, el: etree._Element, ced: etree._Element, tag: str) -> None:
    """A conditional event's JUEL condition is translated like a flow condition. Descriptive
    models often leave it empty (``<condition/>``), which SpiffWorkflow would evaluate as the
    expression ``None`` and fail: such a start or intermediate event is treated as satisfied at
    once, such a boundary event as never firing, and the element is reported."""
    eid = el.get("id")
    cond = ced.find(m("condition"))
    if cond is None:
        cond = etree.SubElement(ced, m("condition"))
    text = (cond.text or "").strip()
    lang = cond.get("language")
    if text and not (lang and lang.lower() not in ("juel", _BPMN_LANGUAGE)):
        try:
            cond.text = juel.to_body(text)
            for var, vals in juel.literals(text).items():
                prep.condition_values.setdefault(var, []).extend(vals)
            for var in juel.variables(text) - set(juel.literals(text)):
                prep.condition_values.setdefault(var, []).extend([True, False])
            cond.attrib.pop("language", None)
            return
        except juel.JuelUnsupported:
            pass
    why = "without a condition" if not text else "with a condition that is not translatable JUEL"
    if tag == "boundaryEvent":
        cond.text = "false"
        prep.note(f"conditional boundary event {why} (never fires in simulation)", eid)
    else:
        cond.text = "true"
        prep.note(f"conditional event {why} (treated as satisfied at once)", eid)
    cond.attrib.pop("language", None)


def _gateway_defaults(prep: Prepared, main: etree._Element, gw: etree._Element) -> None:
    """Unconditioned non-default flows out of a gateway get a seeded coin; a gateway whose
    conditions are all coins gets a default so some flow is always taken."""
    gid = gw.get("id")
    outs = [f for f in main.iter(m("sequenceFlow")) if f.get("sourceRef") == gid]
    if len(outs) == 1:
        only = outs[0].find(m("conditionExpression"))
        if only is not None and (only.text or "").strip() == juel.COIN:
            outs[0].remove(only)  # the only way on: a coin could only strand the run
    if len(outs) < 2:
        return
    default = gw.get("default")
    for f in outs:
        if f.get("id") != default and f.find(m("conditionExpression")) is None:
            ce = etree.SubElement(f, m("conditionExpression"))
            ce.text = juel.COIN
            prep.note("gateway flow without condition (decided by a seeded coin)", f.get("id"))
    if default is None:
        conds = [f.find(m("conditionExpression")) for f in outs]
        if all((c.text or "").strip() in (juel.COIN, "") for c in conds if c is not None):
            last = outs[-1]
            last.remove(last.find(m("conditionExpression")))
            gw.set("default", last.get("id", ""))


def _others(vals: list[Any]) -> list[Any]:
    """Values that take the other side of every comparison: above the largest compared number
    and below the smallest (``score < 600`` must be reachable too), the negated boolean."""
    if not vals:
        return [True]
    first = vals[0]
    if isinstance(first, bool):
        return [not first]
    numbers = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers:
        low = min(numbers)
        below = low - 1 if isinstance(low, int) or abs(low) >= 1 else low / 2 if low > 0 else low - 1
        return [max(numbers) + 1, below]
    return ["other"]


def _set_timer(ted: etree._Element, value: str) -> None:
    for child in list(ted):
        ted.remove(child)
    td = etree.SubElement(ted, m("timeDuration"))
    td.text = value


def _boundary(prep: Prepared, el: etree._Element, errors: dict[str, str]) -> None:
    host = el.get("attachedToRef", "")
    info = prep.tasks.setdefault(host, {"keys": [], "errors": [], "timers": False})
    if el.find(m("compensateEventDefinition")) is not None:
        prep.note("compensation boundary (not executed)", el.get("id"))
        el.getparent().remove(el)
        return
    for ed in el.findall(m("errorEventDefinition")):
        ref = ed.get("errorRef")
        info["errors"].append(errors.get(ref, ref) if ref else "DAS_ERROR")
    for t in el.findall(m("timerEventDefinition")):
        _set_timer(t, BOUNDARY_TIMER)
        info["timers"] = True


def _json_map(raw: str | None) -> dict[str, str]:
    import json

    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _tasklike(prep: Prepared, el: etree._Element) -> None:
    eid = el.get("id", "")
    info = prep.tasks.setdefault(eid, {"keys": [], "errors": [], "timers": False})
    keys = [eid]
    if el.get("name"):
        keys.append(el.get("name", ""))
    for attr in ("topic", "calledElement"):
        val = el.get(f"{{{CAMUNDA_NS}}}{attr}") or el.get(attr)
        if val:
            keys.append(val)
    params = {p.get("name"): (p.text or "").strip() for p in el.iter(f"{{{CAMUNDA_NS}}}inputParameter")}
    if params.get("taskType"):
        keys.append(params["taskType"])
    if params.get("taskType") and (
        "tdeInputs" in params or "tdeOutputs" in params
    ):  # a drafted step's contract
        info["tde"] = {
            "task_type": params["taskType"],
            "inputs": _json_map(params.get("tdeInputs")),
            "outputs": _json_map(params.get("tdeOutputs")),
        }
    info["keys"] = keys + info["keys"]
    if local(el) == "callActivity":
        info["keys"].append("callActivity")
    el.tag = m("manualTask")
    for child in list(el):
        if local(child) in (
            "script",
            "ioSpecification",
            "dataInputAssociation",
            "dataOutputAssociation",
            "standardLoopCharacteristics",
        ):
            if local(child) == "standardLoopCharacteristics":
                prep.note("standardLoopCharacteristics (run once)", eid)
            el.remove(child)
    _multi_instance(prep, el)


def _multi_instance(prep: Prepared, el: etree._Element) -> None:
    """Make a multi-instance activity (task, call activity or sub-process) runnable: the
    collection becomes a start variable holding a list, the element variable gets a private
    name, and a missing or untranslatable collection / cardinality runs the body twice."""
    eid = el.get("id", "")
    mi = el.find(m("multiInstanceLoopCharacteristics"))
    if mi is None:
        return
    coll = mi.get(f"{{{CAMUNDA_NS}}}collection")
    if coll and coll.startswith("${"):
        coll = coll[2:-1].strip()
        mi.set(f"{{{CAMUNDA_NS}}}collection", coll)
    if mi.get(f"{{{CAMUNDA_NS}}}elementVariable"):  # instance-local in Camunda: keep it out of the way
        mi.set(f"{{{CAMUNDA_NS}}}elementVariable", f"das_item_{eid}")
    if coll and coll.isidentifier():
        prep.collections.add(coll)
    elif mi.find(m("loopCardinality")) is None:
        for child in list(mi):
            mi.remove(child)
        if coll:
            del mi.attrib[f"{{{CAMUNDA_NS}}}collection"]
        card = etree.SubElement(mi, m("loopCardinality"))
        card.text = "2"
        prep.note("multi-instance without a camunda:collection (run twice)", eid)
    else:
        card = mi.find(m("loopCardinality"))
        try:
            value = juel.evaluate(juel.to_body("${" + (card.text or "2").strip("${} ") + "}"), {})
            count = juel.to_long(value) if not isinstance(value, float) else int(value)
        except (ValueError, OverflowError):  # JuelUnsupported, JuelError: not a constant
            card.text = "2"
            prep.note("multi-instance cardinality expression (run twice)", eid)
        else:
            card.text = str(max(0, min(count, MAX_CARDINALITY)))
            if count > MAX_CARDINALITY:
                prep.note(f"multi-instance cardinality {count} (run {MAX_CARDINALITY} times)", eid)
    cc = mi.find(m("completionCondition"))
    if cc is not None:
        mi.remove(cc)
        prep.note("multi-instance completionCondition (ignored)", eid)


def _condition(prep: Prepared, el: etree._Element) -> None:
    flow = el.getparent()
    fid = flow.get("id") if flow is not None else None
    text = (el.text or "").strip()
    lang = el.get("language")
    if not text and flow is not None:
        flow.remove(el)  # an empty expression (tools write them) constrains nothing
        prep.note("empty condition expression (treated as none)", fid)
        return
    try:
        if lang and lang.lower() not in ("juel", _BPMN_LANGUAGE):
            raise juel.JuelUnsupported(lang)
        el.text = juel.to_body(text)
        for var, vals in juel.literals(text).items():
            prep.condition_values.setdefault(var, []).extend(vals)
        for var in juel.variables(text) - set(juel.literals(text)):
            prep.condition_values.setdefault(var, []).extend([True, False])
    except juel.JuelUnsupported:
        prep.note("condition not translatable JUEL (decided by a seeded coin)", fid)
        el.text = juel.COIN
    el.attrib.pop("language", None)


def _listeners(prep: Prepared, el: etree._Element, tag: str) -> None:
    eid = el.get("id")
    for lis in el.findall(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}executionListener"):
        event = lis.get("event", "take" if tag == "sequenceFlow" else "start")
        expr = lis.get("expression")
        try:
            if (
                not expr
                or (tag == "sequenceFlow") != (event == "take")
                or (tag != "sequenceFlow" and event != "start")
            ):
                raise juel.JuelUnsupported("listener")
            var, py = juel.set_variable(expr)
        except juel.JuelUnsupported:
            prep.note("executionListener (not run)", eid)
            continue
        if tag == "sequenceFlow":
            target, source = el.get("targetRef", ""), el.get("sourceRef")
        else:
            target, source = eid or "", None
        prep.listeners_into.setdefault(target, []).append((source, [(var, py)]))


_PATCHED = False


def _patch_spiff() -> None:
    """Work around a SpiffWorkflow 3.2 bug: a parallel join inside a loop merges the data of
    its earlier finished instances and drops their children while it iterates, so a later
    instance in the same list may already be detached (``parent is None``) and the join
    crashes with ``'NoneType' object has no attribute 'data'``. Detached instances are no
    longer part of the run, so they are skipped."""
    global _PATCHED
    if _PATCHED:
        return
    from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
    from SpiffWorkflow.util.deep_merge import DeepMerge
    from SpiffWorkflow.util.task import TaskState

    def _run_hook(self: Any, my_task: Any) -> bool:
        wf = my_task.workflow
        others = sorted(
            (
                t
                for t in wf.tasks.values()
                if t.task_spec == self
                and t.has_state(TaskState.FINISHED_MASK)
                and not my_task.is_descendant_of(t)
            ),
            key=lambda t: t.last_state_change,
        )
        for task in others:
            if task.parent is None or task.id not in wf.tasks:
                continue  # dropped together with an earlier instance's children
            DeepMerge.merge(my_task.data, task.parent.data)
            if task.has_state(TaskState.COMPLETED):
                task._drop_children(force=True)
        my_task._inherit_data()
        return True

    UnstructuredJoin._run_hook = _run_hook
    _PATCHED = True


def _build(prep: Prepared, root: etree._Element, pid: str, filename: str) -> None:
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
    from SpiffWorkflow.camunda.parser import CamundaParser

    _patch_spiff()
    coin = prep.coin

    class _SafeEnv(TaskDataEnvironment):
        """Expressions are JUEL, interpreted by ``juel.evaluate`` (bounded, no Python); no scripts."""

        def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
            return juel.evaluate(expression, context, coin=lambda: coin.random() < 0.5)

        def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> Any:
            raise juel.JuelUnsupported("scripts are not run in simulation")

    prep.engine = PythonScriptEngine(environment=_SafeEnv())
    try:
        parser = CamundaParser()
        parser.add_bpmn_xml(etree.ElementTree(root), filename=filename)
        prep.spec = parser.get_spec(pid)
        prep.subprocess_specs = parser.get_subprocess_specs(pid)
    except Exception as exc:  # noqa: BLE001 - SpiffWorkflow rejects the construct: name it
        text = str(exc).strip().splitlines()
        prep.note(
            f"SpiffWorkflow cannot parse: {text[0][:200] if text else type(exc).__name__}",
            getattr(exc, "id", None) or pid,
        )
        prep.spec = None
