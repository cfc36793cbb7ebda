"""Semantic diff of two graph models: what a reviewer of a minor version needs to see.

Why not a text diff: moving a shape, re-ordering XML or re-indenting changes many lines and no
behaviour. This compares by element id: processes, flow nodes, sequence flows (endpoints and
conditions), event definitions, camunda attributes, properties and in/out mappings, lanes,
root definitions (errors, messages, signals). Diagram-only changes are summarised in one
count, not listed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from das.bpmn import model as m
from das.contracts import BpmnDiff as BpmnDiff
from das.contracts import DiffEntry as DiffEntry
from das.contracts import FieldChange as FieldChange
from das.contracts import ProposalDiff

# the shapes live in das.contracts: a proposal stores them and `das schema ProposalDiff` shows them


def _ext_summary(exts: list[m.ExtensionElement]) -> list[Any]:
    return [asdict(e) for e in exts]


def _node_view(n: m.FlowNode) -> dict[str, Any]:
    """The fields of a node that matter for behaviour, each comparable with ``==``."""
    return {
        "type": n.type,
        "name": n.name,
        "parent": n.parent,
        "lane": n.lane,
        "attached_to": n.attached_to,
        "cancel_activity": n.cancel_activity,
        "default": n.default,
        "called_element": n.called_element,
        "event_definitions": [
            {"kind": d.kind, "ref": d.ref, "timer": d.timer, "condition": d.condition, "link": d.link_name}
            for d in n.event_definitions
        ],
        "multi_instance": asdict(n.multi_instance) if n.multi_instance else None,
        "script": n.script,
        "io": [asdict(x) for x in n.io],
        "input_parameters": n.input_parameters,
        "output_parameters": n.output_parameters,
        "properties": n.properties,
        "documentation": n.documentation,
        **{
            f"@{k}": v
            for k, v in n.attrs.items()
            if k not in ("attachedToRef", "cancelActivity", "default", "calledElement")
        },
        "extensions": _ext_summary(
            [
                e
                for e in n.extensions
                if e.tag not in ("camunda:properties", "camunda:inputOutput", "camunda:in", "camunda:out")
            ]
        ),
    }


def _flow_view(f: m.SequenceFlow) -> dict[str, Any]:
    return {
        "source": f.source,
        "target": f.target,
        "name": f.name,
        "condition": f.condition,
        "condition_language": f.condition_language,
        "parent": f.parent,
        **{f"@{k}": v for k, v in f.attrs.items() if k not in ("sourceRef", "targetRef")},
        "extensions": _ext_summary(f.extensions),
    }


def _proc_view(p: m.Process) -> dict[str, Any]:
    return {
        "name": p.name,
        "is_executable": p.is_executable,
        "properties": p.properties,
        **{f"@{k}": v for k, v in p.attrs.items() if k != "isExecutable"},
        "extensions": _ext_summary([e for e in p.extensions if e.tag != "camunda:properties"]),
    }


def _fields(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    out = []
    for k in list(old) + [k for k in new if k not in old]:
        if old.get(k) != new.get(k):
            out.append(FieldChange(field=k.lstrip("@"), old=old.get(k), new=new.get(k)))
    return out


def _compare(
    kind: Any, old: dict[str, Any], new: dict[str, Any], view: Any, entries: list[DiffEntry]
) -> None:
    for ident in old:
        if ident not in new:
            o = old[ident]
            entries.append(
                DiffEntry(
                    kind=kind,
                    change="removed",
                    id=ident,
                    type=getattr(o, "type", None),
                    name=getattr(o, "name", None),
                )
            )
    for ident, n in new.items():
        if ident not in old:
            entries.append(
                DiffEntry(
                    kind=kind,
                    change="added",
                    id=ident,
                    type=getattr(n, "type", None),
                    name=getattr(n, "name", None),
                    fields=[
                        FieldChange(field=k.lstrip("@"), new=v)
                        for k, v in view(n).items()
                        if v not in (None, [], {}, "") and k not in ("type", "name")
                    ],
                )
            )
        else:
            changes = _fields(view(old[ident]), view(n))
            if changes:
                entries.append(
                    DiffEntry(
                        kind=kind,
                        change="changed",
                        id=ident,
                        type=getattr(n, "type", None),
                        name=getattr(n, "name", None),
                        fields=changes,
                    )
                )


def diff(old: m.Definitions, new: m.Definitions) -> BpmnDiff:
    """Semantic differences from ``old`` to ``new``, by element id."""
    entries: list[DiffEntry] = []
    _compare("process", old.processes, new.processes, _proc_view, entries)
    _compare("node", old.nodes, new.nodes, _node_view, entries)
    _compare("flow", old.flows, new.flows, _flow_view, entries)
    _compare(
        "lane",
        old.lanes,
        new.lanes,
        lambda lane: {"name": lane.name, "parent_lane": lane.parent_lane, "process": lane.process},
        entries,
    )
    _compare(
        "definition", old.roots, new.roots, lambda r: {"type": r.type, "name": r.name, **r.attrs}, entries
    )
    _compare(
        "collaboration",
        old.collaborations,
        new.collaborations,
        lambda c: {
            "name": c.name,
            "participants": [asdict(p) for p in c.participants],
            "message_flows": [asdict(x) for x in c.message_flows],
        },
        entries,
    )
    di_old = {**old.di_shapes, **old.di_edges}
    di_new = {**new.di_shapes, **new.di_edges}
    changed_di = len(set(di_old) ^ set(di_new))
    return BpmnDiff(old=old.source, new=new.source, entries=entries, diagram_changes=changed_di)


def _short(v: Any, limit: int = 80) -> str:
    s = repr(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def for_proposal(d: BpmnDiff) -> ProposalDiff:
    """The diff a proposal stores: the entries and their text rendering."""
    return ProposalDiff(
        old=d.old, new=d.new, entries=d.entries, diagram_changes=d.diagram_changes, text=render_text(d)
    )


def render_text(d: BpmnDiff) -> str:
    """A readable rendering: one line per element, indented field changes."""
    if d.empty:
        tail = f" ({d.diagram_changes} diagram-only change(s))" if d.diagram_changes else ""
        return f"no semantic differences{tail}"
    sign = {"added": "+", "removed": "-", "changed": "~"}
    lines = [f"--- {d.old}", f"+++ {d.new}"] if d.old or d.new else []
    order = {"process": 0, "node": 1, "flow": 2, "lane": 3, "definition": 4, "collaboration": 5}
    for e in sorted(d.entries, key=lambda e: (order[e.kind], e.change != "removed", e.id)):
        label = f"{e.type or e.kind} {e.id}" + (f" {e.name!r}" if e.name else "")
        lines.append(f"{sign[e.change]} {label}")
        for f in e.fields:
            if e.change == "added":
                lines.append(f"    {f.field}: {_short(f.new)}")
            else:
                lines.append(f"    {f.field}: {_short(f.old)} -> {_short(f.new)}")
    s = d.summary()
    lines.append(
        f"{s['added']} added, {s['removed']} removed, {s['changed']} changed"
        + (f"; {d.diagram_changes} diagram element(s) added or removed" if d.diagram_changes else "")
    )
    return "\n".join(lines)
