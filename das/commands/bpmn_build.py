"""``das bpmn compile`` and ``das bpmn simulate``; plugged into the ``bpmn`` group by
``das/commands/bpmn.py`` through ``register_commands``. Heavy imports stay inside the
command functions so ``das --help`` stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from das.bpmn.authoring import authoring_json_schema, parse_authoring
from das.bpmn.compile import compile_process
from das.bpmn.isolation import internal_error
from das.bpmn.parse import parse
from das.bpmn.safexml import BpmnParseError
from das.bpmn.simulate import load_mocks, simulate_file
from das.contracts import SimulationReport, ValidationFinding
from das.errors import InvalidInput, NegativeResult
from das.output import emit, progress
from das.views.text import render_simulations

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


@click.command("compile")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the BPMN XML.",
)
@FORMAT
def compile_cmd(source: Path, output: Path, fmt: str) -> None:
    """Compile an authoring-form JSON document to Camunda 7 BPMN XML with a diagram."""
    from pydantic import ValidationError

    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}") from None
    try:
        proc = parse_authoring(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"{source}: {len(exc.errors())} schema error(s); first at {where}: {first['msg']}"
            " (see `das bpmn schema-authoring`)"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"{source}: {exc}") from None
    try:
        result = compile_process(proc)
    except Exception as exc:  # noqa: BLE001 - a compiler bug: a finding naming it, exit 1, no traceback
        finding = internal_error(exc, str(source), "compilation").model_dump()
        emit(
            {"source": str(source), "output": None, "process": proc.key, "findings": [finding]},
            fmt,
            lambda d: f"{d['source']}: not compiled\n  {finding['rule']}: {finding['message']}",
        )
        raise NegativeResult(f"{source}: compilation failed (internal error)") from None
    try:
        output.write_text(result.xml, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from None
    progress(f"wrote {output}")
    data = {"source": str(source), "output": str(output), "process": proc.key, "findings": result.findings}
    emit(
        data,
        fmt,
        lambda d: (
            f"{d['output']}: compiled {d['process']}" + "".join(f"\n  finding: {f}" for f in d["findings"])
        ),
    )
    if result.findings:
        raise NegativeResult(f"diagram incomplete: {len(result.findings)} finding(s)")


@click.command("simulate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--mocks",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="JSON/YAML: key (topic, task type, element id/name, called process, *) -> outputs.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(10, 100000),
    default=500,
    show_default=True,
    help="Step bound per run; exceeding it is reported as 'loop bound hit'.",
)
@FORMAT
def simulate_cmd(
    files: tuple[Path, ...], runs: int, seed: int, mocks: Path | None, max_steps: int, fmt: str
) -> None:
    """Simulate BPMN files on SpiffWorkflow with mocked task outputs (exit 1 unless all runs complete)."""
    try:
        mock_map = load_mocks(mocks)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"mocks file {mocks}: {exc}") from None
    results = [_simulate_one(f, runs, seed, mock_map, max_steps) for f in files]
    unreadable = [r for r in results if any(f.rule.startswith("xml") for f in r.findings)]
    if len(unreadable) == len(results):  # nothing to simulate at all: bad input, one line per file
        raise InvalidInput("; ".join(f"{r.file}: {r.findings[0].message}" for r in unreadable))
    for r in unreadable:
        progress(f"{r.file}: {r.findings[0].message}")
    emit(results if len(results) > 1 else results[0], fmt, lambda _d: render_simulations(results))
    bad = [r.file for r in results if not r.passed or r.input_problems]
    if bad:
        raise NegativeResult(
            f"{len(bad)} of {len(results)} file(s) did not simulate cleanly (a finding, a stuck run, "
            f"or a step input unset): {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else "")
        )


def _simulate_one(f: Path, runs: int, seed: int, mocks: dict[str, Any], max_steps: int) -> SimulationReport:
    """One file's report; a file that is missing, not BPMN, or trips a DAS bug gets a report
    that says so, and the other files are simulated as usual."""
    if not f.is_file():
        return SimulationReport(
            file=str(f),
            findings=[
                ValidationFinding(
                    rule="xml.missing", severity="error", element=None, message=f"no such file: {f}"
                )
            ],
        )
    try:
        parse(f)  # not BPMN, unsafe or broken XML: that file's finding (as validate reports it)
        progress(f"simulating {f} ({runs} runs)")
        return SimulationReport.model_validate(
            simulate_file(f, runs=runs, seed=seed, mocks=mocks, max_steps=max_steps)
        )
    except BpmnParseError as exc:
        return SimulationReport(
            file=str(f),
            findings=[ValidationFinding(rule=exc.rule, severity="error", element=None, message=exc.message)],
        )
    except Exception as exc:  # noqa: BLE001 - a DAS bug on this file is this file's finding
        return SimulationReport(file=str(f), findings=[internal_error(exc, str(f), "simulation")])


@click.command("schema-authoring")
def schema_cmd() -> None:
    """Print the JSON Schema of the authoring form (for structured LLM output)."""
    click.echo(json.dumps(authoring_json_schema(), indent=2))


def register_commands(group: click.Group) -> None:
    """Attach compile, simulate and schema-authoring to ``das bpmn``."""
    for cmd in (compile_cmd, simulate_cmd, schema_cmd):
        if cmd.name not in group.commands:
            group.add_command(cmd)
