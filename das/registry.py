"""The TDE registry: task types declared in ``processes/tde/*.yaml``.

Each entry names its input and output JSON Schemas, its executor (a deterministic adapter
topic or the probabilistic loop) and a default policy. Unknown task types are allowed for
probabilistic specs that bring an inline ``output_schema``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from das.checks import OutputCheck
from das.config import das_home, resource_dir
from das.contracts import describe_validation_error
from das.errors import InvalidInput
from das.names import TASK_TYPE_PATTERN


class Executor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["probabilistic", "adapter"]
    topic: str | None = None  # adapters: default das-tde-<task_type>
    adapter: str | None = None  # adapters: the das.adapters entry point (default: the task type)
    compensate: str | None = None  # the das.adapters entry point that undoes this type's side effects


class TaskType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_type: str = Field(min_length=1, pattern=TASK_TYPE_PATTERN)
    description: str = ""
    prompt: str = Field(
        "",
        description="the goal given to the model when a drafted step runs this type "
        "(default: the description)",
    )
    executor: Executor
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    policy: dict[str, Any] = Field(default_factory=dict)
    output_choices: dict[str, str] = Field(
        default_factory=dict,
        description="output field -> input field whose list of values the output must be one "
        "of (e.g. classify: label -> labels); enforced in the output schema",
    )
    checks: list[OutputCheck] = Field(
        default_factory=list,
        description="assertions beyond the schema: "
        "non_empty, from_enum, mentions_input, no_placeholder, min_items, min_words",
    )
    source: str = ""


def registry_folders() -> list[Path]:
    """Built-in task types (processes/tde) and wrappers approved with proposals ($DAS_HOME/tde)."""

    return [resource_dir("processes") / "tde", das_home() / "tde"]


def load_registry(root: str | None = None) -> dict[str, TaskType]:
    """The registry; re-read only when a YAML file is added, removed or changed."""
    folders = [Path(root)] if root else registry_folders()
    files = tuple((str(p), p.stat().st_mtime_ns) for f in folders for p in sorted(f.glob("*.yaml")))
    return _load(files)


@lru_cache(maxsize=8)
def _load(files: tuple[tuple[str, int], ...]) -> dict[str, TaskType]:
    types: dict[str, TaskType] = {}
    for path in (Path(name) for name, _ in files):
        try:
            data = yaml.safe_load(path.read_text()) or {}
            entry = TaskType.model_validate({**data, "source": str(path.name)})
            jsonschema.Draft202012Validator.check_schema(entry.input_schema)
            jsonschema.Draft202012Validator.check_schema(entry.output_schema)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc, f"TDE registry entry {path.name}")) from exc
        except (yaml.YAMLError, jsonschema.SchemaError) as exc:
            raise InvalidInput(f"invalid TDE registry entry {path.name}: {str(exc).splitlines()[0]}") from exc
        if entry.task_type in types:
            raise InvalidInput(
                f"task type {entry.task_type!r} declared twice ({types[entry.task_type].source}, {path.name})"
            )
        types[entry.task_type] = entry
    return types


def lookup(task_type: str) -> TaskType | None:
    return load_registry().get(task_type)
