"""``das nightly``: the CLI door to ``das.nightly.run.run_nightly`` (text view: ``das.views.text``)."""

from __future__ import annotations

import click

from das.camunda.client import EngineClient
from das.nightly.run import parse_since, run_nightly
from das.output import emit
from das.views.text import render_nightly

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


@click.command()
@click.option("--since", help="Only history after this ISO date/time (default: all retained history).")
@click.option("--key", "keys", multiple=True, help="Process key to mine (repeatable; default: all deployed).")
@click.option(
    "--model", help="litellm model string that words the rationale (default: none, deterministic text)."
)
@click.option("--dry-run", is_flag=True, help="Mine and check, but file nothing.")
@click.option("--engine-url", help="Engine REST base (default $DAS_ENGINE_URL).")
@FORMAT
def nightly(
    since: str | None,
    keys: tuple[str, ...],
    model: str | None,
    dry_run: bool,
    engine_url: str | None,
    fmt: str,
) -> None:
    """Mine engine history for incidents, failing tasks, slow steps and unused paths, and file
    refactor proposals (retry, error boundary, timeout) for human review.

    \b
    Examples:
      das nightly --since 2026-11-21 --dry-run
      das nightly --key invoice --format json
    """
    with EngineClient(engine_url) as client:
        report = run_nightly(
            client, since=parse_since(since), keys=list(keys) or None, model=model, dry_run=dry_run
        )
    emit(report, fmt, render_nightly)
