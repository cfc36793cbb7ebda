"""Operator commands: ``das policy explain`` and ``das effects list|resolve``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from das.contracts import TaskSpec, parse_external
from das.errors import InvalidInput, UsageError
from das.guardrails import resolve_policy
from das.identity import os_principal
from das.output import emit, progress
from das.registry import lookup
from das.store import open_store

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


@click.group()
def policy() -> None:
    """Inspect the guardrail policy a task would run under."""


@policy.command("explain")
@click.option(
    "--spec", "spec_path", required=True, metavar="FILE|-", help="TaskSpec JSON file, or - for stdin."
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Operator policy YAML (the only layer that may loosen the default).",
)
@FORMAT
def policy_explain(spec_path: str, policy_file: str | None, fmt: str) -> None:
    """Print the merged policy for a TaskSpec and which layer set each value.

    Layers, in order: guardrails/default.yaml, the operator file (--policy), the TDE registry
    entry, guardrails/task_types.yaml, the spec's own policy. Every layer after the operator's
    may only tighten.
    """
    try:
        raw = sys.stdin.read() if spec_path == "-" else open(spec_path).read()
    except OSError as exc:
        raise InvalidInput(f"cannot read spec {spec_path}: {exc.strerror}") from exc
    spec = parse_external(TaskSpec, raw, "taskSpec")
    entry = lookup(spec.task_type)
    sources: dict[str, str] = {}
    merged = resolve_policy(spec, policy_file, entry.policy if entry else None, sources=sources)
    values = merged.model_dump(mode="json")
    data = {
        "task_type": spec.task_type,
        "policy": values,
        "sources": {k: sources.get(k, "?") for k in values},
    }

    def text(d: dict[str, Any]) -> str:
        lines = [f"policy for task type {d['task_type']}:"]
        lines += [f"  {k:<18} {json.dumps(v):<40} <- {d['sources'][k]}" for k, v in d["policy"].items()]
        return "\n".join(lines)

    emit(data, fmt, text)


@click.group()
def effects() -> None:
    """Side effects claimed per idempotency key; resolve the ones whose outcome is unknown.

    A side-effecting tool call (e.g. an HTTP POST) that was sent but timed out or was reset
    is recorded as `unknown` and never repeated automatically. Find out what happened on
    the remote side, then say so with `das effects resolve`.
    """


@effects.command("list")
@click.option(
    "--state",
    type=click.Choice(["started", "done", "unknown"]),
    help="Only effects in this state (unknown: waiting for an operator).",
)
@FORMAT
def effects_list(state: str | None, fmt: str) -> None:
    """List claimed side effects, oldest first."""
    rows = [{k: v for k, v in r.items() if k != "result_json"} for r in open_store().effects(state)]
    emit(
        rows,
        fmt,
        lambda data: (
            "\n".join(f"{r['state']:<8} {r['tool']:<14} {r['call_key']}  {r['detail'] or ''}" for r in data)
            or "no side effects" + (f" in state {state}" if state else "")
        ),
    )


@effects.command("resolve")
@click.argument("call_key")
@click.option(
    "--as",
    "outcome",
    type=click.Choice(["done", "not-done"]),
    required=True,
    help="done: it happened (a re-run replays it as done); not-done: it did not (a re-run may send it).",
)
@click.option("--note", help="What you checked, recorded in the audit log.")
@FORMAT
def effects_resolve(call_key: str, outcome: str, note: str | None, fmt: str) -> None:
    """Record an operator's word on a side effect whose outcome is unknown."""
    try:
        result = open_store().resolve_effect(call_key, outcome == "done", os_principal().name, note)
    except KeyError:
        raise UsageError(f"no side effect {call_key!r}; see `das effects list`") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    progress(f"recorded in the audit log as {os_principal().name}")
    emit(result, fmt, lambda d: f"{d['call_key']}: resolved as {d['resolved_as']} (was {d['was']})")
