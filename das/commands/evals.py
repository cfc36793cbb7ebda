"""``das eval authoring|tde``: run an evaluation suite against a model and print its scores."""

from __future__ import annotations

import click

from das.evals.authoring import run_authoring_eval
from das.evals.tde import run_tde_eval
from das.output import emit
from das.views.reports import render_authoring_eval, render_tde_eval

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


@click.command("eval")
@click.argument("suite", type=click.Choice(["authoring", "tde"]))
@click.option("--model", help="litellm model string; default $DAS_MODEL or local/qwen2.5-coder-1.5b.")
@click.option("--limit", type=int, help="Run only the first N cases.")
@click.option(
    "--labels",
    "with_labels",
    is_flag=True,
    help="authoring: give the model the reference's activity labels too (the benchmark's prompt form).",
)
@FORMAT
def eval_cmd(suite: str, model: str | None, limit: int | None, with_labels: bool, fmt: str) -> None:
    """Run an evaluation suite (evals/<suite>/) against a model and print its scores.

    \b
    authoring  draft each case (evals/authoring/cases): valid and simulation rates, activity and
               gateway F1, behavioural fitness / precision / F against the reference, latency
    tde        run each TDE case (evals/tde/cases) and check its outputs exactly: right rate
    Examples:
      das eval authoring --limit 3
      das eval authoring --labels --format json
      das eval tde --model openai/gpt-4o-mini      # a hosted model, same cases and scorer
    """
    if suite == "tde":
        tde_report = run_tde_eval(model=model, limit=limit)
        emit(tde_report.model_dump(mode="json"), fmt, lambda _r: render_tde_eval(tde_report))
        return

    report = run_authoring_eval(model=model, limit=limit, with_labels=with_labels)
    emit(report, fmt, render_authoring_eval)
