"""The TDE eval: run known-answer tasks through the real loop and score the outputs.

"succeeded" from the loop only means the outputs are valid against the output schema; this
eval counts a case **right** only when the loop succeeded AND every check on the outputs
passes. Cases live in ``evals/tde/cases/*.yaml`` and run in file-name order (so ``limit``
always picks the same cases; the files are numbered so the kinds interleave).

A case file holds ``id``, ``task_type`` (``eval_classify_*``, ``eval_extract_*`` or
``eval_plan_*``; the prefix gives the case's kind), ``prompt``, ``inputs``, ``output_schema``,
an optional ``policy`` (tighten-only, merged over ``EVAL_POLICY``) and ``expect``: checks,
each with a dot ``path`` into the outputs (``a.b``, ``items.0``) and exactly one of:

==================  ===================================================================
``equals: v``       strings: trimmed, inner whitespace collapsed, case-insensitive;
                    numbers: numerically, within ``tolerance`` (default exact)
``one_of: [..]``    equals any of the values (same rules, same ``tolerance``)
``count: n``        the array has exactly n items
``each_min_words``  every item (or the string) has at least n words
``mentions_any``    some item / the string mentions one of the words (case-insensitive,
                    at a word start, so ``invoice`` matches ``invoices`` but ``hr`` does
                    not match ``three``)
``contains_all``    the string (array: all its items joined) contains every substring
``no_placeholder``  no string in the value is empty or placeholder text (``...``, TODO,
                    lorem, a bare "step 1", ``<...>``, ``xxx``, "string", ...): the
                    loop's own strict rule, ``das.checks.is_placeholder``
==================  ===================================================================

Eval task types are declared nowhere, so ``run_tde`` gives them the narrow ``"*"`` policy of
``guardrails/task_types.yaml``; ``EVAL_POLICY`` tightens that further to the ``finish`` tool
only (a spec's policy may only tighten). The cases keep the default ``timeout_s`` (120 s), so an
operator's policy file (``policy_file``) can give a slow host more time; it cannot add tools.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from das.agents.tde_loop import run_tde
from das.checks import is_placeholder
from das.config import default_model, resource_dir
from das.contracts import Policy, TaskSpec, describe_validation_error
from das.errors import InvalidInput
from das.llm import localmodel
from das.llm.schema_check import validator_for
from das.output import progress

Kind = Literal["classification", "extraction", "planning", "other"]
CHECK_KINDS = (
    "equals",
    "one_of",
    "count",
    "each_min_words",
    "mentions_any",
    "contains_all",
    "no_placeholder",
)
KIND_PREFIXES: dict[str, Kind] = {
    "eval_classify_": "classification",
    "eval_extract_": "extraction",
    "eval_plan_": "planning",
}
# what every eval case runs under, before its own policy: the model only needs `finish`
EVAL_POLICY: dict[str, Any] = {"allowed_tools": ["finish"], "max_iterations": 3}
NUMBER_EPSILON = 1e-9


class Check(BaseModel):
    """One check on the outputs: a dot path and exactly one kind (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=200)
    equals: str | int | float | bool | None = None
    one_of: list[str | int | float | bool] | None = Field(None, min_length=1)
    count: int | None = Field(None, ge=0)
    each_min_words: int | None = Field(None, ge=1)
    mentions_any: list[str] | None = Field(None, min_length=1)
    contains_all: list[str] | None = Field(None, min_length=1)
    no_placeholder: Literal[True] | None = None
    tolerance: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a check needs exactly one of {', '.join(CHECK_KINDS)}; got {', '.join(kinds) or 'none'}"
            )
        if self.tolerance is not None and kinds[0] not in ("equals", "one_of"):
            raise ValueError("tolerance only applies to equals and one_of")
        for words in (self.mentions_any, self.contains_all):
            if words is not None and not all(w.strip() for w in words):
                raise ValueError("words to look for must not be empty")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    def describe(self) -> str:
        kind = self.kind
        value = getattr(self, kind)
        if kind == "equals":
            extra = f" ±{self.tolerance:g}" if self.tolerance else ""
            return f"{self.path} == {value!r}{extra}"
        if kind == "one_of":
            return f"{self.path} in {value!r}"
        if kind == "count":
            return f"len({self.path}) == {value}"
        if kind == "each_min_words":
            return f"{self.path}: each >= {value} words"
        if kind == "mentions_any":
            return f"{self.path} mentions any of {value!r}"
        if kind == "contains_all":
            return f"{self.path} contains all of {value!r}"
        return f"{self.path}: no placeholder"


