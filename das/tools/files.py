"""read_file / write_file, confined to a workspace directory.

Paths are resolved after following symlinks and must stay inside the workspace; absolute
paths, ``..`` escapes and symlinks pointing out are refused (as ModelRetry: the model asked
for it, so the model is told). A second wall, whatever the workspace is: nothing of DAS_HOME
but the task's own ``workspaces/<digest>``, and nothing DAS trusts elsewhere (models file,
registry, guardrails; ``das.config.protected_reason``), is read or written (PolicyDenied), and a
hard-linked file is never read (a link made to a protected file looks like any other file).
Writes go to a temp file and are renamed, never half-written (nor written through a link).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from das.config import protected_reason
from das.errors import ModelRetry, PolicyDenied
from das.tools.base import Tool, ToolContext

MAX_READ_BYTES = 1_000_000
MAX_WRITE_BYTES = 1_000_000


def confine(workspace: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``workspace`` or refuse."""
    workspace.mkdir(parents=True, exist_ok=True)
    root = workspace.resolve()
    if not relative or "\x00" in relative:
        raise ModelRetry("path must be a non-empty relative path")
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ModelRetry(f"path {relative!r} is absolute; use a path relative to the workspace")
    target = (root / candidate).resolve()
    if target != root and root not in target.parents:
        raise ModelRetry(f"path {relative!r} escapes the workspace; refused")
    # a symlink anywhere on the way that points out was caught by resolve(); also refuse a
    # dangling symlink at the target, which resolve() cannot see through
    if (root / candidate).is_symlink() and not (root / candidate).exists():
        raise ModelRetry(f"path {relative!r} is a dangling symlink; refused")
    reason = protected_reason(target, root)
    if reason:
        raise PolicyDenied(f"path {relative!r} refused: {reason}", rule="das_home")
    return target


def _read(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = confine(ctx.workspace, args["path"])
    if not path.is_file():
        raise ModelRetry(f"no such file in the workspace: {args['path']}")
    if path.stat().st_nlink > 1:
        raise PolicyDenied(
            f"{args['path']} has other hard links (one may be a file outside the workspace); refused",
            rule="das_home",
        )
    if path.stat().st_size > MAX_READ_BYTES:
        raise ModelRetry(f"{args['path']} is larger than {MAX_READ_BYTES} bytes")
    return path.read_text(errors="replace")


def _write(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    content = args["content"]
    if len(content.encode()) > MAX_WRITE_BYTES:
        raise ModelRetry(f"content is larger than {MAX_WRITE_BYTES} bytes")
    path = confine(ctx.workspace, args["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path = confine(ctx.workspace, args["path"])  # re-check after mkdir (race with a symlink)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".das-")
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.replace(tmp, path)
    return {"path": args["path"], "bytes": len(content.encode())}


READ_FILE = Tool(
    name="read_file",
    description="Read a text file from the task workspace.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 500}},
        "required": ["path"],
        "additionalProperties": False,
    },
    func=_read,
)
WRITE_FILE = Tool(
    name="write_file",
    description="Write a text file into the task workspace (replaces it).",
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1, "maxLength": 500},
            "content": {"type": "string"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    func=_write,
    side_effecting=True,
)
