"""Validate BPMN files: safe parse, OMG BPMN 2.0 XSD, then the rules in ``rules*.py``.

Why one entry point: authoring, the nightly curator, the approval queue and the CLI all need
the same verdict. ``validate`` never raises on bad input: an unsafe or broken file is a
finding (rule ``xml.*``), so a batch of files always yields one report per file.

Severity policy: ``xml.*``, ``xsd`` and ``ref.*`` findings are errors. Structure rules are
errors in executable or ProcOS processes and warnings in descriptive models. Camunda rules
apply to executable processes of Camunda-dialect files and to ProcOS processes. Governance
rules are errors in ProcOS processes (id prefix peo/pdo/tde, a ``procos.kind`` property or a
``das-`` topic), warnings in other executable Camunda processes, skipped otherwise; the
executable-content rule (``governance.no-script``, ``rules_executable.py``) covers every process:
an error in a PEO, a warning elsewhere.
A report is ``valid`` iff it has no error finding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import resources

from lxml import etree

from das.bpmn.isolation import internal_error
from das.bpmn.model import Definitions
from das.bpmn.parse import parse, parse_tree
from das.bpmn.rules import Finding, Report, check_diagram, check_references, check_structure
from das.bpmn.rules_camunda import check_camunda, check_governance
from das.bpmn.rules_executable import check_executable
from das.bpmn.safexml import DEFAULT_MAX_BYTES, BpmnParseError, Source, source_label

__all__ = ["Finding", "Report", "validate", "validate_files", "validate_model", "xsd_findings"]

MAX_XSD_FINDINGS = 50


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    """The OMG BPMN 2.0 schema from package data; imports resolve to sibling files, offline."""
    xsd_dir = resources.files("das") / "data" / "xsd"
    path = str(xsd_dir / "BPMN20.xsd")  # package data is a plain directory (never a zip)
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(path, parser))


def xsd_findings(tree: etree._ElementTree) -> list[Finding]:
    """Schema errors as findings (at most ``MAX_XSD_FINDINGS``, then one summary)."""
    schema = _schema()
    if schema.validate(tree):
        return []
    out: list[Finding] = []
    errors = list(schema.error_log)
    for e in errors[:MAX_XSD_FINDINGS]:
        element = None
        try:
            hits = tree.xpath(e.path) if e.path else []
            if hits and isinstance(hits[0], etree._Element):
                element = hits[0].get("id")
        except etree.XPathError:
            element = None
        out.append(
            Finding(
                rule="xsd",
                severity="error",
                element=element,
                message=f"line {e.line}: {e.message.strip()}; change the XML to match the OMG BPMN 2.0 schema",
            )
        )
    if len(errors) > MAX_XSD_FINDINGS:
        out.append(
            Finding(
                rule="xsd",
                severity="error",
                element=None,
                message=f"{len(errors) - MAX_XSD_FINDINGS} more schema errors not shown; fix the ones above first",
            )
        )
    return out


def validate_model(
    defs: Definitions,
    known_processes: Iterable[str] | None = None,
    xsd: bool = True,
    file: str | None = None,
    known_task_types: Iterable[str] | None = None,
) -> Report:
    """Validate an already parsed model (e.g. after edit operations).

    ``known_task_types``: the TDE registry's task types; a TDE step naming another is an
    error. None means "not known" (a draft whose wrappers are still to come): an info finding.
    """
    report = Report(file=file or defs.source or "<model>")
    known = set(known_processes) | set(defs.processes) if known_processes is not None else None
    if known_task_types is not None and not isinstance(known_task_types, dict):
        known_task_types = set(known_task_types)
    task_types = known_task_types

    def xsd_check() -> None:
        if xsd and defs.tree is not None:
            for f in xsd_findings(defs.tree):
                report.add(f.rule, f.severity, f.element, f.message)

    stages: list[tuple[str, Callable[[], None]]] = [
        ("the XSD check", xsd_check),
        ("the reference rules", lambda: check_references(defs, report)),
        ("the structure rules", lambda: check_structure(defs, report)),
        ("the Camunda 7 rules", lambda: check_camunda(defs, report, known)),
        ("the governance rules", lambda: check_governance(defs, report, task_types)),
        ("the executable-content rule", lambda: check_executable(defs, report)),
        ("the diagram rules", lambda: check_diagram(defs, report)),
    ]
    for stage, run in stages:  # a bug in one rule group does not hide the others' findings
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - becomes an internal-error finding (see isolation)
            f = internal_error(exc, report.file, stage)
            report.add(f.rule, f.severity, f.element, f.message)
    return report


def validate(
    source: Source,
    known_processes: Iterable[str] | None = None,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    known_task_types: Iterable[str] | None = None,
) -> Report:
    """Validate one BPMN file (path, bytes or XML text). Never raises on bad input.

    ``known_processes``: process keys a call activity may call; None means "not known", so
    unknown call targets are an info finding instead of an error.
    """
    label = name or source_label(source)
    item = _parse_isolated(source, label, max_bytes)
    if not isinstance(item, Definitions):
        return _failed(label, item)
    return validate_model(item, known_processes, file=label, known_task_types=known_task_types)


def _parse_isolated(source: Source, label: str, max_bytes: int) -> Definitions | BpmnParseError | Finding:
    """The model, or what stopped it: a parse error (bad input) or an internal-error finding."""
    try:
        return parse(source, max_bytes=max_bytes, name=label)
    except BpmnParseError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a parser bug on this file is this file's finding
        return internal_error(exc, label, "parsing")


def _failed(label: str, item: BpmnParseError | Finding) -> Report:
    report = Report(file=label)
    if isinstance(item, BpmnParseError):
        report.add(item.rule, "error", None, item.message)
    else:
        report.add(item.rule, item.severity, item.element, item.message)
    return report


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    known: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    known_task_types: Iterable[str] | None = None,
) -> list[Report]:
    """Validate several files together: a call target defined in any of them counts as known."""
    parsed: list[tuple[str, Definitions | BpmnParseError | Finding]] = []
    keys = set(known)
    for p in paths:
        label = os.fspath(p)
        item = _parse_isolated(p, label, max_bytes)
        if isinstance(item, Definitions):
            keys |= set(item.processes)
        parsed.append((label, item))
    reports = []
    for label, item in parsed:
        if isinstance(item, Definitions):
            reports.append(validate_model(item, keys, file=label, known_task_types=known_task_types))
        else:
            reports.append(_failed(label, item))
    return reports


def revalidate_tree(tree: etree._ElementTree, label: str) -> Report:
    """Validate a tree someone already loaded safely (the compiler's output, say)."""
    return validate_model(parse_tree(tree, label), file=label)
