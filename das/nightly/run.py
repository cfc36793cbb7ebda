"""One nightly run = mine engine history, then file proposals. The use case behind both doors:
``das nightly`` (das/commands/nightly.py) and the ``das-nightly`` topic (das/engine/handlers.py)
call ``run_nightly``, so a scheduled BPMN timer and an operator get the same report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from das.contracts import NightlyFileResult, NightlyFinding, NightlyReport
from das.errors import InvalidInput
from das.nightly.mining import mine
from das.nightly.proposals import file_proposals


def parse_since(value: str | None) -> datetime | None:
    """ISO date or date-time; a naive value is taken as UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"--since {value!r} is not an ISO date or date-time (e.g. 2026-11-21T00:00:00Z)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_nightly(
    client: Any,
    *,
    since: datetime | None = None,
    keys: list[str] | None = None,
    model: str | None = None,
    dry_run: bool = False,
    queue: Any = None,
) -> NightlyReport:
    """Mine history and file proposals; the report lists findings and what was filed."""
    started = datetime.now(UTC)
    findings = mine(client, since, keys)
    results = file_proposals(client, findings, queue=queue, model=model, dry_run=dry_run)
    by_fp = {r.fingerprint: r for r in results}
    return NightlyReport(
        started=started.isoformat(),
        since=since.isoformat() if since else None,
        keys=keys or "all",
        dry_run=dry_run,
        model=model,
        findings=[
            NightlyFinding(
                **{k: v for k, v in f.to_dict().items() if k != "evidence"},
                evidence={k: v for k, v in f.evidence.items() if k != "durations_ms"},
                result=NightlyFileResult.model_validate(
                    {k: v for k, v in by_fp[f.fingerprint].to_dict().items() if k != "fingerprint"}
                )
                if f.fingerprint in by_fp
                else None,
            )
            for f in findings
        ],
        filed=[r.proposal_id for r in results if r.status == "filed" and r.proposal_id],
        counts={s: sum(1 for r in results if r.status == s) for s in sorted({r.status for r in results})},
    )


def keys_var(raw: Any) -> list[str] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return [k.strip() for k in raw.split(",") if k.strip()]
    if isinstance(raw, list) and all(isinstance(k, str) for k in raw):
        return raw
    raise InvalidInput("keys must be a comma-separated string or a JSON list of process keys")
