"""``das bpmn compile`` and ``das bpmn simulate``; plugged into the ``bpmn`` group by
``das/bpmn/commands.py`` through ``register_commands``. Heavy imports stay inside the
command functions so ``das --help`` stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from das.errors import InvalidInput, NegativeResult
from das.output import emit, progress

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format.")


@click.command("compile")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the BPMN XML.")
@FORMAT
def compile_cmd(source: Path, output: Path, fmt: str) -> None:
    """Compile an authoring-form JSON document to Camunda 7 BPMN XML with a diagram."""
    from pydantic import ValidationError

    from das.bpmn.authoring import parse_authoring
    from das.bpmn.compile import compile_process

    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}") from None
    try:
        proc = parse_authoring(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{source}: {len(exc.errors())} schema error(s); first at {where}: {first['msg']}"
                           " (see `das bpmn schema-authoring`)") from None
    except ValueError as exc:
        raise InvalidInput(f"{source}: {exc}") from None
    result = compile_process(proc)
    try:
        output.write_text(result.xml, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from None
    progress(f"wrote {output}")
    data = {"source": str(source), "output": str(output), "process": proc.key, "findings": result.findings}
    emit(data, fmt, lambda d: f"{d['output']}: compiled {d['process']}"
         + "".join(f"\n  finding: {f}" for f in d["findings"]))
    if result.findings:
        raise NegativeResult(f"diagram incomplete: {len(result.findings)} finding(s)")


@click.command("simulate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mocks", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="JSON/YAML: key (topic, task type, element id/name, called process, *) -> outputs.")
@click.option("--max-steps", type=click.IntRange(10, 100000), default=500, show_default=True,
              help="Step bound per run; exceeding it is reported as 'loop bound hit'.")
@FORMAT
def simulate_cmd(files: tuple[Path, ...], runs: int, seed: int, mocks: Path | None, max_steps: int,
                 fmt: str) -> None:
    """Simulate BPMN files on SpiffWorkflow with mocked task outputs (exit 1 unless all runs complete)."""
    from das.bpmn.simulate import load_mocks, simulate_file

    try:
        mock_map = load_mocks(mocks)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"mocks file {mocks}: {exc}") from None
    results: list[dict[str, Any]] = []
    for f in files:
        if not f.is_file():
            raise InvalidInput(f"no such file: {f}")
        from das.bpmn.parse import parse

        parse(f)  # not BPMN, unsafe or broken XML: one clear line, exit 4 (as validate and diff)
        progress(f"simulating {f} ({runs} runs)")
        results.append(simulate_file(f, runs=runs, seed=seed, mocks=mock_map, max_steps=max_steps))
    emit(results if len(results) > 1 else results[0], fmt, lambda _d: _render(results))
    bad = [r["file"] for r in results if r["runs"] == 0 or r["completed"] < r["runs"] or r.get("input_problems")]
    if bad:
        raise NegativeResult(f"not every run completed with its steps' inputs set: {', '.join(bad)}")


def _render(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r['file']}: {r['completed']}/{r['runs']} completed, coverage {r['coverage']:.0%}")
        if r["ends"]:
            lines.append("  ends: " + ", ".join(f"{k}={v}" for k, v in r["ends"].items()))
        for s in r["stuck"][:5]:
            lines.append(f"  stuck run {s['run']}: {s['reason']} [{s['element']}]")
        if len(r["stuck"]) > 5:
            lines.append(f"  ... {len(r['stuck']) - 5} more stuck runs")
        if r["unreached"]:
            lines.append("  unreached: " + ", ".join(r["unreached"][:12]))
        for u in r["unsupported"]:
            lines.append(f"  unsupported: {u['construct']} [{u['element']}]")
        for p in r.get("input_problems", [])[:10]:
            lines.append(f"  input unset: {p['element']} needs {p['field']} from variable {p['variable'] or '(not mapped)'}, "
                         "which no earlier step set on some path")
    return "\n".join(lines)


@click.command("schema-authoring")
def schema_cmd() -> None:
    """Print the JSON Schema of the authoring form (for structured LLM output)."""
    from das.bpmn.authoring import authoring_json_schema

    click.echo(json.dumps(authoring_json_schema(), indent=2))


def register_commands(group: click.Group) -> None:
    """Attach compile, simulate and schema-authoring to ``das bpmn``."""
    for cmd in (compile_cmd, simulate_cmd, schema_cmd):
        if cmd.name not in group.commands:
            group.add_command(cmd)