class CheckResult(BaseModel):
    check: str
    passed: bool
    detail: str = ""


class TdeCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,79}$")
    task_type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    prompt: str = Field(min_length=1, max_length=2000)
    inputs: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any]
    policy: dict[str, Any] = Field(default_factory=dict)
    expect: list[Check] = Field(min_length=1)
    file: str = Field("", description="the file the case was loaded from (set by load_cases)")

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:

        try:
            validator_for(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        if schema.get("type") != "object":
            raise ValueError('must be an object schema ("type": "object")')
        return schema

    @field_validator("policy")
    @classmethod
    def _valid_policy(cls, policy: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(policy) - set(Policy.model_fields))
        if unknown:
            raise ValueError(f"unknown policy key(s): {', '.join(unknown)}")
        Policy.model_validate(policy)
        return policy

    @model_validator(mode="after")
    def _paths_in_schema(self) -> TdeCase:
        props = self.output_schema.get("properties") or {}
        for check in self.expect:
            top = check.path.split(".", 1)[0]
            if top not in props:
                raise ValueError(
                    f"expect path {check.path!r} is not a property of output_schema "
                    f"({', '.join(props) or 'none'})"
                )
        return self

    @property
    def kind(self) -> Kind:
        return next(
            (kind for prefix, kind in KIND_PREFIXES.items() if self.task_type.startswith(prefix)), "other"
        )


class TdeCaseResult(BaseModel):
    id: str
    kind: Kind
    task_type: str
    status: str = Field(description="the loop's status, or 'error' when the case raised")
    stop_reason: str | None = None
    right: bool = False
    outputs: dict[str, Any] = Field(default_factory=dict)
    checks: list[CheckResult] = Field(default_factory=list)
    failed_checks: list[str] = Field(default_factory=list)
    latency_s: float = 0.0
    tokens: int = 0
    iterations: int = 0
    message: str | None = None


class TdeEvalSummary(BaseModel):
    cases: int = 0
    succeeded_rate: float = 0.0
    right_rate: float = 0.0
    mean_latency_s: float = 0.0
    total_tokens: int = 0
    by_kind: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="kind -> {cases, right_rate}"
    )


class TdeEvalReport(BaseModel):
    model: str
    cases: list[TdeCaseResult] = Field(default_factory=list)
    summary: TdeEvalSummary = Field(default_factory=TdeEvalSummary)


# --- cases ------------------------------------------------------------------------------------


def cases_root() -> Path:
    return resource_dir("evals") / "tde" / "cases"


def load_cases(folder: Path | None = None) -> list[TdeCase]:
    """Every ``*.yaml`` case in file-name order; a bad case raises ``InvalidInput`` naming its file."""
    folder = Path(folder) if folder else cases_root()
    if not folder.is_dir():
        raise InvalidInput(f"no TDE eval cases folder at {folder}")
    cases: list[TdeCase] = []
    seen: dict[str, str] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InvalidInput(f"invalid TDE eval case {path.name}: not YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"invalid TDE eval case {path.name}: expected a mapping")
        try:
            case = TdeCase.model_validate({**data, "file": path.name})
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc, f"TDE eval case {path.name}")) from exc
        if case.id in seen:
            raise InvalidInput(f"invalid TDE eval case {path.name}: id {case.id!r} also in {seen[case.id]}")
        seen[case.id] = path.name
        cases.append(case)
    return cases


