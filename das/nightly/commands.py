"""``das nightly`` and the ``das-nightly`` topic handler: one run = mine, then file proposals.

Both doors call ``run_nightly``, so a scheduled BPMN timer and an operator get the same report.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any

import click

from das.errors import DasError, InvalidInput

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format; json keys are stable.")


def parse_since(value: str | None) -> datetime | None:
    """ISO date or date-time; a naive value is taken as UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"--since {value!r} is not an ISO date or date-time (e.g. 2026-11-21T00:00:00Z)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_nightly(client: Any, *, since: datetime | None = None, keys: list[str] | None = None,
                model: str | None = None, dry_run: bool = False, queue: Any = None) -> dict[str, Any]:
    """Mine history and file proposals; the report lists findings and what was filed."""
    from das.nightly.mining import mine
    from das.nightly.proposals import file_proposals

    started = datetime.now(UTC)
    findings = mine(client, since, keys)
    results = file_proposals(client, findings, queue=queue, model=model, dry_run=dry_run)
    by_fp = {r.fingerprint: r for r in results}
    return {
        "started": started.isoformat(), "since": since.isoformat() if since else None, "keys": keys or "all",
        "dry_run": dry_run, "model": model,
        "findings": [{**{k: v for k, v in f.to_dict().items() if k != "evidence"},
                      "evidence": {k: v for k, v in f.evidence.items() if k != "durations_ms"},
                      "result": by_fp[f.fingerprint].to_dict() if f.fingerprint in by_fp else None}
                     for f in findings],
        "filed": [r.proposal_id for r in results if r.status == "filed"],
        "counts": {s: sum(1 for r in results if r.status == s) for s in sorted({r.status for r in results})},
    }


def render_report(report: dict[str, Any]) -> str:
    lines = [f"{len(report['findings'])} finding(s)" + (" (dry run)" if report["dry_run"] else "")]
    for f in report["findings"]:
        res = f.get("result") or {}
        where = f"{f['process_key']}:{f['activity_id']}"
        tail = res.get("proposal_id") or "; ".join(res.get("problems", [])) or ""
        lines.append(f"  {f['kind']:<14} {where:<40} {f['refactor']:<19} {res.get('status', '-'):<15} {tail}".rstrip())
    lines.append("filed: " + (", ".join(report["filed"]) or "none"))
    if report["filed"]:
        lines.append("review: das queue show <id>")
    return "\n".join(lines)


@click.command()
@click.option("--since", help="Only history after this ISO date/time (default: all retained history).")
@click.option("--key", "keys", multiple=True, help="Process key to mine (repeatable; default: all deployed).")
@click.option("--model", help="litellm model string that words the rationale (default: none, deterministic text).")
@click.option("--dry-run", is_flag=True, help="Mine and check, but file nothing.")
@click.option("--engine-url", help="Engine REST base (default $DAS_ENGINE_URL).")
@FORMAT
def nightly(since: str | None, keys: tuple[str, ...], model: str | None, dry_run: bool, engine_url: str | None,
            fmt: str) -> None:
    """Mine engine history for incidents, failing tasks, slow steps and unused paths, and file
    refactor proposals (retry, error boundary, timeout) for human review.

    \b
    Examples:
      das nightly --since 2026-11-21 --dry-run
      das nightly --key invoice --format json
    """
    from das.engine.client import EngineClient
    from das.output import emit

    with EngineClient(engine_url) as client:
        report = run_nightly(client, since=parse_since(since), keys=list(keys) or None, model=model,
                             dry_run=dry_run)
    emit(report, fmt, render_report)


def _keys_var(raw: Any) -> list[str] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return [k.strip() for k in raw.split(",") if k.strip()]
    if isinstance(raw, list) and all(isinstance(k, str) for k in raw):
        return raw
    raise InvalidInput("keys must be a comma-separated string or a JSON list of process keys")


def handle_nightly(task: Any, ctx: Any) -> Any:
    """``das-nightly``: variables ``since`` (ISO), ``keys`` (list or "a,b"), ``dryRun``; completes
    with ``nightlyReport`` (Json) and ``nightlyFiled`` (count). Bad input is an incident at once;
    an unreachable engine or store is retried."""
    from das.engine.client import EngineClient
    from das.engine.handlers import Outcome, failure_outcome
    from das.engine.variables import Json

    try:
        since = parse_since(task.variables.get("since"))
        keys = _keys_var(task.variables.get("keys"))
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    try:
        with EngineClient() as client:
            report = run_nightly(client, since=since, keys=keys, model=ctx.model,
                                 dry_run=bool(task.variables.get("dryRun")))
    except InvalidInput as exc:
        return failure_outcome(task, None, exc.message, None, final=True)
    except DasError as exc:
        return failure_outcome(task, None, f"{type(exc).__name__}: {exc.message}", None)
    except Exception as exc:  # a bug: an incident after retries, with the traceback for the operator
        return failure_outcome(task, None, f"DAS nightly bug: {type(exc).__name__}: {exc}",
                               traceback.format_exc()[-8000:])
    return Outcome("complete", variables={"nightlyReport": Json(report), "nightlyFiled": len(report["filed"])},
                   stop_reason="completed")
