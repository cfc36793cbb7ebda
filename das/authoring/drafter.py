"""Drafting: prompt -> authoring form (or edit ops on a base) -> compile -> validate ->
simulate -> repair (bounded, every attempt traced) -> a minor-version Proposal in the queue.

The model writes JSON under a JSON Schema (structured output); DAS does the rest. A failure
at any stage (invalid JSON, schema errors, an edit that cannot apply, validation errors,
stuck simulation runs) becomes a message back to the model. When repair cannot converge,
nothing is filed and ``DraftFailed`` says why, with the last findings.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from das.authoring import outline, versions
from das.authoring.compact_schema import compact_authoring_schema
from das.authoring.context import (
    known_process_keys,
    seed_from_processes,
    similar_context,
    similar_names,
    task_type_lines,
)
from das.authoring.queue import Queue, new_proposal_id
from das.authoring.wrappers import draft_wrappers
from das.bpmn.authoring import authoring_json_schema, parse_authoring
from das.bpmn.compile import compile_to_xml
from das.bpmn.diff import diff, for_proposal
from das.bpmn.edits import apply_edits, edit_script_schema, parse_ops
from das.bpmn.parse import parse
from das.bpmn.simulate import simulate_xml
from das.bpmn.validate import validate
from das.bpmn.write import to_string
from das.config import default_model
from das.contracts import (
    Evidence,
    Proposal,
    ProposalDiff,
    SimulationReport,
    Usage,
    ValidationReport,
    ValueMeasure,
)
from das.errors import DasError, InvalidInput, UsageError
from das.guardrails import service_policy
from das.identity import Principal, os_principal
from das.llm import gateway
from das.llm.structured import extract_json
from das.output import progress
from das.prompts import render

AUTHOR_TASK_TYPE = "das_author"  # its policy (data class, limits) is in guardrails/task_types.yaml

SIM_RUNS = 20


class DraftFailed(DasError):
    """Repair did not converge; nothing was filed."""

    exit_code = 1

    def __init__(self, message: str, findings: list[str], attempts: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.findings = findings
        self.attempts = attempts


@dataclass
class Candidate:
    """One checked draft: its XML and reports, or the problems that stop it."""

    xml: str | None = None
    problems: list[str] = field(default_factory=list)
    validation: ValidationReport = field(default_factory=ValidationReport.missing)
    simulation: SimulationReport | None = None  # None: not simulated (validation failed)
    payload: Any = None

    @property
    def ok(self) -> bool:
        return self.xml is not None and not self.problems


def _json_from(text: str | None, bare_key: str | None = None) -> Any:
    """The JSON in a reply (fences, prose, comments, trailing commas and bracket slips tolerated)."""

    return extract_json(text, bare_key)


def _schema_problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        out.append(f"{loc}: {err['msg']}")
    return out


def check_xml(xml: str, key: str, known_task_types: set[str] | dict[str, str] | None = None) -> Candidate:
    """Validate and simulate compiled XML; errors and stuck runs are the problems to fix."""

    report = validate(
        xml.encode(),
        known_processes=known_process_keys() | {key},
        name=f"{key}.bpmn",
        known_task_types=known_task_types,
    )
    problems = [
        f"{f.rule} on {f.element or 'process'}: {f.message}" for f in report.findings if f.severity == "error"
    ]
    simulation: SimulationReport | None = None
    if not problems:
        simulation = SimulationReport.model_validate(simulate_xml(xml, runs=SIM_RUNS, seed=0))
        for stuck in simulation.stuck[:5]:
            problems.append(f"simulation run got stuck at {stuck.element}: {stuck.reason}")
        for p in simulation.input_problems[:5]:
            problems.append(
                f"step {p.element} needs input {p.field} from variable {p.variable or '(not mapped)'}, "
                "but no earlier step sets it on some path; map it from a variable that is always set"
            )
        if simulation.completed == 0 and not simulation.stuck:
            problems.append("no simulated run reached an end event")
    return Candidate(xml=xml, problems=problems, validation=report, simulation=simulation)


def _check_new(data: Any, key: str) -> Candidate:

    if isinstance(data, dict):
        data["key"] = key  # the key is the operator's choice, not the model's
    try:
        doc = parse_authoring(data)
    except ValidationError as exc:
        return Candidate(problems=_schema_problems(exc))
    except ValueError as exc:
        return Candidate(problems=[str(exc)])
    try:
        xml = compile_to_xml(doc)
    except InvalidInput as exc:
        return Candidate(problems=[exc.message])
    cand = check_xml(xml, key)
    cand.payload = doc.model_dump(mode="json", exclude_none=True)
    return cand


def _check_edit(data: Any, base_xml: str, key: str) -> Candidate:

    try:
        ops = parse_ops(data)
        defs = apply_edits(parse(base_xml.encode(), name=f"{key}.bpmn"), ops)
    except DasError as exc:
        return Candidate(problems=[exc.message])
    cand = check_xml(to_string(defs), key)
    cand.payload = [op.model_dump(mode="json", exclude_none=True) for op in ops]
    return cand


def _summarise(base_xml: str, key: str) -> str:
    """A compact element list the model can reference by id (ids, types, names, topics, flows)."""

    defs = parse(base_xml.encode(), name=f"{key}.bpmn")
    lines = []
    for node in defs.nodes.values():
        extra = {
            k: v for k, v in node.attrs.items() if "topic" in k or "calledElement" in k or k == "camunda:type"
        }
        where = f" in {node.parent}" if node.parent and node.parent != node.process else ""
        attached = f" attached_to={node.attached_to}" if node.attached_to else ""
        lines.append(f"- {node.type} id={node.id} name={node.name!r}{where}{attached} {extra or ''}".rstrip())
    for flow in defs.flows.values():
        cond = f" if {flow.condition}" if flow.condition else ""
        lines.append(f"- flow {flow.id}: {flow.source} -> {flow.target}{cond}")
    return "\n".join(lines[:200])


def _loop(
    model: str,
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    check,
    max_repairs: int,
    usage: Usage,
    schema_in_prompt: bool = True,
    bare_key: str | None = None,
) -> tuple[Candidate, list[dict[str, Any]]]:
    policy = service_policy(AUTHOR_TASK_TYPE)
    attempts: list[dict[str, Any]] = []
    last: list[str] = []
    for attempt in range(max_repairs + 1):
        started = time.perf_counter()
        max_tokens = 700 if gateway.is_local(model) else 3000
        reply = gateway.complete(
            model,
            messages,
            policy=policy,
            response_schema=schema,
            max_tokens=max_tokens,
            timeout_s=300,
            schema_in_prompt=schema_in_prompt,
        )
        usage.model_calls += 1
        usage.input_tokens += reply.input_tokens
        usage.output_tokens += reply.output_tokens
        usage.cost_usd += reply.cost_usd
        try:
            cand = check(_json_from(reply.text, bare_key))
        except ValueError as exc:
            cand = Candidate(problems=[str(exc)])
        attempts.append(
            {
                "attempt": attempt,
                "ok": cand.ok,
                "problems": cand.problems,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        progress(f"draft attempt {attempt}: {'ok' if cand.ok else f'{len(cand.problems)} problem(s)'}")
        if cand.ok:
            return cand, attempts
        last = cand.problems
        messages = [
            *messages,
            {"role": "assistant", "content": reply.text or ""},
            {"role": "user", "content": render("author_repair", problems="\n".join(f"- {p}" for p in last))},
        ]
    raise DraftFailed(
        f"the draft did not converge after {max_repairs} repair attempt(s); nothing was filed. "
        f"Last findings: {'; '.join(last[:5])}",
        last,
        attempts,
    )


def _derive_key(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:4] or ["process"]
    key = "_".join(words)
    return key if key[0].isalpha() else f"p_{key}"


def draft_document(
    prompt: str,
    key: str,
    model: str,
    max_repairs: int = 3,
    usage: Usage | None = None,
    labels: list[str] | None = None,
) -> tuple[Candidate, list[dict[str, Any]]]:
    """Draft and check a new process without filing it (evals use this directly).

    ``labels``: task names the user requires verbatim (also read from the prompt: "use these
    task names: A; B"). Models without native structured output write the outline
    (``das.authoring.outline``); grammar-constrained tiny models the compact schema; others the
    full authoring form (``ModelCapabilities.authoring_form``; models.yaml may say otherwise).
    """

    labels = labels or outline.labels_in_prompt(prompt)
    usage = usage or Usage()
    form = gateway.settle_capabilities(model, service_policy(AUTHOR_TASK_TYPE)).authoring_form
    if form == "outline":  # a small model without a grammar: it outlines, DAS builds the form
        label_line = render("author_labels", labels="; ".join(labels)) if labels else ""
        messages = [
            {"role": "system", "content": render("author_outline_system")},
            {"role": "user", "content": render("author_outline", prompt=prompt, labels=label_line)},
        ]

        def check_outline(data: Any) -> Candidate:
            try:
                doc, label_problems = outline.to_authoring(data, key, labels)
            except ValueError as exc:
                return Candidate(problems=[str(exc)])
            cand = _check_new(doc, key)
            cand.problems = label_problems + cand.problems
            return cand

        return _loop(
            model,
            messages,
            outline.OUTLINE_SCHEMA,
            check_outline,
            max_repairs,
            usage,
            schema_in_prompt=False,
            bare_key="task",
        )
    if form == "compact":  # tiny model under a grammar: compact schema, a worked example
        schema = compact_authoring_schema()
        user = render("author_new_compact", prompt=prompt, key=key, similar=similar_names(prompt))
    else:
        schema = authoring_json_schema()
        user = render(
            "author_new",
            prompt=prompt,
            key=key,
            task_types=task_type_lines(),
            similar=similar_context(prompt),
        )
        if labels:
            user += "\n" + render("author_labels", labels="; ".join(labels))
    messages = [{"role": "system", "content": render("author_system")}, {"role": "user", "content": user}]

    def check_doc(data: Any) -> Candidate:
        cand = _check_new(data, key)
        if labels and cand.payload:
            missing = outline.missing_labels(cand.payload, labels)
            if missing:
                cand.problems.insert(
                    0,
                    "use every given task name verbatim as a task; missing: "
                    + "; ".join(f'"{m}"' for m in missing),
                )
        return cand

    return _loop(model, messages, schema, check_doc, max_repairs, usage)


def draft_proposal(
    prompt: str,
    *,
    key: str | None = None,
    base: str | None = None,
    author: Principal | None = None,
    model: str | None = None,
    max_repairs: int = 3,
    queue: Queue | None = None,
) -> Proposal:
    """Draft, check, repair and file one proposal. Raises ``DraftFailed`` if repair fails.

    ``author`` is a proven principal (default: the OS account running this process); they
    will not be able to approve the proposal.
    """
    author = author or os_principal()
    if not isinstance(author, Principal):
        raise TypeError(f"author must be a proven Principal, not {type(author).__name__}")
    if not prompt.strip():
        raise UsageError("the prompt is empty: describe the process or the change")
    model = model or default_model()
    queue = queue or Queue()
    seed_from_processes(queue)
    usage = Usage()
    system = render("author_system")
    if base:
        key, base_version = versions.split_ref(base)
        base_version = base_version or queue.current_version(key)
        base_xml = queue.artifact_of(key, base_version) if base_version else None
        if base_version is None or base_xml is None:
            raise UsageError(
                f"no process {key}@{base_version or '?'} is known; see `das queue list` or processes/"
            )
        user = render(
            "author_edit", prompt=prompt, key=key, version=base_version, summary=_summarise(base_xml, key)
        )
        cand, attempts = _loop(
            model,
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            edit_script_schema(),
            lambda d: _check_edit(d, base_xml, key),
            max_repairs,
            usage,
        )
        proposal_diff = for_proposal(
            diff(parse(base_xml.encode(), name="base"), parse((cand.xml or "").encode(), name="new"))
        )
        edit_ops, version = cand.payload, versions.minor_bump(base_version)
    else:
        key = key or _derive_key(prompt)
        base_version = queue.current_version(key)
        cand, attempts = draft_document(prompt, key, model, max_repairs, usage)
        edit_ops = []
        version = versions.minor_bump(base_version) if base_version else "1.0.0"
        proposal_diff = (
            _full_diff(queue.artifact_of(key, base_version) or "", cand.xml or "")
            if base_version
            else new_process_diff(key)
        )
    wrappers = draft_wrappers(cand.xml) if cand.xml else []
    proposal = Proposal(
        id=new_proposal_id(),
        kind="process",
        key=key,
        base_version=base_version,
        version=version,
        artifact=cand.xml or "",
        tde_wrappers=wrappers,
        validation=cand.validation,
        simulation=cand.simulation,
        diff=proposal_diff,
        rationale=f"Drafted from the request: {prompt}",
        edit_ops=edit_ops,
        draft_trace=attempts,
        value_measure=ValueMeasure(repair_attempts=len(attempts) - 1, model=model, **usage.model_dump()),
        evidence=[Evidence(prompt=prompt)],
        origin="chat",
        author=author.name,
    )
    return queue.file(proposal, author.proof, author)


def _full_diff(old_xml: str, new_xml: str) -> ProposalDiff:

    return for_proposal(diff(parse(old_xml.encode(), name="base"), parse(new_xml.encode(), name="new")))


def new_process_diff(key: str) -> ProposalDiff:
    """A first version has no base to compare with: no entries, a line that says so."""
    return ProposalDiff(text=f"new process {key} (no base version)")


def rebase_proposal(queue: Queue, proposal_id: str, actor: Principal) -> Proposal:
    """Re-apply a stale change's edit ops on the key's current version, then re-check it."""
    proposal = queue.get(proposal_id)
    current = queue.current_version(proposal.key)
    if proposal.base_version == current:
        return proposal
    if not proposal.edit_ops:
        raise UsageError(
            f"proposal {proposal_id} has no edit operations to re-apply; draft it again on "
            f"{proposal.key}@{current}"
        )
    base_xml = queue.artifact_of(proposal.key, current) if current else None
    if current is None or base_xml is None:
        raise UsageError(f"the current version of {proposal.key} is unknown")
    cand = _check_edit({"ops": proposal.edit_ops}, base_xml, proposal.key)
    if not cand.ok:
        raise DraftFailed(
            f"the edits do not apply cleanly on {proposal.key}@{current}: {'; '.join(cand.problems[:5])}",
            cand.problems,
            [],
        )
    return queue.replace_artifact(
        proposal_id,
        actor,
        {
            "base_version": current,
            "version": versions.minor_bump(current),
            "artifact": cand.xml,
            "validation": cand.validation,
            "simulation": cand.simulation,
            "diff": _full_diff(base_xml, cand.xml or ""),
        },
        f"rebased onto {proposal.key}@{current} and re-validated",
    )


__all__ = ["DraftFailed", "check_xml", "draft_proposal", "new_process_diff", "rebase_proposal", "Path"]
