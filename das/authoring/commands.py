"""CLI for authoring and review: ``das draft``, ``das queue ...``, ``das approve``, ``das reject``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from das.contracts import Proposal
from das.output import emit, progress

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format; json keys are stable.")


def _queue():
    from das.authoring.queue import Queue

    return Queue()


@click.command()
@click.argument("prompt")
@click.option("--key", help="Process key for a new process (default: derived from the draft).")
@click.option("--base", metavar="KEY@VERSION", help="Change an existing process: edits, not a rewrite.")
@click.option("--author", default=lambda: os.environ.get("USER") or "engineer", show_default="$USER",
              help="Who asked for the draft (they cannot approve it).")
@click.option("--model", help="litellm model string; default $DAS_MODEL or local/smollm2.")
@click.option("--max-repairs", default=3, show_default=True, type=click.IntRange(0, 10),
              help="Repair attempts after validation or simulation findings.")
@FORMAT
def draft(prompt: str, key: str | None, base: str | None, author: str, model: str | None,
          max_repairs: int, fmt: str) -> None:
    """Draft a process (or a change with --base) from PROMPT and file it as a proposal.

    The model writes the block-structured authoring form (or edit operations on the base);
    DAS compiles, validates and simulates it, feeds findings back and repairs, then files a
    minor-version proposal in the approval queue. Nothing is deployed until a human approves.

    \b
    Examples:
      das draft "Invoice approval: check the invoice, a manager approves, then pay it"
      das draft "add a 30-minute timeout to the payment step" --base invoice@1.2.0
    """
    from das.authoring.drafter import draft_proposal

    proposal = draft_proposal(prompt, key=key, base=base, author=author, model=model, max_repairs=max_repairs)
    out = {"proposal_id": proposal.id, "key": proposal.key, "version": proposal.version,
           "base_version": proposal.base_version, "status": proposal.status,
           "valid": bool(proposal.validation.get("valid")),
           "repair_attempts": proposal.value_measure.get("repair_attempts", 0)}
    emit(out, fmt, lambda d: (f"filed {d['proposal_id']}: {d['key']} {d['base_version'] or '(new)'} -> "
                              f"{d['version']} ({d['status']}, valid={d['valid']}, repairs={d['repair_attempts']})\n"
                              f"review it: das queue show {d['proposal_id']}"))


@click.group()
def queue() -> None:
    """The approval queue: list, show, diff, rebase and redeploy proposals."""


@queue.command("list")
@click.option("--status", type=click.Choice(["proposed", "approved", "rejected", "deployed", "deploy_failed"]))
@FORMAT
def queue_list(status: str | None, fmt: str) -> None:
    """List proposals, oldest first."""
    rows = _queue().list(status)

    def text(data: list[dict[str, Any]]) -> str:
        if not data:
            return "no proposals" + (f" with status {status}" if status else "")
        lines = [f"{'ID':<14} {'KEY':<22} {'BASE':<8} {'VERSION':<8} {'STATUS':<14} AUTHOR"]
        lines += [f"{r['id']:<14} {r['key']:<22} {r['base_version'] or '-':<8} {r['version']:<8} {r['status']:<14} "
                  f"{r['author']}" for r in data]
        return "\n".join(lines)

    emit(rows, fmt, text)


@queue.command("show")
@click.argument("proposal_id")
@FORMAT
def queue_show(proposal_id: str, fmt: str) -> None:
    """Show a proposal: findings, simulation, diff, rationale and history.

    PROPOSAL_ID may be `last` for the most recently filed proposal.
    """
    q = _queue()
    if proposal_id == "last":
        rows = q.list()
        if not rows:
            from das.errors import NegativeResult

            raise NegativeResult("the queue is empty; file a proposal with `das draft`")
        proposal_id = rows[-1]["id"]
    emit(q.get(proposal_id), fmt, render_proposal)


@queue.command("diff")
@click.argument("proposal_id")
@FORMAT
def queue_diff(proposal_id: str, fmt: str) -> None:
    """Show the semantic diff of a proposal against its base."""
    proposal = _queue().get(proposal_id)
    emit(proposal.diff, fmt, lambda d: d.get("text") or json.dumps(d, indent=2))


@queue.command("redeploy")
@click.argument("proposal_id")
@FORMAT
def queue_redeploy(proposal_id: str, fmt: str) -> None:
    """Deploy an approved (or deploy_failed) proposal again; safe to repeat."""
    from das.authoring.deploy import deploy_and_record

    proposal = deploy_and_record(_queue(), proposal_id)
    _emit_status(proposal, fmt)
    if proposal.status != "deployed":
        sys.exit(5)


@queue.command("rebase")
@click.argument("proposal_id")
@click.option("--actor", default=lambda: os.environ.get("USER") or "engineer", show_default="$USER")
@FORMAT
def queue_rebase(proposal_id: str, actor: str, fmt: str) -> None:
    """Re-apply a stale proposal's edits on the key's current version and re-validate."""
    from das.authoring.drafter import rebase_proposal

    _emit_status(rebase_proposal(_queue(), proposal_id, actor), fmt)


@click.command()
@click.argument("proposal_id")
@click.option("--reviewer", required=True, help="Your name, recorded in the history.")
@click.option("--comment", help="Why you approve.")
@click.option("--no-deploy", is_flag=True, help="Record the approval only; the kernel deploys later.")
@FORMAT
def approve(proposal_id: str, reviewer: str, comment: str | None, no_deploy: bool, fmt: str) -> None:
    """Approve a proposal; when approvals suffice, the kernel deploys it.

    Refused for the DAS's own identity, for the proposal's author, for a stale base
    (rebase first) and, on high-impact keys, until two distinct reviewers approved.
    """
    from das.authoring.deploy import deploy_and_record

    q = _queue()
    proposal = q.approve(proposal_id, reviewer, comment)
    if proposal.status == "approved" and not no_deploy:
        progress(f"approved {proposal_id}; deploying …")
        proposal = deploy_and_record(q, proposal_id)
    _emit_status(proposal, fmt)
    if proposal.status == "deploy_failed":
        sys.exit(5)


@click.command()
@click.argument("proposal_id")
@click.option("--reviewer", required=True, help="Your name, recorded in the history.")
@click.option("--comment", required=True, help="Why you reject (required).")
@FORMAT
def reject(proposal_id: str, reviewer: str, comment: str, fmt: str) -> None:
    """Reject a proposal with a comment."""
    _emit_status(_queue().reject(proposal_id, reviewer, comment), fmt)


@click.command("eval")
@click.argument("suite", type=click.Choice(["authoring"]))
@click.option("--model", help="litellm model string; default $DAS_MODEL or local/smollm2.")
@click.option("--limit", type=int, help="Run only the first N cases.")
@FORMAT
def eval_cmd(suite: str, model: str | None, limit: int | None, fmt: str) -> None:
    """Run an evaluation suite (evals/<suite>/) against a model and print its scores."""
    from das.authoring.evals import run_authoring_eval

    report = run_authoring_eval(model=model, limit=limit)
    emit(report, fmt, lambda r: "\n".join(f"{k}: {v}" for k, v in r["summary"].items()))


def _emit_status(proposal: Proposal, fmt: str) -> None:
    history = proposal.history[-1] if proposal.history else None
    data = {"proposal_id": proposal.id, "key": proposal.key, "version": proposal.version,
            "status": proposal.status, "last": history.model_dump() if history else None}
    emit(data, fmt, lambda d: f"{d['proposal_id']}: {d['key']}@{d['version']} is {d['status']}"
                              + (f" ({d['last']['comment']})" if d["last"] and d["last"].get("comment") else ""))


def render_proposal(p: Proposal) -> str:
    lines = [f"proposal {p.id}  [{p.status}]  {p.kind} {p.key}: {p.base_version or '(new)'} -> {p.version}",
             f"author: {p.author}  origin: {p.origin}", "", f"rationale: {p.rationale or '-'}", ""]
    lines += _elements(p.artifact)
    findings = p.validation.get("findings", [])
    lines.append(f"validation: {'valid' if p.validation.get('valid') else 'INVALID'} ({len(findings)} findings)")
    lines += [f"  {f.get('severity', '?'):<7} {f.get('rule', '?')}: {f.get('element') or '-'}: {f.get('message')}"
              for f in findings[:30]]
    sim = p.simulation
    if sim:
        lines.append(f"simulation: {sim.get('completed', 0)}/{sim.get('runs', 0)} runs completed, "
                     f"coverage {sim.get('coverage', 0):.0%}, stuck {len(sim.get('stuck', []))}, "
                     f"unsupported {len(sim.get('unsupported', []))}")
    lines.append("")
    lines.append("diff against base:")
    lines.append("  " + (p.diff.get("text") or json.dumps(p.diff)).replace("\n", "\n  "))
    if p.tde_wrappers:
        lines.append(f"TDE wrappers: {', '.join(w.get('task_type', '?') for w in p.tde_wrappers)}")
    lines.append("")
    lines.append("history:")
    lines += [f"  {h.at}  {h.actor:<12} {h.action}" + (f": {h.comment}" if h.comment else "") for h in p.history]
    return "\n".join(lines)


def _elements(xml: str) -> list[str]:
    """The drafted process at a glance: each flow node with its type and topic."""
    if not xml:
        return []
    from das.bpmn.parse import parse
    from das.errors import DasError

    try:
        defs = parse(xml.encode(), name="proposal")
    except DasError as exc:
        return [f"process: cannot be read ({exc.message})", ""]
    out = ["process elements:"]
    for node in defs.nodes.values():
        topic = node.attrs.get("camunda:topic")
        out.append(f"  {node.type:<22} {node.id:<24} {node.name or ''}" + (f"  [topic {topic}]" if topic else ""))
    return [*out, ""]
