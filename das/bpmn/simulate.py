"""Simulate BPMN on SpiffWorkflow 3.x with mocked task outputs and a virtual clock.

What the adapter does about SpiffWorkflow's gaps (see ``prepare`` for the XML rewrite):

* JUEL conditions are parsed and interpreted with JUEL's own coercions (``das.bpmn.juel``,
  never Python ``eval``); an expression it cannot evaluate is reported as ``unsupported`` and
  decided by a seeded coin instead, and one that breaks JUEL's rules (``'x' * 3``) is the
  engine error the real engine would raise.
* Every task-like element (service, send, script, business-rule, user, manual, receive,
  call activity) becomes a manual task that the driver completes with mocked outputs, so
  multi-instance works on all of them and ``camunda:in/out`` need no engine support.
  Call activities are black boxes: their mocked outputs stand for the ``camunda:out``
  variables (simulate the called process on its own).
* Timers run on a virtual clock: intermediate timers fire at once; boundary timers fire
  when a mock says ``timeout`` (or by a seeded chance), never by wall-clock time.
* A mocked BPMN error is delivered to the matching error boundary of that task.
* ``take`` execution listeners of the form ``${execution.setVariable('v', expr)}`` run.
* Compensation is not executed: throw events become no-ops and are reported.
* Conditional events fire when their (translated) condition holds; an empty condition makes a
  catch event fire at once and a boundary event never (both reported as unsupported).
* Every stuck reason reads ``category: why; what to do`` (categories: loop bound hit,
  unmatched join, deadlock, uncaught BPMN error, no outgoing flow taken, engine error).
Each run is bounded by ``max_steps``; exceeding it is ``stuck: loop bound hit``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from das.bpmn import bounded, juel
from das.bpmn.sampledata import sample
from das.bpmn.simulate_prep import Prepared, prepare
from das.registry import load_registry, lookup

DEFAULT_MAX_STEPS = 500
GRACE_S = 5.0  # past time_limit_s (checked per step) before the child is killed
P_ERROR = 0.15
P_TIMEOUT = 0.1


class _StepLimit(Exception):
    pass


class _TimeLimit(Exception):
    pass


class _Uncaught(Exception):
    def __init__(self, code: str, element: str) -> None:
        super().__init__(code)
        self.code = code
        self.element = element


def load_mocks(path: str | Path | None) -> dict[str, Any]:
    """Mocks file (JSON or YAML): key (element id, name, topic, task type, called process,
    or ``*``) -> outputs dict | list of outcomes (scripted, last repeats) | {"random": [...]}.
    An outcome may hold ``error: CODE`` or ``timeout: true``. The key ``$start`` gives the
    start variables (otherwise condition variables start with random values)."""
    if path is None:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("mocks file must map keys to outcomes")
    return data


def simulate_file(
    path: str | Path,
    runs: int = 10,
    seed: int = 0,
    mocks: dict[str, Any] | str | Path | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    time_limit_s: float = 20.0,
    record_traces: bool = False,
) -> dict[str, Any]:
    """Run ``runs`` seeded simulations of the process in ``path``; never raises on bad BPMN.

    The runs happen in a child process (``das.bpmn.bounded``) holding one of the process's
    simulation slots (``SimulationBusy`` if none frees up), stopped at ``time_limit_s`` plus a
    grace and at its memory limit: then the report holds a ``simulation.limit`` finding and
    one stuck run saying so. ``record_traces`` adds ``"traces"``: per run (in run order, stuck
    runs too) the names of the activities the driver finished, in order (see ``_Run.trace``)."""
    mock_map = mocks if isinstance(mocks, dict) else load_mocks(mocks)
    _warm()
    with bounded.slot():
        try:
            return dict(
                bounded.run_in_child(
                    lambda: simulate_inline(
                        path, runs, seed, mock_map, max_steps, time_limit_s, record_traces
                    ),
                    wall_s=time_limit_s + GRACE_S,
                )
            )
        except bounded.LimitHit as hit:
            return limit_report(str(path), hit)


def limit_report(file: str, hit: bounded.LimitHit) -> dict[str, Any]:
    """What a simulation stopped by its time or memory limit reports: a finding and a stuck run."""
    why = f"the simulation was stopped: {hit.message}"
    fix = "; simplify the process (fewer or smaller multi-instances, loops, expressions) or simulate it in parts"
    return {
        "file": file,
        "runs": 0,
        "completed": 0,
        "coverage": 0.0,
        "unreached": [],
        "ends": {},
        "stuck": [{"run": 0, "reason": f"limit hit: {why}{fix}", "element": None}],
        "unsupported": [{"construct": f"{hit.kind} limit", "element": None}],
        "input_problems": [],
        "findings": [
            {"rule": "simulation.limit", "severity": "error", "element": None, "message": why + fix}
        ],
    }


def _warm() -> None:
    """Import and load in the parent what every child needs, so forked children start warm."""
    import SpiffWorkflow.bpmn.workflow  # noqa: F401
    import SpiffWorkflow.camunda.parser  # noqa: F401

    try:
        load_registry()
    except Exception:  # noqa: BLE001 - a broken registry is reported by validation, not here
        pass


def simulate_inline(
    path: str | Path,
    runs: int = 10,
    seed: int = 0,
    mocks: dict[str, Any] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    time_limit_s: float = 20.0,
    record_traces: bool = False,
) -> dict[str, Any]:
    """``simulate_file`` in this process, without its child, slot or memory limit (the child's body)."""
    result: dict[str, Any] = {
        "file": str(path),
        "runs": runs,
        "completed": 0,
        "stuck": [],
        "coverage": 0.0,
        "unreached": [],
        "ends": {},
        "unsupported": [],
    }
    mock_map = mocks or {}
    try:
        prep = prepare(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a finding, not a crash
        result["runs"] = 0
        result["unsupported"].append({"construct": "unparseable", "element": _one_line(exc)})
        return result
    result["unsupported"] = prep.unsupported
    if record_traces:
        result["traces"] = []
    if prep.spec is None:
        result["runs"] = 0
        result["unreached"] = sorted(prep.flow_nodes)
        return result
    reached: set[str] = set()
    ends: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    deadline = time.monotonic() + time_limit_s
    for run in range(runs):
        if time.monotonic() > deadline:
            result["runs"] = run
            result["unsupported"].append({"construct": "time limit", "element": f"stopped after {run} runs"})
            break
        prep.coin.seed(f"coin:{seed}:{run}")  # the coin deciding untranslatable conditions is seeded too
        sim = _Run(prep, mock_map, random.Random(f"{seed}:{run}"), max_steps, deadline=deadline)
        outcome = sim.execute()
        for problem in sim.input_problems:
            if problem not in problems:
                problems.append(problem)
        reached |= sim.reached
        if record_traces:
            result["traces"].append(list(sim.trace))
        for e in sim.ends:
            ends[e] += 1
        if outcome is None:
            result["completed"] += 1
        else:
            reason, element = outcome
            result["stuck"].append({"run": run, "reason": reason, "element": element})
    nodes = prep.flow_nodes
    result["coverage"] = round(len(reached & nodes) / len(nodes), 4) if nodes else 1.0
    result["unreached"] = sorted(nodes - reached)
    result["ends"] = dict(sorted(ends.items()))
    result["input_problems"] = problems  # drafted steps whose required inputs were unset on some path
    return result


def _explain(exc: BaseException, element: str | None) -> str:
    """An engine exception as a sentence a modeller can act on."""
    import re

    msg = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else ""
    where = f" at {element}" if element else ""
    hit = re.match(r"No conditions satisfied for (.+?)\.?$", msg)
    if hit:
        return (
            f"no outgoing flow taken: no condition of gateway {hit.group(1)} was true for the mocked "
            "variables and it has no default flow (a real engine raises an incident); add a default flow"
        )
    hit = re.match(r"Error evaluating expression '(.*)'\.?$", msg, re.S)
    if hit:
        cause = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
        why = f" ({_one_line(cause)})" if cause else ""
        return (
            f"engine error{where}: the expression {hit.group(1)!r} could not be evaluated{why}; "
            "rewrite it as a JUEL expression over process variables"
        )
    return (
        f"engine error{where}: SpiffWorkflow stopped with {_one_line(exc)}; the construct is probably not "
        "supported by the simulator"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class _Run:
    def __init__(
        self,
        prep: Prepared,
        mocks: dict[str, Any],
        rng: random.Random,
        max_steps: int,
        deadline: float | None = None,
    ) -> None:
        self.prep = prep
        self.deadline = deadline  # time.monotonic() after which the run stops (checked per step)
        self.mocks = mocks
        self.rng = rng
        self.max_steps = max_steps
        self.steps = 0
        self.reached: set[str] = set()
        self.ends: list[str] = []
        self.calls: Counter[str] = Counter()
        self.input_problems: list[dict[str, Any]] = []
        # activities (task-like elements, by name, else id) in the order the driver finished them:
        # completed, or ended by a mocked error / timeout that a boundary event caught
        self.trace: list[str] = []

    def execute(self) -> tuple[str, str | None] | None:
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.util.task import TaskState

        prep = self.prep
        try:
            wf = BpmnWorkflow(prep.spec, prep.subprocess_specs, script_engine=prep.engine)
            wf.task_removed_event.connect(_drop_orphan_subprocess)
            start = wf.get_tasks()
            data = {"correlationId": f"sim-{self.rng.randrange(10**6)}", "taskSpec": {}}
            # process inputs: random values for the variables conditions test, unless scripted
            data.update({var: self.rng.choice(vals) for var, vals in prep.condition_values.items()})
            data.update({v: ["a", "b"] for v in prep.collections})
            data.update(self._step_inputs())
            data.update(self.mocks.get("$start", {}) if isinstance(self.mocks.get("$start"), dict) else {})
            for t in start:
                t.data.update(data)
            while True:
                wf.do_engine_steps(will_complete_task=self._before, did_complete_task=self._after)
                if wf.is_completed():
                    return None
                ready = [t for t in wf.get_tasks(state=TaskState.READY) if t.task_spec.manual]
                if ready:
                    task = self.rng.choice(ready)
                    self._tick(task)
                    self._complete(wf, task)
                    continue
                if self._fire_waiting(wf):
                    continue
                return self._diagnose(wf)
        except _TimeLimit:
            return (
                "time limit hit: the simulation's time ran out during this run; simplify the process or "
                "simulate it in parts",
                self._last,
            )
        except _StepLimit:
            return (
                f"loop bound hit: the run took more than {self.max_steps} steps, so a cycle probably never "
                "exits; give the loop an exit condition the mocks can satisfy, or raise --max-steps",
                self._last,
            )
        except _Uncaught as exc:
            return (
                f"uncaught BPMN error {exc.code}: the mocked task threw it and no error boundary or error "
                "event sub-process catches it; add an error boundary for that code",
                exc.element,
            )
        except Exception as exc:  # noqa: BLE001 - engine errors are findings of this run
            element = getattr(getattr(exc, "task_spec", None), "bpmn_id", None)
            return (_explain(exc, element), element)

    _last: str | None = None

    def _tick(self, task: Any) -> None:
        self.steps += 1
        self._last = getattr(task.task_spec, "bpmn_id", None) or self._last
        if self.steps > self.max_steps:
            raise _StepLimit()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _TimeLimit()

    def _before(self, task: Any) -> None:
        self._tick(task)
        bid = getattr(task.task_spec, "bpmn_id", None)
        if bid in self.prep.listeners_into:
            parent = task.parent
            src = getattr(parent.task_spec, "bpmn_id", None) if parent is not None else None
            for source, exprs in self.prep.listeners_into[bid]:
                if source == src or (source is None):
                    for var, expr in exprs:
                        task.data[var] = juel.evaluate(expr, task.data)

    def _after(self, task: Any) -> None:
        bid = getattr(task.task_spec, "bpmn_id", None)
        if bid:
            self.reached.add(bid)
            if bid in self.prep.end_events:
                self.ends.append(bid)

    def _step_inputs(self) -> dict[str, Any]:
        """Start values for the variables drafted steps read that no step writes (they are the
        process's inputs), sampled from the registry input schemas."""
        written = {
            t
            for info in self.prep.tasks.values()
            for t in (info.get("tde") or {}).get("outputs", {}).values()
        }
        data: dict[str, Any] = {}
        for info in self.prep.tasks.values():
            tde = info.get("tde")
            entry = _registry_entry(tde["task_type"]) if tde else None
            if entry is None or tde is None:
                continue
            props = entry.input_schema.get("properties", {})
            for field, source in tde["inputs"].items():
                if source not in written and source not in data:
                    data[source] = sample(props.get(field, {}), self.rng)
        return data

    def _tde_outcome(self, task: Any, tde: dict[str, Any]) -> dict[str, Any] | None:
        """A drafted step's simulated result: its mapped inputs are checked against the input
        schema's required fields, its outputs sampled from the output schema."""
        entry = _registry_entry(tde["task_type"])
        if entry is None:
            return None
        bid = task.task_spec.bpmn_id
        for field in entry.input_schema.get("required", []):
            source = tde["inputs"].get(field)
            if source is None or task.data.get(source) is None:
                self.input_problems.append({"element": bid, "field": field, "variable": source})
        outputs = sample(entry.output_schema, self.rng)
        outputs = outputs if isinstance(outputs, dict) else {}
        # routing variables the process tests still vary (as for any task), then the step's own
        out = {
            var: self.rng.choice(vals)
            for var, vals in self.prep.condition_values.items()
            if var not in self.prep.collections
        }
        out.setdefault("tdeStatus", "succeeded")
        out.update({target: outputs.get(field) for field, target in tde["outputs"].items()})
        out["tdeResult"] = {"status": out["tdeStatus"], "outputs": outputs}
        return out

    def _outcome(self, task: Any) -> dict[str, Any]:
        info = self.prep.tasks.get(task.task_spec.bpmn_id, {})
        for key in info.get("keys", []) + ["*"]:
            if key in self.mocks:
                spec = self.mocks[key]
                n = self.calls[key]
                self.calls[key] += 1
                if isinstance(spec, list):
                    return dict(spec[min(n, len(spec) - 1)]) if spec else {}
                if isinstance(spec, dict) and "random" in spec:
                    return dict(self.rng.choice(spec["random"]))
                return dict(spec) if isinstance(spec, dict) else {}
        errors = info.get("errors", [])
        if errors and self.rng.random() < P_ERROR:
            return {"error": self.rng.choice(errors)}
        if info.get("timers") and self.rng.random() < P_TIMEOUT:
            return {"timeout": True}
        if info.get("tde"):
            simulated = self._tde_outcome(task, info["tde"])
            if simulated is not None:
                return simulated
        out: dict[str, Any] = {}
        for var, values in self.prep.condition_values.items():
            if var not in self.prep.collections:
                out[var] = self.rng.choice(values)
        return out

    def _complete(self, wf: Any, task: Any) -> None:
        outcome = self._outcome(task)
        bid = task.task_spec.bpmn_id
        self.trace.append(getattr(task.task_spec, "bpmn_name", None) or bid)
        if "error" in outcome:
            if self._throw(wf, task, "error", str(outcome["error"])):
                return
            raise _Uncaught(str(outcome["error"]), bid)
        if outcome.get("timeout") and self._throw(wf, task, "timer", None):
            return
        outcome.pop("error", None)
        outcome.pop("timeout", None)
        task.data.update(
            {k: v for k, v in outcome.items() if k not in self.prep.collections or isinstance(v, list)}
        )
        task.run()
        self.reached.add(bid)

    def _throw(self, wf: Any, task: Any, kind: str, code: str | None) -> bool:
        """Deliver an error / timer to a boundary event of ``task``; False if none matches."""
        from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
        from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
        from SpiffWorkflow.bpmn.util.event import BpmnEvent

        host = task
        # a multi-instance child's boundaries hang off its parent instance task
        while host is not None and not _boundary_children(host):
            host = (
                host.parent
                if host.parent is not None and host.parent.task_spec.bpmn_id == task.task_spec.bpmn_id
                else None
            )
        if host is None:
            return False
        for b in _boundary_children(host):
            ed = getattr(b.task_spec, "event_definition", None)
            if kind == "error" and isinstance(ed, ErrorEventDefinition) and ed.code in (None, code):
                b.task_spec.catch(b, BpmnEvent(ErrorEventDefinition(code or "error", code=code), {}))
            elif kind == "timer" and isinstance(ed, TimerEventDefinition):
                b._set_internal_data(event_fired=True)
            else:
                continue
            b.task_spec._update(b)
            return True
        return False

    def _fire_waiting(self, wf: Any) -> bool:
        """Virtual clock and message delivery for waiting catch events (not boundaries)."""
        from SpiffWorkflow.bpmn.util.event import BpmnEvent
        from SpiffWorkflow.util.task import TaskState

        waiting = [
            t
            for t in wf.get_tasks(state=TaskState.WAITING)
            if getattr(t.task_spec, "event_definition", None) is not None and not _is_boundary(t)
        ]
        # a conditional event fires when its condition holds for the current data; nothing the
        # simulator can deliver makes a false condition true, so it is not a candidate then
        conditional = [
            t for t in waiting if type(t.task_spec.event_definition).__name__ == "ConditionalEventDefinition"
        ]
        for t in conditional:
            t.task_spec._update(t)
            if t.state != TaskState.WAITING:
                self._tick(t)
                return True
        waiting = [t for t in waiting if t not in conditional]
        if not waiting:
            return False
        task = self.rng.choice(waiting)
        self._tick(task)
        ed = task.task_spec.event_definition
        if type(ed).__name__.endswith("TimerEventDefinition"):
            task._set_internal_data(event_fired=True)
            task.task_spec._update(task)
        else:
            payload: dict[str, Any] = (
                {"payload": {}, "result_var": None} if "Message" in type(ed).__name__ else {}
            )
            task.task_spec.catch(task, BpmnEvent(ed, payload))
            task.task_spec._update(task)
        return True

    def _diagnose(self, wf: Any) -> tuple[str, str | None]:
        from SpiffWorkflow.util.task import TaskState

        waiting = [t for t in wf.get_tasks(state=TaskState.WAITING) if not _is_boundary(t)]
        for t in waiting:
            name = type(t.task_spec).__name__
            if "Gateway" in name:
                return (
                    f"unmatched join: gateway {t.task_spec.bpmn_id} waits for a branch that can no longer "
                    "arrive; join alternative branches with an exclusive gateway",
                    t.task_spec.bpmn_id,
                )
        for t in waiting:
            if type(getattr(t.task_spec, "event_definition", None)).__name__ == "ConditionalEventDefinition":
                return (
                    f"deadlock: conditional event {t.task_spec.bpmn_id} waits for a condition that is false for "
                    "the mocked variables and nothing else can run; script the variables it tests in a mocks "
                    "file",
                    t.task_spec.bpmn_id,
                )
        el = waiting[0].task_spec.bpmn_id if waiting else None
        return (
            f"deadlock: nothing can proceed and {el or 'no element'} waits for an event the simulator "
            "cannot deliver",
            el,
        )


def _drop_orphan_subprocess(workflow: Any, task: Any) -> None:
    """SpiffWorkflow 3.2 removes tasks from the tree (a join dropping an earlier branch, say)
    without deleting the sub-process a removed task ran; the next engine step then looks the
    removed task up and fails with ``TaskNotFoundException``; a removed waiting event stays
    registered and the next timer refresh fails on its missing parent. Delete such orphans,
    nested ones too, and unregister their events."""
    top = getattr(workflow, "top_workflow", None) or workflow
    top.event_manager.tasks.pop(task.id, None)
    stack = [task.id]
    while stack:
        sp = top.subprocesses.pop(stack.pop(), None)
        if sp is not None:
            for tid in sp.tasks:
                top.event_manager.tasks.pop(tid, None)
            stack.extend(sp.tasks)


def _is_boundary(task: Any) -> bool:
    return task.parent is not None and type(task.parent.task_spec).__name__ == "BoundaryEventSplit"


def _boundary_children(task: Any) -> list[Any]:
    parent = task.parent
    if parent is None or type(parent.task_spec).__name__ != "BoundaryEventSplit":
        return []
    return [c for c in parent.children if c is not task and getattr(c.task_spec, "event_definition", None)]


def simulate_xml(xml: str | bytes, **kw: Any) -> dict[str, Any]:
    """Convenience for tests and the author loop: simulate XML text via a temp file."""
    import tempfile

    data = xml.encode() if isinstance(xml, str) else xml
    with tempfile.NamedTemporaryFile(suffix=".bpmn", delete=False) as fh:
        fh.write(data)
        name = fh.name
    try:
        return simulate_file(name, **kw)
    finally:
        Path(name).unlink(missing_ok=True)


def _registry_entry(task_type: str) -> Any:
    """The TDE registry entry a drafted step names (None if unknown: validation reports that)."""
    try:
        return lookup(task_type)
    except Exception:  # noqa: BLE001 - a broken registry must not break simulation
        return None


__all__ = ["simulate_file", "simulate_xml", "load_mocks"]
