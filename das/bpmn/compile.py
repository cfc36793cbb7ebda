"""Authoring form -> BPMN 2.0 XML (Camunda 7 dialect) with complete diagram interchange.

Choices, documented once here:

* TDE steps are external service tasks. Probabilistic: topic ``das-tde-probabilistic``;
  deterministic: topic ``das-tde-<task_type>`` (one adapter per task type). ``taskType``,
  ``mode`` and ``policy`` are passed as ``camunda:inputParameter`` s.
* Loops are gateway cycles (Camunda 7 does not run ``standardLoopCharacteristics``): an
  XOR join, the body, an XOR split whose back flow tests the condition and a counter
  ``das_loop_<id>`` kept by ``take`` execution listeners; the default flow leaves the loop.
* Structured conditions compile to null-safe JUEL through ``execution.getVariable``.
* Ids derive from the step path (``s2_b1_s1``) or an id hint, so recompiling is stable.
* ``camunda:asyncBefore`` on call activities and parallel joins (transaction boundaries).
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from das.bpmn import layout as L
from das.bpmn.authoring import Condition, Process, parse_authoring
from das.bpmn.compile_graph import KIND, CompileResult, Flow, Node, q
from das.bpmn.compile_graph import slug as _slug
from das.bpmn.compile_xml import render
from das.errors import InvalidInput

TDE_TOPIC = "das-tde-probabilistic"
_RESERVED_TARGETS = {"taskSpec", "taskType", "correlationId", "retries", "retryBackoff", "mode", "policy"}
ACTIVITIES = {"tde", "external", "user", "call", "subprocess"}


class LayoutError(InvalidInput):
    """The diagram is incomplete or unreadable (an element without a shape, overlaps)."""


def juel(cond: Condition | str) -> str:
    if isinstance(cond, str):
        return cond
    v = cond.value
    lit = (
        ("true" if v else "false")
        if isinstance(v, bool)
        else (repr(v) if not isinstance(v, str) else f"'{v}'")
    )
    return f"${{execution.getVariable('{cond.variable}') {cond.op} {lit}}}"


class _Compiler:
    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.pid = proc.key
        self.nodes: dict[str, Node] = {}
        self.flows: dict[str, Flow] = {}
        self.errors: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.used: set[str] = {proc.key}
        self.parallel_depth: dict[str | None, int] = {}

    # ---- ids and graph -------------------------------------------------------------
    def uid(self, base: str) -> str:
        base = _slug(base)
        cand, n = base, 2
        while cand in self.used:
            cand, n = f"{base}_{n}", n + 1
        self.used.add(cand)
        return cand

    def node(self, base: str, tag: str, container: str | None, lane: str | None, **kw: Any) -> str:
        nid = self.uid(base)
        self.nodes[nid] = Node(nid, tag, container=container, lane=lane, **kw)
        return nid

    def connect(
        self,
        src: str,
        tgt: str,
        container: str | None,
        condition: str | None = None,
        listeners: list[str] | None = None,
    ) -> str:
        fid = self.uid(f"f_{src}_{tgt}")
        listeners = list(listeners or [])
        for extra in self.nodes[tgt].extras:
            if extra[0] == "entry_counter":  # entering a loop from outside resets its counter
                listeners.append(f"${{execution.setVariable('{extra[1]}', 1)}}")
        self.flows[fid] = Flow(fid, src, tgt, container, condition, listeners)
        if ("default_next", "") in self.nodes[src].extras and "default" not in self.nodes[src].attrs:
            self.nodes[src].attrs["default"] = fid
        return fid

    def error_ref(self, code: str) -> str:
        if code not in self.errors:
            self.errors[code] = self.uid(f"Error_{code}")
        return self.errors[code]

    def message_ref(self, name: str) -> str:
        if name not in self.messages:
            self.messages[name] = self.uid(f"Message_{name}")
        return self.messages[name]

    def shape(self, nid: str) -> L.Frag:
        tag = self.nodes[nid].tag
        return L.shape(nid, KIND.get(tag, "task"))

    # ---- blocks ----------------------------------------------------------------------
    def steps(
        self, steps: list[Any], prefix: str, container: str | None, lane: str | None
    ) -> tuple[L.Frag, str, str] | None:
        parts: list[tuple[L.Frag, str, str]] = []
        for i, step in enumerate(steps):
            step_lane = getattr(step, "lane", None) or lane
            sid = self.uid(step.id or f"{prefix}s{i + 1}")
            part = self.step(step, sid, container, step_lane)
            if parts:
                self.connect(parts[-1][2], part[1], container)
            parts.append(part)
            lane = step_lane
        if not parts:
            return None
        return L.seq([p[0] for p in parts]), parts[0][1], parts[-1][2]

    def step(self, step: Any, sid: str, container: str | None, lane: str | None) -> tuple[L.Frag, str, str]:
        kind = step.type
        if kind in ACTIVITIES:
            return self.activity(step, sid, container, lane)
        if kind == "wait":
            ev = etree.Element(
                q("bpmn:messageEventDefinition")
                if hasattr(step.on, "message")
                else q("bpmn:timerEventDefinition")
            )
            if hasattr(step.on, "message"):
                ev.set("id", f"{sid}_med")
                ev.set("messageRef", self.message_ref(step.on.message))
            else:
                ev.set("id", f"{sid}_ted")
                _duration(ev, step.on.timer)
            self.nodes[sid] = Node(
                sid, "intermediateCatchEvent", step.name, container=container, lane=lane, children=[ev]
            )
            return self.shape(sid), sid, sid
        if kind == "choice":
            gw = "exclusiveGateway" if step.kind == "exclusive" else "inclusiveGateway"
            split = self.node(f"{sid}_split", gw, container, lane, name=step.name)
            join = self.node(f"{sid}_join", gw, container, lane)
            rows, row_flows = [], []
            branches = [(b, juel(b.condition)) for b in step.branches] + [(step.default, None)]
            for i, (br, cond) in enumerate(branches):
                tag = f"{sid}_b{i + 1}_" if cond is not None else f"{sid}_d_"
                sub = self.steps(br.steps, tag, container, lane)
                if sub is None:
                    fid = self.connect(split, join, container, cond)
                    rows.append(L.empty())
                    row_flows.append([fid])
                else:
                    fid = self.connect(split, sub[1], container, cond)
                    self.connect(sub[2], join, container)
                    rows.append(sub[0])
                    row_flows.append([])
                if cond is None:
                    self.nodes[split].attrs["default"] = fid
                elif br.name:
                    self.flows[fid].name = br.name
            return L.stack(self.shape(split), rows, self.shape(join), row_flows), split, join
        if kind == "parallel":
            split = self.node(f"{sid}_split", "parallelGateway", container, lane, name=step.name)
            join = self.node(
                f"{sid}_join", "parallelGateway", container, lane, attrs={"camunda:asyncBefore": "true"}
            )
            rows = []
            self.parallel_depth[container] = self.parallel_depth.get(container, 0) + 1
            for i, br in enumerate(step.branches):
                sub = self.steps(br.steps, f"{sid}_b{i + 1}_", container, lane)
                assert sub is not None  # min_length=1
                self.connect(split, sub[1], container)
                self.connect(sub[2], join, container)
                rows.append(sub[0])
            self.parallel_depth[container] -= 1
            return L.stack(self.shape(split), rows, self.shape(join), [[] for _ in rows]), split, join
        if kind == "loop":
            return self.loop(step, sid, container, lane)
        raise InvalidInput(f"unknown step type {kind!r}")

    def loop(self, step: Any, sid: str, container: str | None, lane: str | None) -> tuple[L.Frag, str, str]:
        join = self.node(f"{sid}_loop", "exclusiveGateway", container, lane, name=step.name)
        split = self.node(f"{sid}_again", "exclusiveGateway", container, lane, name="again?")
        body = self.steps(step.steps, f"{sid}_l_", container, lane)
        assert body is not None
        counter = f"das_loop_{sid}"
        self.connect(join, body[1], container)
        self.connect(body[2], split, container)
        cond = juel(step.condition)[2:-1]
        back = self.connect(
            split,
            join,
            container,
            condition=f"${{({cond}) && execution.getVariable('{counter}') < {step.max_iterations}}}",
            listeners=[f"${{execution.setVariable('{counter}', execution.getVariable('{counter}') + 1)}}"],
        )
        self.nodes[join].extras.append(("entry_counter", counter))
        self.nodes[split].extras.append(("default_next", ""))  # the flow leaving the loop
        frag = L.seq([self.shape(join), body[0], self.shape(split)])
        frag.via[back] = frag.h + L.GAP_Y / 2
        frag.h += L.GAP_Y
        return frag, join, split

    def activity(
        self, step: Any, sid: str, container: str | None, lane: str | None
    ) -> tuple[L.Frag, str, str]:
        kind = step.type
        n_bound = len(step.on_error) + (step.timeout is not None) + (step.compensation is not None)
        task_w = max(L.SIZES["task"][0], 24 + n_bound * 44)
        node = Node(sid, "serviceTask", step.name, container=container, lane=lane)
        self.nodes[sid] = node
        if kind in ("tde", "external"):
            node.attrs["camunda:type"] = "external"
            if kind == "tde":
                node.attrs["camunda:topic"] = (
                    TDE_TOPIC if step.mode == "probabilistic" else f"das-tde-{step.task_type}"
                )
                io = [("taskType", step.task_type), ("mode", step.mode)]
                policy = step.policy or ("default" if step.mode == "probabilistic" else None)
                if policy:
                    io.append(("policy", policy))
                # the step's contract with the worker (das/engine/step_spec.py): which process
                # variables feed which input fields, which output fields go to which variables
                bad = [
                    m.target
                    for m in step.outputs
                    if m.target.startswith("tde") or m.target in _RESERVED_TARGETS
                ]
                if bad:
                    raise InvalidInput(
                        f"step {step.name!r}: outputs may not write {', '.join(bad)} (set by the worker)"
                    )
                if step.inputs or step.outputs:  # a step without mappings may still be given a taskSpec
                    io.append(
                        ("tdeInputs", json.dumps({m.target: m.source for m in step.inputs}, sort_keys=True))
                    )
                    io.append(
                        ("tdeOutputs", json.dumps({m.source: m.target for m in step.outputs}, sort_keys=True))
                    )
                node.extras.append(("io", io + [("retries", str(step.retries))]))
            else:
                node.attrs["camunda:topic"] = step.topic
                io = [(pm.name, pm.value) for pm in step.inputs if pm.name != "retries"]
                node.extras.append(("io", io + [("retries", str(step.retries))]))
            host = L.shape(sid, "task", w=task_w)
        elif kind == "user":
            node.tag = "userTask"
            if step.assignee:
                node.attrs["camunda:assignee"] = step.assignee
            if step.candidate_groups:
                node.attrs["camunda:candidateGroups"] = ",".join(step.candidate_groups)
            host = L.shape(sid, "task", w=task_w)
        elif kind == "call":
            node.tag = "callActivity"
            node.attrs.update(
                {
                    "calledElement": step.process_key,
                    "camunda:calledElementBinding": "latest",
                    "camunda:asyncBefore": "true",
                }
            )
            node.extras.append(("in", "correlationId", "correlationId"))
            node.extras += [("in", m.source, m.target) for m in step.inputs if m.target != "correlationId"]
            node.extras += [("out", m.source, m.target) for m in step.outputs]
            node.extras.append(("retry", f"R{step.retries}/PT1M"))
            host = L.shape(sid, "task", w=task_w)
        else:  # subprocess
            node.tag = "subProcess"
            start = self.node(f"{sid}_start", "startEvent", sid, None)
            end = self.node(f"{sid}_end", "endEvent", sid, None)
            inner = self.steps(step.steps, f"{sid}_", sid, None)
            assert inner is not None
            self.connect(start, inner[1], sid)
            self.connect(inner[2], end, sid)
            body = L.seq([self.shape(start), inner[0], self.shape(end)]).shifted(L.PAD, L.PAD)
            host = L.Frag(body.w + 2 * L.PAD, body.h + 2 * L.PAD, body.cy)
            host.absorb(body)
            host.pos[sid] = L.Box(0, 0, host.w, host.h)
        if step.multi_instance:
            mi = etree.Element(q("bpmn:multiInstanceLoopCharacteristics"))
            if step.multi_instance.mode == "sequential":
                mi.set("isSequential", "true")
            mi.set(q("camunda:collection"), step.multi_instance.collection)
            mi.set(q("camunda:elementVariable"), step.multi_instance.element_variable)
            node.children.append(mi)
        return self.boundaries(step, sid, host, container, lane)

    def boundaries(
        self, step: Any, sid: str, host: L.Frag, container: str | None, lane: str | None
    ) -> tuple[L.Frag, str, str]:
        handlers: list[tuple[Any, str, etree._Element]] = []
        for i, h in enumerate(step.on_error):
            ev = etree.Element(
                q("bpmn:errorEventDefinition"),
                id=f"{sid}_err{i + 1}_ed",
                errorRef=self.error_ref(h.error_code),
            )
            handlers.append((h, f"{sid}_err{i + 1}", ev))
        if step.timeout:
            ev = etree.Element(q("bpmn:timerEventDefinition"), id=f"{sid}_timeout_ted")
            _duration(ev, step.timeout.duration)
            handlers.append((step.timeout, f"{sid}_timeout", ev))
        if not handlers and not step.compensation:
            return host, sid, sid
        hbox = host.pos[sid]
        rows: list[tuple[L.Frag, float]] = []
        merge: str | None = None
        records: list[tuple[Any, str, list[tuple[L.Frag, str, str]]]] = []
        index = 0
        for h, base, ev in handlers:
            bid = self.node(base, "boundaryEvent", container, lane, attached_to=sid, children=[ev])
            box = L.boundary_box(hbox, index)
            host.pos[bid] = box
            index += 1
            chain: list[tuple[L.Frag, str, str]] = []
            if h.compensate:
                cev = etree.Element(q("bpmn:compensateEventDefinition"), id=f"{bid}_ced")
                tid = self.node(
                    f"{bid}_compensate",
                    "intermediateThrowEvent",
                    container,
                    lane,
                    name="compensate",
                    children=[cev],
                )
                chain.append((self.shape(tid), tid, tid))
            sub = self.steps(getattr(h, "steps", []), f"{bid}_", container, lane)
            if sub is not None:
                chain.append(sub)
            if h.then != "continue":
                end_children = []
                if self.parallel_depth.get(container, 0) > 0:
                    # a token ending inside a parallel branch would leave the join waiting
                    # forever: end the whole scope instead (sound, documented gap: no error)
                    end_children.append(etree.Element(q("bpmn:terminateEventDefinition"), id=f"{bid}_end_td"))
                elif h.then == "fail":
                    code = h.end_error_code or getattr(h, "error_code", None) or "DAS_TIMEOUT"
                    end_children.append(
                        etree.Element(
                            q("bpmn:errorEventDefinition"), id=f"{bid}_end_ed", errorRef=self.error_ref(code)
                        )
                    )
                eid = self.node(
                    h.end_id or f"{bid}_end",
                    "endEvent",
                    container,
                    lane,
                    name="failed" if h.then == "fail" else None,
                    children=end_children,
                )
                chain.append((self.shape(eid), eid, eid))
            for a, b in zip(chain, chain[1:], strict=False):
                self.connect(a[2], b[1], container)
            row = L.seq([c[0] for c in chain]) if chain else L.empty()
            rows.append((row, box.cx - hbox.x + L.GAP_X / 2))
            if chain:
                self.connect(bid, chain[0][1], container)
            records.append((h, bid, chain))
            if h.then == "continue":
                merge = merge or self.uid(f"{sid}_merge")
        if step.compensation:
            cev = etree.Element(q("bpmn:compensateEventDefinition"), id=f"{sid}_comp_ced")
            bid = self.node(f"{sid}_comp", "boundaryEvent", container, lane, attached_to=sid, children=[cev])
            host.pos[bid] = L.boundary_box(hbox, index)
            tid = self.node(
                f"{sid}_compensate",
                "serviceTask",
                container,
                lane,
                name=step.compensation.name,
                attrs={
                    "isForCompensation": "true",
                    "camunda:type": "external",
                    "camunda:topic": step.compensation.topic,
                },
                extras=[("io", [("retries", "3")])],
            )
            rows.append((self.shape(tid), host.pos[bid].cx - hbox.x + L.GAP_X / 2))
            fid = self.uid(f"a_{bid}_{tid}")
            self.flows[fid] = Flow(fid, bid, tid, container, association=True)
        # the rightmost boundary's row goes nearest the host so vertical edges cross no row
        frag = L.below(host, list(reversed(rows)))
        if merge is None:
            return frag, sid, sid
        self.nodes[merge] = Node(merge, "exclusiveGateway", container=container, lane=lane)
        self.connect(sid, merge, container)
        tops, y = [], host.h + L.GAP_Y
        for row, _x in reversed(rows):
            tops.append(y)
            y += row.h + L.GAP_Y
        tops.reverse()
        for (h, bid, chain), (row, _x), top in zip(records, rows, tops, strict=False):
            if h.then == "continue":
                fid = self.connect(chain[-1][2] if chain else bid, merge, container)
                if not chain:
                    frag.via[fid] = top + row.cy
        return L.seq([frag, self.shape(merge)]), sid, merge


def _duration(ev: etree._Element, value: str) -> None:
    td = etree.SubElement(ev, q("bpmn:timeDuration"))
    td.set(q("xsi:type"), "bpmn:tFormalExpression")
    td.text = value


def compile_process(doc: Process | dict[str, Any] | str) -> CompileResult:
    """Compile an authoring document; findings list layout problems (none expected)."""

    proc = doc if isinstance(doc, Process) else parse_authoring(doc)
    steps: list[Any] = list(proc.steps)  # the step models are built at run time (bpmn/authoring.py)
    c = _Compiler(proc)
    start = c.node("start", "startEvent", None, getattr(steps[0], "lane", None))
    body = c.steps(steps, "", None, None)
    if body is None:  # parse_authoring requires at least one step; keep it an error, not an assert
        raise InvalidInput("the process has no steps to compile")
    last_lane = next((s.lane for s in reversed(steps) if getattr(s, "lane", None)), None)
    end = c.node("end", "endEvent", None, last_lane)
    c.connect(start, body[1], None)
    c.connect(body[2], end, None)
    frag = L.seq([c.shape(start), body[0], c.shape(end)])
    return render(c, frag)


def compile_to_xml(doc: Process | dict[str, Any] | str) -> str:
    """Compile and insist on a complete, readable diagram (raises ``LayoutError``)."""
    res = compile_process(doc)
    if res.findings:
        raise LayoutError("diagram incomplete: " + "; ".join(res.findings[:5]))
    return res.xml
