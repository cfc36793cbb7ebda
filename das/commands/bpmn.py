"""``das bpmn``: validate, diff and edit BPMN files (compile and simulate plug in below).

Domain errors (``BpmnParseError``, ``EditError``) reach the top-level CLI, which prints one
line and maps them to exit codes; findings exit 1.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import click

from das.bpmn.diff import diff, render_text
from das.bpmn.edits import apply_edits, edit_script_schema
from das.bpmn.isolation import internal_error
from das.bpmn.parse import parse
from das.bpmn.validate import validate_files
from das.bpmn.write import write
from das.errors import InvalidInput, NegativeResult, UsageError
from das.output import emit, progress
from das.registry import load_registry
from das.views.reports import render_validation

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


@click.group()
def bpmn() -> None:
    """Compile, validate, simulate, diff and edit BPMN (Camunda 7 dialect)."""


@bpmn.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--known",
    multiple=True,
    metavar="KEY",
    help="Process key a call activity may call besides those in FILES (repeatable).",
)
@FORMAT
def validate_cmd(files: tuple[Path, ...], known: tuple[str, ...], fmt: str) -> None:
    """Validate BPMN FILEs: XSD, references, structure, Camunda 7, ProcOS governance.

    A TDE step must name a task type of the TDE registry (`das tde list`).

    Exit 0 when no file has an error finding, 1 otherwise. JSON output is a list of
    per-file reports {file, valid, findings: [{rule, severity, element, message}]}.
    """
    executors = {name: entry.executor.kind for name, entry in load_registry().items()}
    reports = validate_files(files, known=known, known_task_types=executors)
    emit(reports, fmt, render_validation)
    bad = [r.file for r in reports if not r.valid]
    if bad:
        raise NegativeResult(
            f"{len(bad)} of {len(reports)} file(s) have errors: {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else "")
        )


@bpmn.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@FORMAT
def diff_cmd(old: Path, new: Path, fmt: str) -> None:
    """Semantic diff of two BPMN files: elements, flows, conditions, extension attributes.

    Exit 0 whatever the differences (use --format json and look at "entries").
    """
    before, after = parse(old), parse(new)  # bad input: one clear line, exit 4
    try:
        result = diff(before, after)
    except Exception as exc:  # noqa: BLE001 - a DAS bug: a finding naming it, exit 1, no traceback
        finding = internal_error(exc, f"{old} -> {new}", "the diff").model_dump()
        emit(
            {"old": str(old), "new": str(new), "entries": [], "findings": [finding]},
            fmt,
            lambda d: f"{old} -> {new}: not compared\n  {finding['rule']}: {finding['message']}",
        )
        raise NegativeResult(f"{old} -> {new}: diff failed (internal error)") from None
    emit(result, fmt, render_text)


@bpmn.command("edit")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ops_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the edited BPMN.",
)
@FORMAT
def edit_cmd(file: Path, ops_file: Path, output: Path, fmt: str) -> None:
    """Apply a JSON list of edit ops (see `das bpmn edit-schema`) to FILE, write OUTPUT, show the diff."""
    try:
        ops = json.loads(ops_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{ops_file}: cannot read edit ops as JSON: {exc}") from None
    before = parse(file)
    after = apply_edits(before, ops)
    write(after, output)
    after.source = str(output)
    progress(f"wrote {output}")
    emit(diff(before, after), fmt, render_text)


@bpmn.command("edit-schema")
def edit_schema_cmd() -> None:
    """Print the JSON Schema of the edit-op script a model emits."""
    emit(edit_script_schema(), "json")


def register(command: click.Command) -> None:
    """Add a subcommand to ``das bpmn`` (used by the plug-in modules below)."""
    if command.name in bpmn.commands:
        raise UsageError(f"das bpmn {command.name} is registered twice")
    bpmn.add_command(command)


# ---- plug-ins ------------------------------------------------------------------------------
# `compile` and `simulate` live in das/commands/bpmn_build.py (owned by the authoring /
# simulation half of the toolkit). That module defines click commands and calls
# ``register(cmd)`` for each at import time (or defines ``def register_commands(group)``,
# which is called with this group). Keep heavy imports inside the command functions.
if importlib.util.find_spec("das.commands.bpmn_build") is not None:
    _build = importlib.import_module("das.commands.bpmn_build")
    if hasattr(_build, "register_commands"):
        _build.register_commands(bpmn)