# --- scorer -----------------------------------------------------------------------------------

_MISSING = object()


def resolve_path(outputs: Any, path: str) -> Any:
    """The value at a dot path (``a.b``, ``items.0``), or ``_MISSING``."""
    current = outputs
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and re.fullmatch(r"-?\d+", part)
            and -len(current) <= int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _matches(actual: Any, expected: Any, tolerance: float | None) -> bool:
    if isinstance(expected, bool):
        return actual is expected
    if _is_number(expected):
        if isinstance(actual, str):
            try:
                actual = float(actual.strip())
            except ValueError:
                return False
        if not _is_number(actual):
            return False
        return abs(float(actual) - float(expected)) <= (tolerance or 0.0) + NUMBER_EPSILON
    if isinstance(expected, str):
        if _is_number(actual):
            actual = str(actual)
        return isinstance(actual, str) and _norm(actual) == _norm(expected)
    return bool(actual == expected)


def _strings(value: Any) -> list[Any]:
    """The leaf values of a value (strings, numbers, None), depth first."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value]


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _words(text: str) -> list[str]:
    return [w for w in text.split() if re.search(r"\w", w)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def score_check(outputs: dict[str, Any], check: Check) -> CheckResult:
    """One check against the outputs; never raises on odd outputs (they fail with a detail)."""
    desc = check.describe()
    actual = resolve_path(outputs, check.path)
    if actual is _MISSING:
        return CheckResult(check=desc, passed=False, detail=f"no value at {check.path!r}")
    kind = check.kind
    if kind == "equals":
        ok = _matches(actual, check.equals, check.tolerance)
        return CheckResult(check=desc, passed=ok, detail="" if ok else f"got {_short(actual)}")
    if kind == "one_of":
        ok = any(_matches(actual, e, check.tolerance) for e in check.one_of or [])
        return CheckResult(check=desc, passed=ok, detail="" if ok else f"got {_short(actual)}")
    if kind == "count":
        if not isinstance(actual, list):
            return CheckResult(check=desc, passed=False, detail=f"not an array: {_short(actual)}")
        ok = len(actual) == check.count
        return CheckResult(check=desc, passed=ok, detail="" if ok else f"got {len(actual)} items")
    if kind == "each_min_words":
        items = _items(actual)
        if not items:
            return CheckResult(check=desc, passed=False, detail="no items")
        short = [i for i in items if not isinstance(i, str) or len(_words(i)) < (check.each_min_words or 0)]
        return CheckResult(
            check=desc, passed=not short, detail="" if not short else f"too short: {_short(short[:3])}"
        )
    if kind == "mentions_any":
        texts = [s for s in _strings(actual) if isinstance(s, str)]
        pattern = re.compile(
            r"\b(?:" + "|".join(re.escape(w.strip()) for w in check.mentions_any or []) + ")", re.I
        )
        ok = any(pattern.search(t) for t in texts)
        return CheckResult(check=desc, passed=ok, detail="" if ok else "none of the words appears")
    if kind == "contains_all":
        joined = _norm(" ".join(str(s) for s in _strings(actual) if s is not None))
        missing = [w for w in check.contains_all or [] if _norm(w) not in joined]
        return CheckResult(
            check=desc, passed=not missing, detail="" if not missing else f"missing {missing!r}"
        )
    leaves = _strings(actual)
    if not leaves:
        return CheckResult(check=desc, passed=False, detail="empty")
    bad = [s for s in leaves if is_placeholder(s)]
    return CheckResult(
        check=desc, passed=not bad, detail="" if not bad else f"placeholder: {_short(bad[:3])}"
    )


def score(outputs: dict[str, Any], checks: list[Check]) -> list[CheckResult]:
    """Every check against the outputs, in order."""
    return [score_check(outputs, check) for check in checks]


# --- running ----------------------------------------------------------------------------------


def case_spec(case: TdeCase) -> TaskSpec:
    """The TaskSpec a case runs as: its prompt, inputs and schema under EVAL_POLICY + its policy."""
    return TaskSpec(
        task_type=case.task_type,
        prompt=case.prompt,
        inputs=case.inputs,
        output_schema=case.output_schema,
        policy={**EVAL_POLICY, **case.policy},
        correlation_id=f"eval-{case.id}-{uuid.uuid4().hex[:8]}",
    )


def _wait_for_local_model(model: str) -> None:
    """Let an embedded model finish a call the previous case abandoned at its deadline.

    A timeout stops the loop, not the generation: llama.cpp keeps decoding in its thread and
    holds the model's lock, so the next case would spend its own time budget waiting for it.
    """
    if not model.startswith("local/"):
        return

    lock = getattr(localmodel, "_lock", None)
    if lock is not None:
        with lock:
            pass


def run_case(case: TdeCase, model: str, *, policy_file: str | Path | None = None) -> TdeCaseResult:
    """Run one case through ``run_tde`` and score it; an exception becomes an error row.

    ``policy_file`` is the operator's policy layer (e.g. a longer ``timeout_s`` on a slow host).
    """

    row = TdeCaseResult(id=case.id, kind=case.kind, task_type=case.task_type, status="error")
    _wait_for_local_model(model)
    started = time.monotonic()
    try:
        result = run_tde(case_spec(case), model=model, policy_file=str(policy_file) if policy_file else None)
    except Exception as exc:  # a provider or tooling failure is this case's row, not the run's end
        row.latency_s = round(time.monotonic() - started, 3)
        row.message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:500]
        row.failed_checks = ["(case raised)"]
        return row
    row.latency_s = round(time.monotonic() - started, 3)
    row.status, row.stop_reason, row.message = result.status, result.stop_reason, result.message
    row.outputs = result.outputs
    row.tokens = result.usage.total_tokens
    row.iterations = result.usage.iterations
    if result.status == "succeeded":
        row.checks = score(result.outputs, case.expect)
        row.failed_checks = [
            c.check + (f" ({c.detail})" if c.detail else "") for c in row.checks if not c.passed
        ]
        row.right = not row.failed_checks
    else:
        row.failed_checks = [f"(not succeeded: {result.stop_reason})"]
    return row


def summarize(rows: list[TdeCaseResult]) -> TdeEvalSummary:
    n = len(rows)
    if not n:
        return TdeEvalSummary()
    by_kind: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(r.kind for r in rows):
        mine = [r for r in rows if r.kind == kind]
        by_kind[kind] = {"cases": len(mine), "right_rate": round(sum(r.right for r in mine) / len(mine), 3)}
    return TdeEvalSummary(
        cases=n,
        succeeded_rate=round(sum(r.status == "succeeded" for r in rows) / n, 3),
        right_rate=round(sum(r.right for r in rows) / n, 3),
        mean_latency_s=round(sum(r.latency_s for r in rows) / n, 2),
        total_tokens=sum(r.tokens for r in rows),
        by_kind=by_kind,
    )


def run_tde_eval(
    model: str | None = None,
    limit: int | None = None,
    cases_dir: Path | None = None,
    policy_file: str | Path | None = None,
) -> TdeEvalReport:
    """Run the first ``limit`` cases (file-name order) with ``model`` and score each."""
    model = model or default_model()
    cases = load_cases(cases_dir)
    if limit is not None:
        cases = cases[: max(limit, 0)]
    rows: list[TdeCaseResult] = []
    for i, case in enumerate(cases, 1):
        progress(f"tde eval [{i}/{len(cases)}] {case.id} ({model}) ...")
        row = run_case(case, model, policy_file=policy_file)
        verdict = "right" if row.right else "WRONG" if row.status == "succeeded" else row.status
        progress(
            f"tde eval [{i}/{len(cases)}] {case.id}: {verdict} in {row.latency_s:.1f} s"
            + (f"; failed: {'; '.join(row.failed_checks)}" if row.failed_checks else "")
        )
        rows.append(row)
    return TdeEvalReport(model=model, cases=rows, summary=summarize(rows))
