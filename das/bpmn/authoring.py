"""The block-structured authoring form: what an LLM writes (JSON), never raw XML.

A process is an ordered list of steps; composite steps (choice, parallel, loop, subprocess)
hold nested step lists, boundaries and multi-instance are properties of the step they guard.
References are structural (nesting), never by id, so every schema-valid document compiles
to a sound, fully connected process. The nesting depth is bounded by construction: there is
one set of step models per level (``...Step1`` at the top, ``...Step3`` innermost), and the
innermost level has no composite steps and no handler steps. That keeps the exported JSON
Schema finite and small enough for constrained decoding with a tiny model.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

MAX_DEPTH = 3
MAX_STEPS = 12
MAX_BRANCHES = 4
MAX_HANDLERS = 3
MAX_MAPPINGS = 8

Name = Annotated[str, Field(min_length=1, max_length=80, description="Human-readable label.")]
Ident = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$",
        description="Variable or id: a letter, then letters, digits, underscores.",
    ),
]
Key = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$",
        description="Process or task key (an XML NCName).",
    ),
]
TaskTypeName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="Task type in the TDE registry: lower-case letters, digits, '_' and '-'.",
    ),
]
Topic = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="External-task topic.",
    ),
]
ErrorCode = Annotated[
    str,
    Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.:-]{1,60}$", description="BPMN error code."),
]
IsoDuration = Annotated[
    str,
    Field(
        min_length=3,
        max_length=32,
        pattern=r"^P(\d{1,4}D|(\d{1,4}D)?T(\d{1,4}H|\d{1,4}M|\d{1,4}S|\d{1,4}H\d{1,4}M|\d{1,4}M\d{1,4}S"
        r"|\d{1,4}H\d{1,4}S|\d{1,4}H\d{1,4}M\d{1,4}S))$",
        description="ISO 8601 duration (days, hours, minutes, seconds), e.g. PT30M, P1D.",
    ),
]
Literal_ = Annotated[
    str | int | float | bool,
    Field(description="A literal: string (no quotes or braces), number or boolean."),
]
_JUEL_CHARS = r"[A-Za-z0-9_ .'=!<>&|()+\-*/,]"
Juel = Annotated[
    str,
    Field(
        min_length=4,
        max_length=200,
        pattern=r"^\$\{" + _JUEL_CHARS + r"{1,196}\}$",
        description="A JUEL expression such as ${execution.getVariable('x') == 'y'}. "
        "Prefer execution.getVariable so missing variables do not fail.",
    ),
]

_STRICT = ConfigDict(extra="forbid")


class Condition(BaseModel):
    """A structured comparison; compiles to null-safe JUEL via ``execution.getVariable``."""

    model_config = _STRICT
    variable: Ident
    op: Literal["==", "!=", "<", "<=", ">", ">="] = "=="
    value: Literal_

    @field_validator("value")
    @classmethod
    def _plain(cls, v: Any) -> Any:
        if isinstance(v, str) and (len(v) > 60 or re.search(r"['\"{}$#\\]", v)):
            raise ValueError("string values: up to 60 characters, no quotes, braces, $, # or \\")
        return v


def check_juel(expr: str) -> str:
    """Reject JUEL that would not parse: unbalanced parentheses or quotes, empty body."""
    body = expr[2:-1].strip()
    if not body:
        raise ValueError("empty JUEL expression")
    depth, quote = 0, False
    for ch in body:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses in JUEL")
    if depth or quote:
        raise ValueError("unbalanced parentheses or quotes in JUEL")
    if re.search(r"(&&|\|\||==|!=|<=|>=|[<>+\-*/,.])\s*$", body) or re.search(
        r"^\s*(&&|\|\||==|[<>*/,.])", body
    ):
        raise ValueError("JUEL expression starts or ends with an operator")
    if (
        re.search(r"(?<![=!<>])=(?!=)", body)
        or "&" in body.replace("&&", "")
        or "|" in body.replace("||", "")
    ):
        raise ValueError("JUEL uses == for comparison and && / || for logic")
    return expr


CondOrJuel = Condition | Juel


class Mapping(BaseModel):
    """A variable copied into (in) or out of (out) a called process."""

    model_config = _STRICT
    source: Ident
    target: Ident


class Param(BaseModel):
    """A camunda:inputParameter: a literal text or a JUEL expression ``${...}``."""

    model_config = _STRICT
    name: Ident
    value: str = Field(min_length=1, max_length=200, pattern=r"^[^<>&{}]*$|^\$\{[^<>&{}]{1,196}\}$")


class Compensation(BaseModel):
    """A compensating task (external, on ``topic``) that undoes the guarded step."""

    model_config = _STRICT
    name: Name = "Compensate"
    topic: Topic


class MultiInstance(BaseModel):
    """Run the step once per element of a collection variable."""

    model_config = _STRICT
    collection: Ident
    element_variable: Ident
    mode: Literal["parallel", "sequential"] = "parallel"


def _steps_field(level: int) -> Any:
    return Field(
        default_factory=list, max_length=MAX_STEPS, description=f"Steps run in order (nesting level {level})."
    )


def _req_steps(level: int) -> Any:
    return Field(..., min_length=1, max_length=MAX_STEPS, description=f"Steps (nesting level {level}).")


class WaitMessage(BaseModel):
    """Wait until the named message arrives."""

    model_config = _STRICT
    message: Ident


class WaitTimer(BaseModel):
    """Wait for an ISO 8601 duration."""

    model_config = _STRICT
    timer: IsoDuration


def _build() -> dict[str, Any]:
    """Create the per-level models; level ``MAX_DEPTH`` is the innermost (leaf-only)."""
    made: dict[str, Any] = {}
    inner_steps: Any = None
    for level in range(MAX_DEPTH, 0, -1):

        def mk(model_name: str, doc: str, _lvl: int = level, /, **fields: Any) -> Any:
            model = create_model(f"{model_name}{_lvl}", __config__=_STRICT, __doc__=doc, **fields)
            made[f"{model_name}{_lvl}"] = model
            return model

        handler_fields: dict[str, Any] = {
            "then": (
                Literal["continue", "end", "fail"],
                Field(
                    "end",
                    description="continue: rejoin after the step; end: stop at an end event; "
                    "fail: end with an error end event.",
                ),
            ),
            "compensate": (bool, Field(False, description="Compensate completed steps first.")),
            "end_error_code": (ErrorCode | None, None),
            "end_id": (Ident | None, None),
        }
        if inner_steps is not None:
            handler_fields["steps"] = (inner_steps, _steps_field(level + 1))
        err = mk(
            "ErrorHandler",
            "Catch a BPMN error thrown by the step.",
            error_code=(ErrorCode, ...),
            **handler_fields,
        )
        tmo = mk("Timeout", "Interrupting timer on the step.", duration=(IsoDuration, ...), **handler_fields)
        activity: dict[str, Any] = {
            "name": (Name, ...),
            "id": (Ident | None, Field(None, description="Optional id hint; must be unique.")),
            "on_error": (list[err], Field(default_factory=list, max_length=MAX_HANDLERS)),  # type: ignore[valid-type]  # models built at run time
            "timeout": (tmo | None, None),
            "compensation": (Compensation | None, None),
            "multi_instance": (MultiInstance | None, None),
            "retries": (
                int,
                Field(
                    3,
                    ge=0,
                    le=10,
                    description="Engine retries before an incident (external tasks and call activities).",
                ),
            ),
        }
        plain: dict[str, Any] = {"name": (Name, ...), "id": (Ident | None, None)}
        if level == 1:
            lane = (
                Name | None,
                Field(
                    None,
                    description="Lane (role) of this top-level step; lanes are created from the names used.",
                ),
            )
            activity["lane"] = lane
            plain["lane"] = lane
        kinds = [
            mk(
                "TdeStep",
                "Run a task definition (TDE) deterministically or probabilistically.",
                type=(Literal["tde"], ...),
                task_type=(TaskTypeName, ...),
                mode=(Literal["deterministic", "probabilistic"], "probabilistic"),
                policy=(
                    Key | None,
                    Field(
                        None,
                        description="Guardrail policy (guardrails/*.yaml); "
                        "probabilistic steps default to 'default'.",
                    ),
                ),
                inputs=(
                    list[Mapping],
                    Field(
                        default_factory=list,
                        max_length=MAX_MAPPINGS,
                        description="process variable (source) -> input field (target)",
                    ),
                ),
                outputs=(
                    list[Mapping],
                    Field(
                        default_factory=list,
                        max_length=MAX_MAPPINGS,
                        description="output field (source) -> process variable (target)",
                    ),
                ),
                **activity,
            ),
            mk(
                "ExternalStep",
                "An external task on a topic.",
                type=(Literal["external"], ...),
                topic=(Topic, ...),
                inputs=(list[Param], Field(default_factory=list, max_length=MAX_MAPPINGS)),
                **activity,
            ),
            mk(
                "UserStep",
                "A human gate.",
                type=(Literal["user"], ...),
                assignee=(Ident | None, None),
                candidate_groups=(list[Ident], Field(default_factory=list, max_length=4)),
                **activity,
            ),
            mk(
                "CallStep",
                "Call another process; correlationId is always passed in.",
                type=(Literal["call"], ...),
                process_key=(Key, ...),
                inputs=(list[Mapping], Field(default_factory=list, max_length=MAX_MAPPINGS)),
                outputs=(list[Mapping], Field(default_factory=list, max_length=MAX_MAPPINGS)),
                **activity,
            ),
            mk(
                "WaitStep",
                "Wait for a message or a timer.",
                type=(Literal["wait"], ...),
                on=(WaitMessage | WaitTimer, ...),
                **plain,
            ),
        ]
        if inner_steps is not None:
            branch = mk(
                "Branch",
                "A conditional branch.",
                name=(Name | None, None),
                condition=(CondOrJuel, ...),
                steps=(inner_steps, _steps_field(level + 1)),
            )
            default = mk(
                "DefaultBranch",
                "Taken when no condition holds.",
                name=(Name | None, None),
                steps=(inner_steps, _steps_field(level + 1)),
            )
            pbranch = mk(
                "ParallelBranch", "A branch run concurrently.", steps=(inner_steps, _req_steps(level + 1))
            )
            kinds += [
                mk(
                    "ChoiceStep",
                    "Exclusive or inclusive choice with a default branch.",
                    type=(Literal["choice"], ...),
                    kind=(Literal["exclusive", "inclusive"], "exclusive"),
                    branches=(list[branch], Field(..., min_length=1, max_length=MAX_BRANCHES)),  # type: ignore[valid-type]  # models built at run time
                    default=(default, Field(default_factory=default)),
                    **plain,
                ),
                mk(
                    "ParallelStep",
                    "Branches run concurrently and join.",
                    type=(Literal["parallel"], ...),
                    branches=(list[pbranch], Field(..., min_length=2, max_length=MAX_BRANCHES)),  # type: ignore[valid-type]  # models built at run time
                    **plain,
                ),
                mk(
                    "LoopStep",
                    "Repeat the steps while the condition holds, at most max_iterations.",
                    type=(Literal["loop"], ...),
                    condition=(CondOrJuel, ...),
                    max_iterations=(int, Field(3, ge=1, le=100)),
                    steps=(inner_steps, _req_steps(level + 1)),
                    **plain,
                ),
                mk(
                    "SubprocessStep",
                    "An embedded sub-process with its own steps.",
                    type=(Literal["subprocess"], ...),
                    steps=(inner_steps, _req_steps(level + 1)),
                    **activity,
                ),
            ]
        union = Annotated[tuple(kinds)[0] if len(kinds) == 1 else _union(kinds), Field(discriminator="type")]  # type: ignore[valid-type]  # models built at run time
        inner_steps = list[union]  # type: ignore[valid-type]  # models built at run time
        made[f"Steps{level}"] = inner_steps
    return made


def _union(kinds: list[Any]) -> Any:
    out = kinds[0]
    for k in kinds[1:]:
        out = out | k
    return out


_MODELS = _build()
Steps1 = _MODELS["Steps1"]


class Process(BaseModel):
    """A whole process: key, name and the ordered top-level steps."""

    model_config = _STRICT
    key: Key
    name: Name
    steps: Annotated[Steps1, Field(min_length=1, max_length=MAX_STEPS)]  # type: ignore[valid-type]
    history_time_to_live: int = Field(180, ge=1, le=3650, description="Days Camunda keeps history.")
    version_tag: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")


def _validate_tree(obj: Any) -> None:
    """The one check the schema cannot express: free JUEL must parse."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            _validate_tree(getattr(obj, name))
    elif isinstance(obj, list):
        for item in obj:
            _validate_tree(item)
    elif isinstance(obj, str) and obj.startswith("${"):
        check_juel(obj)


def parse_authoring(data: dict[str, Any] | str) -> Process:
    """Validate a document (dict or JSON text) into a ``Process``; raises pydantic/ValueError."""
    proc = Process.model_validate_json(data) if isinstance(data, str) else Process.model_validate(data)
    _validate_tree(proc)
    return proc


def authoring_json_schema() -> dict[str, Any]:
    """JSON Schema of ``Process`` for structured output (bounded depth, lengths and counts)."""
    schema = Process.model_json_schema()
    schema["$comment"] = f"Block-structured BPMN authoring form; nesting depth <= {MAX_DEPTH}."
    return schema
