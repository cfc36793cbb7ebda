"""Text views of reports: validation, TDE results, evals (CLI output; the same models print as
``--format json``)."""

from __future__ import annotations

import json
from typing import Any

from das.contracts import TdeResult, ValidationReport
from das.evals.tde import TdeEvalReport


def render_validation(reports: list[ValidationReport]) -> str:
    """``das bpmn validate`` as text: one line per file, then its findings."""
    lines = []
    for r in reports:
        c = r.counts()
        status = "valid" if r.valid else "INVALID"
        lines.append(
            f"{r.file}: {status} ({c['error']} error(s), {c['warning']} warning(s), {c['info']} info)"
        )
        for f in r.findings:
            where = f" [{f.element}]" if f.element else ""
            lines.append(f"  {f.severity:7} {f.rule}{where}: {f.message}")
    return "\n".join(lines)


def render_tde_result(result: TdeResult) -> str:
    """``das tde run`` as text: status, usage, outputs and the trace."""
    lines = [
        f"status: {result.status}  stop_reason: {result.stop_reason}",
        f"usage: {result.usage.iterations} iterations, {result.usage.model_calls} model calls, "
        f"{result.usage.tool_calls} tool calls, {result.usage.input_tokens}+{result.usage.output_tokens} tokens, "
        f"${result.usage.cost_usd:.4f}, {result.usage.wall_s:.2f}s",
    ]
    if result.message:
        lines.append(f"message: {result.message}")
    lines.append("outputs: " + json.dumps(result.outputs, indent=2))
    lines.append("trace:")
    for step in result.trace:
        detail = step.tool or step.evaluation or (step.thought or "")[:80]
        lines.append(
            f"  [{step.iteration}] {step.phase:<8} {detail}"
            + (f"  ERROR: {step.error}" if step.error else "")
        )
    return "\n".join(lines)


def render_authoring_eval(report: dict[str, Any]) -> str:
    """The eval as a table (one row per case) and its summary."""
    lines = [
        f"authoring eval, model {report['model']}, mode {report.get('mode', 'description')}",
        f"{'case':<28} {'valid':<5} {'sim':<5} {'rep':>3} {'F1act':>6} {'F1gw':>6} {'fit':>6} {'prec':>6} "
        f"{'behF':>6} {'s':>6}",
    ]
    for r in report["cases"]:
        lines.append(
            f"{r['key']:<28} {str(r['valid'])[0]:<5} {str(r['simulated'])[0]:<5} {r['repair_attempts']:>3} "
            f"{r['f1_activities']:>6.2f} {r['f1_gateways']:>6.2f} {r['fitness']:>6.2f} {r['precision']:>6.2f} "
            f"{r['behaviour_f']:>6.2f} {r['latency_s']:>6.1f}"
            + (f"  error: {r['error'][:80]}" if r.get("error") else "")
        )
    lines.append("")
    lines += [f"{k}: {v}" for k, v in report["summary"].items()]
    return "\n".join(lines)


def render_tde_eval(report: TdeEvalReport) -> str:
    """A table (id, status, right, failed checks), then the summary."""
    head = ("id", "status", "right", "failed checks")
    rows = [
        (
            r.id,
            r.status if r.status == "succeeded" else f"{r.status}/{r.stop_reason or '-'}",
            "yes" if r.right else "no",
            "; ".join(r.failed_checks) or "-",
        )
        for r in report.cases
    ]
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(3)]
    lines = [f"TDE eval, model {report.model}", ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head[:3], widths, strict=True)) + "  " + head[3])
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(head[3]))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    s = report.summary
    lines += [
        "",
        f"cases {s.cases}  succeeded {s.succeeded_rate:.0%}  right {s.right_rate:.0%}  "
        f"mean latency {s.mean_latency_s:.1f} s  tokens {s.total_tokens}",
    ]
    for kind, stats in s.by_kind.items():
        lines.append(f"  {kind}: {int(stats['cases'])} cases, right {stats['right_rate']:.0%}")
    return "\n".join(lines)
