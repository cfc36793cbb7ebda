"""Turning DAS's artefacts into documents: BPMN files, TDE registry entries, deployed definitions.

Why this text: the embedder reads at most 256 word pieces, so each document leads with what a
question is most likely about (the process name, then its tasks, topics and documentation) and
spells identifiers as words (``invoice_approval`` -> ``invoice approval``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lxml import etree

from das.bpmn.ns import BPMN_NS, CAMUNDA_NS, local
from das.bpmn.safexml import BpmnParseError, load_bpmn
from das.config import resource_dir
from das.errors import InvalidInput
from das.registry import load_registry
from das.retrieval.index import Doc, Index, IndexReport

_NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
_TASKS = {
    "task", "userTask", "serviceTask", "sendTask", "receiveTask", "scriptTask",
    "businessRuleTask", "manualTask", "callActivity", "subProcess", "transaction",
}  # fmt: skip
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}


def words(identifier: str) -> str:
    """``invoiceApproval_v2`` -> ``invoice approval v2``: identifiers as the tokenizer likes them."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", identifier)
    return " ".join(re.split(r"[\s_\-.:/]+", spaced)).strip().lower()


def _join(items: list[str]) -> str:
    return "; ".join(dict.fromkeys(i for i in items if i))


def _doc_text(el: etree._Element) -> str:
    return " ".join(" ".join(" ".join(d.itertext()).split()) for d in el.findall("bpmn:documentation", _NS))


def process_texts(tree: etree._ElementTree) -> list[tuple[str, str, dict[str, Any]]]:
    """(process id, text, metadata) for each process in a parsed BPMN document."""
    root = tree.getroot()
    participants = {
        p.get("processRef"): p.get("name") or ""
        for p in root.iterfind(".//bpmn:participant", _NS)
        if p.get("processRef")
    }
    messages = {m.get("id"): m.get("name") or "" for m in root.iterfind("bpmn:message", _NS)}
    errors = {
        e.get("id"): e.get("name") or e.get("errorCode") or "" for e in root.iterfind("bpmn:error", _NS)
    }
    out: list[tuple[str, str, dict[str, Any]]] = []
    for proc in root.iterfind("bpmn:process", _NS):
        pid = proc.get("id") or ""
        name = proc.get("name") or participants.get(pid) or words(pid)
        tasks: list[str] = []
        events: list[str] = []
        gateways: list[str] = []
        topics: list[str] = []
        called: list[str] = []
        docs = [_doc_text(proc)]
        for el in proc.iter():
            kind = local(el)
            label = el.get("name") or ""
            if kind in _TASKS:
                tasks.append(label or words(el.get("id") or ""))
            elif kind in _EVENTS:
                events.append(label)
            elif kind in _GATEWAYS:
                gateways.append(label)
            elif kind == "lane":
                gateways.append(f"lane {label}" if label else "")
            elif kind == "messageEventDefinition":
                events.append(messages.get(el.get("messageRef"), ""))
            elif kind == "errorEventDefinition":
                events.append(f"error {errors.get(el.get('errorRef'), '')}".strip())
            elif kind == "timerEventDefinition":
                events.append("timer " + " ".join(" ".join(el.itertext()).split()))
            topic = el.get(f"{{{CAMUNDA_NS}}}topic")
            if topic:
                topics.append(topic)
            if kind == "callActivity" and el.get("calledElement"):
                called.append(el.get("calledElement") or "")
            if el is not proc and kind in _TASKS | _EVENTS | _GATEWAYS:
                docs.append(_doc_text(el))
        lines = [
            f"Process: {name} ({words(pid)})",
            f"Tasks: {_join(tasks)}" if tasks else "",
            f"Topics: {_join([words(t) for t in topics])}" if topics else "",
            f"Calls: {_join([words(c) for c in called])}" if called else "",
            f"Events: {_join(events)}" if any(events) else "",
            f"Decisions: {_join(gateways)}" if any(gateways) else "",
            " ".join(d for d in docs if d),
        ]
        meta = {
            "key": pid,
            "name": name,
            "version_tag": proc.get(f"{{{CAMUNDA_NS}}}versionTag"),
            "executable": proc.get("isExecutable") == "true",
            "tasks": len(tasks),
            "topics": _join(topics),
        }
        out.append((pid, "\n".join(line for line in lines if line), meta))
    return out


