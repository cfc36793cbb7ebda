"""Core commands: ``das schema`` and ``das tde list|run``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from das.agents.tde_loop import run_tde
from das.agents.team import select_task
from das.contracts import CONTRACTS, GUARDRAIL_STOPS, TaskSpec, parse_external
from das.errors import InvalidInput, UsageError
from das.identity import os_principal
from das.output import emit, progress
from das.registry import load_registry
from das.store.keys import principal_namespace
from das.views.reports import render_tde_result

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)

# stop_reason -> exit code (0 ok, 1 negative, 3 guardrail/policy, 5 upstream)
STOP_EXIT = {
    "completed": 0,
    "invalid_output": 1,
    "policy_denied": 3,
    "error": 5,
    **dict.fromkeys(GUARDRAIL_STOPS, 3),
}


@click.command()
@click.argument("name", required=False)
def schema(name: str | None) -> None:
    """Print the JSON Schema of contract NAME (TaskSpec, Policy, TdeResult, TraceStep, Usage,
    Decision, Proposal, and a proposal's ValidationReport, SimulationReport, ProposalDiff,
    Evidence, ValueMeasure). Without NAME, list the names."""
    if not name:
        click.echo("\n".join(CONTRACTS))
        return
    match = {k.lower(): v for k, v in CONTRACTS.items()}.get(name.lower())
    if match is None:
        raise UsageError(f"unknown contract {name!r}; one of: {', '.join(CONTRACTS)}")
    click.echo(json.dumps(match.model_json_schema(), indent=2))


@click.group()
def tde() -> None:
    """Task definition executors: the registry and the probabilistic loop."""


@tde.command("list")
@FORMAT
def tde_list(fmt: str) -> None:
    """Show the TDE registry (processes/tde/*.yaml): task type, executor, schemas, policy."""
    rows = [t.model_dump() for t in load_registry().values()]

    def text(data: list[dict[str, Any]]) -> str:
        lines = [f"{'TASK TYPE':<20} {'EXECUTOR':<28} DESCRIPTION"]
        for r in data:
            ex = r["executor"]["kind"] + (
                f" ({r['executor']['topic']})" if r["executor"].get("topic") else ""
            )
            lines.append(f"{r['task_type']:<20} {ex:<28} {r['description']}")
        return "\n".join(lines)

    emit(rows, fmt, text)


@tde.command("run")
@click.option(
    "--spec",
    "spec_path",
    required=True,
    metavar="FILE|-",
    help="TaskSpec JSON file, or - for stdin (see `das schema TaskSpec`).",
)
@click.option("--model", help="litellm model string; default $DAS_MODEL or local/qwen2.5-coder-1.5b.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Operator policy YAML: may loosen the defaults; task types and specs may only tighten it.",
)
@FORMAT
def tde_run(spec_path: str, model: str | None, policy_file: str | None, fmt: str) -> None:
    """Run one probabilistic task and print its TdeResult.

    \b
    Example:
      echo '{"task_type":"greet","prompt":"Say hello",
             "output_schema":{"type":"object","properties":{"greeting":{"type":"string"}},
                              "required":["greeting"]}}' | das tde run --spec -

    The spec's idempotency_key (letters, digits, _ . : -) is yours alone: its stored result
    and side effects are kept per OS account.

    Exit code: 0 succeeded, 1 invalid output, 3 guardrail stop or policy denial,
    4 invalid spec, 5 provider failure.
    """
    try:
        raw = sys.stdin.read() if spec_path == "-" else open(spec_path).read()
    except OSError as exc:
        raise InvalidInput(f"cannot read spec {spec_path}: {exc.strerror}") from exc
    spec = parse_external(TaskSpec, raw, "taskSpec")
    progress(f"running {spec.task_type} with {model or 'default model'} …")
    # the spec's idempotency key is the OS account's: another account's same key is another task
    result = run_tde(
        spec, model=model, policy_file=policy_file, namespace=principal_namespace(os_principal().name)
    )
    emit(result, fmt, render_tde_result)
    code = STOP_EXIT.get(result.stop_reason, 1)
    if code:
        sys.exit(code)


@click.command()
@click.option(
    "--candidates",
    "candidates_path",
    required=True,
    metavar="FILE|-",
    help="JSON list of candidate task specs (or task type names).",
)
@click.option("--context", "context_path", metavar="FILE", help="JSON object with the process context.")
@click.option("--members", default=3, show_default=True, type=click.IntRange(1, 7), help="Team size.")
@click.option("--model", "models", multiple=True, help="Model per member (repeat); default $DAS_MODEL.")
@FORMAT
def select(
    candidates_path: str, context_path: str | None, members: int, models: tuple[str, ...], fmt: str
) -> None:
    """Let an LLM team pick the next task among CANDIDATES; prints a Decision.

    The choice is always one of the candidates, or an escalation to a human when there is
    no strict majority (exit 1). Votes, rationale and dissent are in the output.
    """
    try:
        candidates = json.loads(sys.stdin.read() if candidates_path == "-" else open(candidates_path).read())
        context = json.loads(open(context_path).read()) if context_path else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read candidates/context: {exc}") from exc
    decision = select_task(candidates, context, models=list(models) or None, members=members)
    emit(
        decision,
        fmt,
        lambda d: (
            f"{d.mode}: "
            + (
                f"candidate {d.chosen_index} ({(d.chosen or {}).get('task_type', '?')})"
                if d.chosen_index is not None
                else "escalate to a human"
            )
            + f", confidence {d.confidence}\n{d.rationale}"
        ),
    )
    if decision.chosen_index is None:
        sys.exit(1)
