"""CLI for authoring and review: ``das draft``, ``das queue ...``, ``das approve``, ``das reject``.

Who acts is never an option: on the machine that holds the store the CLI acts as the OS
account; with ``DAS_API_URL``/``DAS_TOKEN`` (or ``das login``) every command goes through the
HTTP API as the token's user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from das.authoring.deploy import deploy_and_record
from das.authoring.drafter import draft_proposal, rebase_proposal
from das.authoring.propose import propose_xml
from das.authoring.queue import Queue
from das.contracts import Proposal
from das.errors import NegativeResult
from das.identity import os_principal
from das.output import emit, progress
from das.remote import remote
from das.views.text import diff_text, render_proposal

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


def _queue():
    return Queue()


@click.command()
@click.argument("prompt")
@click.option("--key", help="Process key for a new process (default: derived from the draft).")
@click.option("--base", metavar="KEY@VERSION", help="Change an existing process: edits, not a rewrite.")
@click.option("--model", help="litellm model string; default $DAS_MODEL or local/qwen2.5-coder-1.5b.")
@click.option(
    "--max-repairs",
    default=3,
    show_default=True,
    type=click.IntRange(0, 10),
    help="Repair attempts after validation or simulation findings.",
)
@FORMAT
def draft(
    prompt: str, key: str | None, base: str | None, model: str | None, max_repairs: int, fmt: str
) -> None:
    """Draft a process (or a change with --base) from PROMPT and file it as a proposal.

    The model writes the block-structured authoring form (or edit operations on the base);
    DAS compiles, validates and simulates it, feeds findings back and repairs, then files a
    minor-version proposal in the approval queue. Nothing is deployed until a human approves.
    You are the author (the OS account, or the API token's user), so you cannot approve it.

    \b
    Examples:
      das draft "Invoice approval: check the invoice, a manager approves, then pay it"
      das draft "add a 30-minute timeout to the payment step" --base invoice@1.2.0
    """
    client = remote()
    if client is not None:
        if model or max_repairs != 3:
            raise click.UsageError(
                "--model and --max-repairs are the server's settings when drafting through the API"
            )
        data = client.draft(prompt, key, base)
        emit(
            data,
            fmt,
            lambda d: f"filed {d['proposal_id']}: {d['key']}@{d['version']} ({d['status']}) on {client.url}",
        )
        return

    proposal = draft_proposal(
        prompt, key=key, base=base, author=os_principal(), model=model, max_repairs=max_repairs
    )
    out = {
        "proposal_id": proposal.id,
        "key": proposal.key,
        "version": proposal.version,
        "base_version": proposal.base_version,
        "status": proposal.status,
        "valid": proposal.validation.valid,
        "repair_attempts": proposal.value_measure.repair_attempts or 0,
    }
    emit(
        out,
        fmt,
        lambda d: (
            f"filed {d['proposal_id']}: {d['key']} {d['base_version'] or '(new)'} -> "
            f"{d['version']} ({d['status']}, valid={d['valid']}, repairs={d['repair_attempts']})\n"
            f"review it: das queue show {d['proposal_id']}"
        ),
    )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--key", help="The process to propose when FILE holds several (default: its executable process)."
)
@click.option(
    "--base", metavar="KEY[@VERSION]", help="The version this changes (default: the key's current one)."
)
@FORMAT
def propose(file: Path, key: str | None, base: str | None, fmt: str) -> None:
    """File a BPMN you wrote (e.g. in Camunda Modeler) as a proposal in the approval queue.

    It is validated (every TDE step's task type must be in the registry), simulated and
    diffed against its base, and filed as the next minor version; you are its author, so
    someone else approves it. Nothing is filed when it has errors (exit 1, findings listed).

    \b
    Examples:
      das bpmn compile ticket.json -o ticket.bpmn && das propose ticket.bpmn
      das propose invoice.bpmn --base invoice@1.2.0
    """
    data = file.read_bytes()
    client = remote()
    if client is not None:
        out = client.propose(data.decode("utf-8", errors="replace"), key, base, file.name)
    else:
        p = propose_xml(data, author=os_principal(), key=key, base=base, name=file.name)
        out = {
            "proposal_id": p.id,
            "key": p.key,
            "version": p.version,
            "base_version": p.base_version,
            "status": p.status,
        }
    emit(
        out,
        fmt,
        lambda d: (
            f"filed {d['proposal_id']}: {d['key']} -> {d['version']} ({d['status']})\n"
            f"review it: das queue show {d['proposal_id']}"
        ),
    )


@click.group()
def queue() -> None:
    """The approval queue: list, show, diff, rebase and redeploy proposals."""


@queue.command("list")
@click.option(
    "--status", type=click.Choice(["proposed", "approved", "rejected", "deployed", "deploy_failed"])
)
@FORMAT
def queue_list(status: str | None, fmt: str) -> None:
    """List proposals, oldest first."""
    client = remote()
    rows = client.list(status) if client else _queue().list(status)

    def text(data: list[dict[str, Any]]) -> str:
        if not data:
            return "no proposals" + (f" with status {status}" if status else "")
        lines = [f"{'ID':<14} {'KEY':<22} {'BASE':<8} {'VERSION':<8} {'STATUS':<14} AUTHOR"]
        lines += [
            f"{r['id']:<14} {r['key']:<22} {r['base_version'] or '-':<8} {r['version']:<8} {r['status']:<14} "
            f"{r['author']}"
            for r in data
        ]
        return "\n".join(lines)

    emit(rows, fmt, text)


@queue.command("show")
@click.argument("proposal_id")
@FORMAT
def queue_show(proposal_id: str, fmt: str) -> None:
    """Show a proposal: findings, simulation, diff, rationale and history.

    PROPOSAL_ID may be `last` for the most recently filed proposal.
    """
    emit(_get(proposal_id), fmt, render_proposal)


@queue.command("diff")
@click.argument("proposal_id")
@FORMAT
def queue_diff(proposal_id: str, fmt: str) -> None:
    """Show the semantic diff of a proposal against its base."""
    proposal = _get(proposal_id)
    emit(proposal.diff, fmt, lambda _d: diff_text(proposal))


@queue.command("redeploy")
@click.argument("proposal_id")
@FORMAT
def queue_redeploy(proposal_id: str, fmt: str) -> None:
    """Deploy an approved (or deploy_failed) proposal again; safe to repeat.

    Refused, before anything is written, unless the history proves the current artifact
    approved by enough distinct reviewers.
    """
    client = remote()
    if client is not None:
        _emit_remote(client.act(proposal_id, "redeploy"), fmt)
        return

    proposal = deploy_and_record(_queue(), proposal_id)
    _emit_status(proposal, fmt)
    if proposal.status != "deployed":
        sys.exit(5)


@queue.command("rebase")
@click.argument("proposal_id")
@FORMAT
def queue_rebase(proposal_id: str, fmt: str) -> None:
    """Re-apply a stale proposal's edits on the key's current version and re-validate.

    Approvals given to the old artifact stop counting: reviewers approve the new one.
    """
    client = remote()
    if client is not None:
        _emit_remote(client.act(proposal_id, "rebase"), fmt)
        return
    _emit_status(rebase_proposal(_queue(), proposal_id, os_principal()), fmt)


@click.command()
@click.argument("proposal_id")
@click.option("--comment", help="Why you approve.")
@click.option("--no-deploy", is_flag=True, help="Record the approval only; the kernel deploys later.")
@click.option(
    "--ack-executable",
    is_flag=True,
    help="I read the proposal's flagged executable content (scripts, Java classes, expressions, "
    "connectors; `das queue show ID` lists it) and accept it. Required when it has any.",
)
@FORMAT
def approve(proposal_id: str, comment: str | None, no_deploy: bool, ack_executable: bool, fmt: str) -> None:
    """Approve a proposal as yourself; when approvals suffice, the kernel deploys it.

    You are the OS account (or, with DAS_API_URL/DAS_TOKEN or `das login`, the token's
    user). Refused for the DAS's own identity, for the proposal's author, for non-reviewers,
    for a stale base (rebase first) and, on high-impact keys, until two distinct reviewers
    approved the same artifact. A proposal that runs executable content outside the allow-list
    (guardrails/executable.yaml) needs --ack-executable, which the history records.

    \b
    Example:
      das queue show p-0123456789            # read the "executable content" list
      das approve p-0123456789 --ack-executable --comment "listener reviewed"
    """
    client = remote()
    if client is not None:
        if no_deploy:
            raise click.UsageError("--no-deploy is not available through the API")
        extra = {"ack_executable": True} if ack_executable else {}  # the API's approve body field
        _emit_remote(client.act(proposal_id, "approve", comment, **extra), fmt)
        return
    q = _queue()
    proposal = q.approve(proposal_id, os_principal(), comment, ack_executable)
    if proposal.status == "approved" and not no_deploy:
        progress(f"approved {proposal_id}; deploying …")
        proposal = deploy_and_record(q, proposal_id)
    _emit_status(proposal, fmt)
    if proposal.status == "deploy_failed":
        sys.exit(5)


@click.command()
@click.argument("proposal_id")
@click.option("--comment", required=True, help="Why you reject (required).")
@FORMAT
def reject(proposal_id: str, comment: str, fmt: str) -> None:
    """Reject a proposal as yourself, with a comment (same identity rules as approve)."""
    client = remote()
    if client is not None:
        _emit_remote(client.act(proposal_id, "reject", comment), fmt)
        return
    _emit_status(_queue().reject(proposal_id, os_principal(), comment), fmt)


def _get(proposal_id: str) -> Proposal:
    """A proposal by id (or ``last``), from the API when configured, else the local store."""
    client = remote()
    if proposal_id == "last":
        rows = client.list(None) if client else _queue().list()
        if not rows:
            raise NegativeResult("the queue is empty; file a proposal with `das draft`")
        proposal_id = rows[-1]["id"]
    if client is not None:
        return Proposal.model_validate(client.get(proposal_id))
    return _queue().get(proposal_id)


def _emit_remote(data: dict[str, Any], fmt: str) -> None:
    emit(
        data,
        fmt,
        lambda d: (
            f"{d['proposal_id']}: {d['key']}@{d['version']} is {d['status']} "
            f"(approvals {len(d['approvals'])}/{d['approvals_needed']})"
        ),
    )
    if data.get("status") == "deploy_failed":
        sys.exit(5)


def _emit_status(proposal: Proposal, fmt: str) -> None:
    history = proposal.history[-1] if proposal.history else None
    data = {
        "proposal_id": proposal.id,
        "key": proposal.key,
        "version": proposal.version,
        "status": proposal.status,
        "last": history.model_dump() if history else None,
    }
    emit(
        data,
        fmt,
        lambda d: (
            f"{d['proposal_id']}: {d['key']}@{d['version']} is {d['status']}"
            + (f" ({d['last']['comment']})" if d["last"] and d["last"].get("comment") else "")
        ),
    )