def process_docs(folder: Path) -> tuple[list[Doc], list[str]]:
    """Documents for every ``*.bpmn`` under ``folder``, and one message per unreadable file."""
    docs: list[Doc] = []
    problems: list[str] = []
    for path in sorted(folder.rglob("*.bpmn")):
        try:
            tree = load_bpmn(str(path))
        except BpmnParseError as exc:
            problems.append(str(exc))
            continue
        for pid, text, meta in process_texts(tree):
            rel = str(path.relative_to(folder))
            docs.append(Doc(f"process:{pid}", text, {**meta, "file": rel, "folder": str(folder)}))
    return docs, problems


def index_processes(folder: Path | str | None = None, index: Index | None = None) -> IndexReport:
    """Index the processes in ``folder`` (default: the project's ``processes/``).

    Processes indexed earlier from the same folder whose file is gone are removed. Unreadable
    files are reported in ``report.errors``, not fatal: one bad file must not hide the rest.
    """
    root = Path(folder) if folder is not None else resource_dir("processes")
    root = root.resolve()
    docs, problems = process_docs(root)
    report = (index or Index.open()).index_documents("process", docs, prune={"folder": str(root)})
    report.errors.extend(problems)
    return report


def _schema_summary(schema: dict[str, Any]) -> str:
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return str(schema.get("type", "")) if isinstance(schema, dict) else ""
    required = set(schema.get("required") or [])
    parts = []
    for name, sub in props.items():
        sub = sub if isinstance(sub, dict) else {}
        desc = f" {sub['description']}" if isinstance(sub.get("description"), str) else ""
        flag = "" if name in required else " optional"
        parts.append(f"{words(name)} ({sub.get('type', 'any')}{flag}){desc}")
    return _join(parts)


def index_tde_registry(index: Index | None = None, root: str | None = None) -> IndexReport:
    """Index the TDE task types of the registry; types no longer declared are removed."""

    docs = []
    for entry in load_registry(root).values():
        executor = entry.executor.kind + (f" topic {entry.executor.topic}" if entry.executor.topic else "")
        text = "\n".join(
            line
            for line in (
                f"Task type: {words(entry.task_type)} ({entry.task_type})",
                entry.description,
                f"Executor: {executor}",
                f"Inputs: {_schema_summary(entry.input_schema)}",
                f"Outputs: {_schema_summary(entry.output_schema)}",
            )
            if line
        )
        meta = {
            "task_type": entry.task_type,
            "executor": entry.executor.kind,
            "topic": entry.executor.topic,
            "source": entry.source,
        }
        docs.append(Doc(f"tde:{entry.task_type}", text, meta))
    return (index or Index.open()).index_documents("tde", docs, prune={})


def index_deployed(
    definitions: list[dict[str, Any]], index: Index | None = None, prune: bool = False
) -> IndexReport:
    """Index process definitions fetched from the engine (``id``, ``key``, ``name``, ``version``, ``xml``).

    ``prune=True`` says the list is complete: deployed documents not in it are removed.
    A definition whose XML is missing or unreadable is still indexed by key and name.
    """
    docs: list[Doc] = []
    problems: list[str] = []
    for d in definitions:
        def_id = str(d.get("id") or "")
        key = str(d.get("key") or "")
        if not def_id or not key:
            raise InvalidInput(f"retrieval: a deployed definition needs id and key, got {sorted(d)}")
        name = str(d.get("name") or words(key))
        body = ""
        xml = d.get("xml")
        if xml:
            try:
                tree = load_bpmn(xml.encode() if isinstance(xml, str) else xml, name=f"definition {def_id}")
                body = "\n".join(t for pid, t, _ in process_texts(tree) if pid == key) or ""
            except BpmnParseError as exc:
                problems.append(str(exc))
        text = body or f"Process: {name} ({words(key)})"
        meta = {"key": key, "name": name, "version": d.get("version"), "definition_id": def_id}
        meta.update({k: d[k] for k in ("deployment_id", "version_tag") if d.get(k) is not None})
        docs.append(Doc(f"deployed:{def_id}", text, meta))
    report = (index or Index.open()).index_documents("deployed", docs, prune={} if prune else None)
    report.errors.extend(problems)
    return report
