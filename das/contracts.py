"""The shapes every part of DAS shares (docs/ARCHITECTURE.md, `das/contracts.py`).

JSON arriving from outside (files, engine variables, model output) is parsed with
``parse_external`` so a rejection names the field that was wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from das.errors import InvalidInput

DataClass = Literal["public", "internal", "confidential", "pii"]
Mode = Literal["deterministic", "probabilistic"]
StopReason = Literal[
    "completed",
    "max_iterations",
    "timeout",
    "max_tokens",
    "max_cost_usd",
    "max_tool_calls",
    "invalid_output",
    "policy_denied",
    "error",
]
GUARDRAIL_STOPS = ("max_iterations", "timeout", "max_tokens", "max_cost_usd", "max_tool_calls")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class ModelPrice(_Strict):
    """A price the operator declares for a model litellm has no price for."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Policy(_Strict):
    """Guardrails for one task. Loaded from ``guardrails/*.yaml``; the model never edits it.

    Strict types: ``"false"`` is not a boolean and ``"5"`` not a number, so no string can
    slip past the tighten-only comparison and be converted afterwards.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    max_iterations: int = Field(8, ge=1, le=1000)
    timeout_s: float = Field(120.0, gt=0, le=86400)
    max_tokens: int = Field(20000, ge=1)
    max_cost_usd: float = Field(0.50, ge=0)
    max_tool_calls: int = Field(20, ge=0)
    allowed_tools: list[str] = Field(default_factory=lambda: ["finish"])
    allowed_hosts: list[str] = Field(default_factory=list)
    retries: int = Field(3, ge=0, le=100)
    retry_backoff_s: float = Field(5.0, ge=0, le=3600)
    human_gate: bool = False
    data_class: DataClass = "internal"
    max_output_tokens: int = Field(512, ge=16, le=32000, description="per model call")
    retry_at: Literal["engine", "process"] = Field(
        "engine",
        description="a transient failure: engine = handleFailure with retries (then an incident); "
        "process = complete with tdeStatus 'retry' so the process loops (the TDE template does)",
    )
    allowed_methods: list[HttpMethod] = Field(
        default_factory=lambda: list[HttpMethod](["GET"]), description="HTTP methods http_request may use"
    )
    allowed_endpoints: list[str] = Field(
        default_factory=list,
        description="operator only: exact endpoint prefixes (scheme://host:port/path) that "
        "may be reached even on loopback/private addresses",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="operator only: USD per million tokens for models litellm cannot price",
    )


# An idempotency key is data: it names a task within its owner's namespace (das/store/keys.py),
# never a file, a directory or another owner's task.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")  # fullmatch: no "$"-before-newline slip


class TaskSpec(_Strict):
    """One task for a TDE. ``prompt`` is the goal and is required for probabilistic mode."""

    task_type: str = Field(min_length=1, max_length=200)
    mode: Mode = "probabilistic"
    prompt: str | None = Field(None, max_length=50_000, validate_default=True)
    inputs: dict[str, Any] = Field(default_factory=dict)
    artifacts_in: list[str] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    priority: int = Field(50, ge=0, le=100)
    capabilities: list[str] = Field(default_factory=list)
    policy: dict[str, Any] = Field(default_factory=dict, description="may only tighten")
    correlation_id: str | None = Field(None, max_length=200)
    idempotency_key: str | None = Field(
        None,
        json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
        description="at most 200 of A-Z a-z 0-9 _ . : - (a letter or digit first); data, never a path: "
        "DAS stores results, effects and workspaces under a digest of the key and its owner",
    )
    checks: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=20,
        description="extra output checks (das.checks.OutputCheck); "
        "they add to the registry entry's, never replace them",
    )

    @field_validator("idempotency_key", mode="after")
    @classmethod
    def _key_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not IDEMPOTENCY_KEY.fullmatch(value):
            raise ValueError(
                "must be 1-200 characters of letters, digits and _ . : - starting with a letter or "
                f"digit (it names a task, never a path); got {value[:60]!r}"
            )
        return value

    @field_validator("prompt", mode="after")
    @classmethod
    def _prompt_for_probabilistic(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode", "probabilistic") == "probabilistic" and not (value and value.strip()):
            raise ValueError("required when mode is probabilistic")
        return value


class Usage(BaseModel):
    iterations: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        for name in ("iterations", "model_calls", "tool_calls", "input_tokens", "output_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd += other.cost_usd


class TraceStep(BaseModel):
    """One step of a loop: what the model thought, did, and how it was judged."""

    iteration: int
    phase: Literal["analyse", "act", "evaluate", "stop", "repair"]
    thought: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    result_digest: str | None = None
    error: str | None = None
    evaluation: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class TdeResult(BaseModel):
    status: Literal["succeeded", "failed", "compensate_required"]
    outputs: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[str] = Field(default_factory=list)
    trace: list[TraceStep] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: StopReason
    message: str | None = None
    model: str | None = None
    needs_review: bool = Field(False, description="the policy's human_gate: a person must check the outputs")
    retryable: bool = Field(
        True,
        description="for stop_reason error: whether running it again can help "
        "(false: a permanent provider error or a side effect of unknown outcome)",
    )
    correlation_id: str | None = None
    idempotency_key: str | None = None


class Vote(BaseModel):
    member: str
    choice: int | None
    confidence: float = Field(0.5, ge=0, le=1)
    rationale: str = ""
    persona: str | None = Field(default=None, description="the perspective this member was asked to take")
    model: str | None = Field(default=None, description="the model that answered")
    temperature: float | None = Field(
        default=None,
        description="sampling temperature sent (0 = greedy); None = not sent, the provider's default",
    )
    seed: int | None = Field(default=None, description="sampling seed sent; None = not sent")
    call: str | None = Field(
        default=None,
        description="identity of the call: a hash of (model, persona, "
        "temperature, seed, prompt); one call is one vote",
    )
    merged: list[str] = Field(
        default_factory=list,
        description="configured members that would have made this identical call; they share this one vote",
    )


class Decision(BaseModel):
    chosen_index: int | None = Field(description="index into candidates; None = escalation")
    chosen: dict[str, Any] | None = None
    mode: Literal["single", "majority", "unanimous", "escalated"] = "single"
    rationale: str = ""
    confidence: float = Field(0.0, ge=0, le=1)
    votes: list[Vote] = Field(default_factory=list)
    dissent: list[str] = Field(default_factory=list)
    stop_reason: StopReason = "completed"
    usage: Usage = Field(default_factory=Usage)
    configured_members: int = Field(
        0,
        ge=0,
        description="team size as configured; more than the votes when "
        "identical members were merged (see Vote.merged)",
    )


class HistoryEntry(BaseModel):
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    actor: str
    action: str
    comment: str | None = None
    artifact_sha256: str | None = Field(default=None, description="the artifact this entry concerns")
    proof: str | None = Field(default=None, description="how the actor was proven: token, session, proxy, os")
    principal_id: str | None = Field(
        default=None,
        description="the actor's user record, never reused (None: recorded before principal ids existed)",
    )
    credential: str | None = Field(
        default=None,
        description="the credential used: token:<id>, session:<token id>, proxy:<header>, os-uid:<uid>",
    )
    acknowledged: str | None = Field(
        default=None, description="approve: the executable content the reviewer acknowledged"
    )


# ---- the reports a proposal carries (also what `--format json` prints and `das schema` shows) ----
Severity = Literal["error", "warning", "info"]


class ValidationFinding(_Strict):
    """One problem: which rule, how bad, on which element, and how to fix it."""

    rule: str
    severity: Severity
    element: str | None = None
    message: str


class ValidationReport(_Strict):
    """Validation result for one file (das.bpmn.validate); ``valid`` is false iff any finding is an error."""

    file: str
    valid: bool = True
    findings: list[ValidationFinding] = Field(default_factory=list)

    def add(self, rule: str, severity: Severity, element: str | None, message: str) -> None:
        self.findings.append(
            ValidationFinding(rule=rule, severity=severity, element=element, message=message)
        )
        if severity == "error":
            self.valid = False

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] += 1
        return out

    @classmethod
    def missing(cls, file: str = "") -> ValidationReport:
        """What a proposal filed without a report holds: an error finding, so it is never approvable."""
        report = cls(file=file)
        report.add(
            "not-validated", "error", None, "no validation report was recorded; rebase or file it again"
        )
        return report


class StuckRun(_Strict):
    """A simulated run that reached no end event; ``reason`` reads ``category: why; what to do``."""

    run: int
    reason: str
    element: str | None = None


class Unsupported(_Strict):
    """A construct the simulator skipped or approximated, so a clean run says less about it.

    ``what`` is ``construct`` in JSON (pydantic's ``BaseModel.construct`` takes the name in Python)."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    what: str = Field(alias="construct")
    element: str | None = None


class InputProblem(_Strict):
    """A drafted step whose required input ``field`` (mapped from ``variable``) was unset on some path."""

    element: str
    field: str
    variable: str | None = None


class SimulationReport(_Strict):
    """Seeded runs of one process on the simulator (das.bpmn.simulate ``simulate_file``)."""

    file: str
    runs: int = Field(0, description="runs made (0: the file could not be simulated)")
    completed: int = 0
    stuck: list[StuckRun] = Field(default_factory=list)
    coverage: float = Field(0.0, description="share of flow nodes reached by some run")
    unreached: list[str] = Field(default_factory=list)
    ends: dict[str, int] = Field(default_factory=dict, description="end event id -> runs that ended there")
    unsupported: list[Unsupported] = Field(default_factory=list)
    input_problems: list[InputProblem] = Field(default_factory=list)
    traces: list[list[str]] | None = Field(
        None, description="per run, the activities finished in order (only when asked for)"
    )
    findings: list[ValidationFinding] = Field(
        default_factory=list,
        description="why the file could not be "
        "simulated (missing, not BPMN, an internal error); empty otherwise",
    )

    @property
    def passed(self) -> bool:
        """Every run made reached an end event."""
        return bool(self.runs) and self.completed == self.runs and not self.findings


DiffChange = Literal["added", "removed", "changed"]


class FieldChange(_Strict):
    """One field of an element, before and after."""

    field: str
    old: Any = None
    new: Any = None


class DiffEntry(_Strict):
    """One element added, removed or changed, matched by id."""

    kind: Literal["process", "node", "flow", "lane", "definition", "collaboration"]
    change: DiffChange
    id: str
    type: str | None = None
    name: str | None = None
    fields: list[FieldChange] = Field(default_factory=list)


class BpmnDiff(_Strict):
    """Semantic differences between two BPMN files (das.bpmn.diff); diagram-only changes are a count."""

    old: str | None = None
    new: str | None = None
    entries: list[DiffEntry] = Field(default_factory=list)
    diagram_changes: int = 0

    @property
    def empty(self) -> bool:
        return not self.entries

    def summary(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0}
        for e in self.entries:
            out[e.change] += 1
        return out


class ExecutableItem(_Strict):
    """One piece of content the engine executes (das.bpmn.executable): a script, a Java class, an
    expression, a delegate expression, a connector or a condition, with where it sits."""

    element: str | None = Field(None, description="id of the BPMN element it belongs to")
    kind: Literal["script", "class", "expression", "delegate_expression", "connector", "condition"]
    where: str = Field(description="what carries it, e.g. 'executionListener (start) camunda:class'")
    language: str | None = Field(None, description="script language (scriptFormat / condition language)")
    content: str = Field(description="the script body, class name, expression or connector id, in full")
    flagged: bool = Field(
        False, description="outside the executable allow-list: approving needs an acknowledgement"
    )
    new: bool = Field(True, description="not in the base version (always true for a new process)")


class ProposalDiff(BpmnDiff):
    """A proposal's diff against its base and its text rendering; a new process has no base, so no entries.

    ``executable`` lists every executable element of the proposed artifact, recomputed from the
    artifact whenever a proposal is read (never trusted from the stored body)."""

    text: str = ""
    executable: list[ExecutableItem] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _legacy_new_process(cls, data: Any) -> Any:
        """Older versions marked a new process with ``added: "all"``; the missing base says that now."""
        if isinstance(data, dict) and data.get("added") == "all":
            data = {k: v for k, v in data.items() if k != "added"}
        return data


FindingKind = Literal["incidents", "task_failures", "long_duration", "unused_path"]
Refactor = Literal["add_error_boundary", "add_retry", "add_timeout", "review_unused_path"]


class Evidence(_Strict):
    """Why a proposal exists: the request (chat), the file a person wrote, or a mined finding (nightly).

    A finding's measurements differ by pattern (counts, windows, example ids, durations), so they
    stay a mapping in ``details``; what every finding has is typed.
    """

    prompt: str | None = Field(None, description="chat: the request drafted from")
    file: str | None = Field(None, description="file: the BPMN file proposed")
    kind: FindingKind | None = Field(None, description="nightly: the pattern mined")
    fingerprint: str | None = Field(
        None, description="nightly: key:activity:refactor, one open proposal each"
    )
    process_key: str | None = None
    activity_id: str | None = None
    activity_name: str | None = None
    activity_type: str | None = None
    refactor: Refactor | None = None
    actionable: bool | None = None
    note: str | None = None
    details: dict[str, Any] | None = Field(
        None, description="nightly: the finding's measurements (counts, window, examples, durations)"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_finding(cls, data: Any) -> Any:
        """Older versions stored a finding's measurements under ``evidence``."""
        if isinstance(data, dict) and "evidence" in data and "details" not in data:
            data = {("details" if k == "evidence" else k): v for k, v in data.items()}
        return data


class TimeWindow(_Strict):
    """First and last engine timestamps of the rows a finding counted."""

    first: str | None = None
    last: str | None = None


class ValueMeasure(_Strict):
    """What a proposal is worth and what it cost; each origin fills its own fields.

    Drafts: the repair attempts, the model and its usage (``Usage``'s fields). Nightly: the
    refactor, the ``metric`` and its ``estimate``, the figures behind it, and ``how`` it was computed.
    """

    repair_attempts: int | None = None
    model: str | None = None
    iterations: int | None = None
    model_calls: int | None = None
    tool_calls: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    wall_s: float | None = None
    refactor: Refactor | None = None
    metric: Literal["incidents_avoided", "failure_rate", "p95_reduction_ms"] | None = None
    estimate: int | float | None = None
    how: str | None = None
    incidents_in_window: int | None = None
    instances_affected: int | None = None
    window: TimeWindow | None = None
    failure_rate: float | None = None
    failures: int | None = None
    failed_tasks: int | None = None
    tasks: int | None = None
    exhausted_tasks: int | None = None
    observed_recovery_rate: float | None = None
    incidents_avoided_estimate: float | None = None
    p95_ms: int | None = None
    p95_ms_with_timeout: int | None = None
    timeout_ms: int | None = None
    instances_over_timeout: int | None = None
    samples: int | None = None


class Proposal(BaseModel):
    id: str
    kind: Literal["process", "tde"] = "process"
    key: str
    base_version: str | None = None
    version: str
    artifact: str
    tde_wrappers: list[dict[str, Any]] = Field(default_factory=list)
    validation: ValidationReport = Field(default_factory=ValidationReport.missing)
    simulation: SimulationReport | None = Field(None, description="None: not simulated")
    diff: ProposalDiff | None = Field(None, description="None: no diff recorded")
    rationale: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    value_measure: ValueMeasure = Field(default_factory=ValueMeasure)
    edit_ops: list[dict[str, Any]] = Field(default_factory=list, description="for changes: the atomic edits")
    draft_trace: list[dict[str, Any]] = Field(default_factory=list, description="every drafting attempt")
    origin: Literal["chat", "nightly", "file"] = Field(
        "chat",
        description="chat: drafted from a prompt; nightly: "
        "mined from history; file: BPMN a person wrote (das propose)",
    )
    author: str = "das"
    status: Literal["proposed", "approved", "rejected", "deployed", "deploy_failed"] = "proposed"
    history: list[HistoryEntry] = Field(default_factory=list)

    @field_validator("validation", mode="before")
    @classmethod
    def _legacy_validation(cls, value: Any) -> Any:
        """Rows filed without a report hold ``{}``: not validated, so not approvable."""
        return ValidationReport.missing() if value is None or value == {} else value

    @field_validator("simulation", "diff", mode="before")
    @classmethod
    def _legacy_empty(cls, value: Any) -> Any:
        """Older rows hold ``{}`` for "not simulated" and "no diff"."""
        return None if value == {} else value

    def artifact_sha256(self) -> str:
        """What an approval binds to: the artifact and the TDE wrappers deployed with it."""
        blob = json.dumps({"artifact": self.artifact, "tde_wrappers": self.tde_wrappers}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


FileStatus = Literal["filed", "duplicate", "would_file", "not_actionable", "check_failed", "no_definition"]


class NightlyFileResult(_Strict):
    """What filing one finding came to."""

    status: FileStatus
    proposal_id: str | None = None
    version: str | None = None
    problems: list[str] = Field(default_factory=list)


class NightlyFinding(_Strict):
    """One pattern mined from engine history, with what was done about it."""

    kind: FindingKind
    process_key: str
    activity_id: str
    refactor: Refactor
    fingerprint: str
    activity_name: str | None = None
    activity_type: str | None = None
    actionable: bool = True
    note: str = ""
    evidence: dict[str, Any] = Field(
        default_factory=dict,
        description="the measurements (counts, examples, percentiles); raw durations left out",
    )
    result: NightlyFileResult | None = None


class NightlyReport(_Strict):
    """One nightly run (``das nightly --format json``, the ``nightlyReport`` process variable)."""

    started: str
    since: str | None = None
    keys: list[str] | Literal["all"] = "all"
    dry_run: bool = False
    model: str | None = None
    findings: list[NightlyFinding] = Field(default_factory=list)
    filed: list[str] = Field(default_factory=list, description="ids of the proposals filed")
    counts: dict[FileStatus, int] = Field(default_factory=dict)


CONTRACTS: dict[str, type[BaseModel]] = {
    "TaskSpec": TaskSpec,
    "Policy": Policy,
    "TdeResult": TdeResult,
    "TraceStep": TraceStep,
    "Usage": Usage,
    "Decision": Decision,
    "Proposal": Proposal,
    "ValidationReport": ValidationReport,
    "SimulationReport": SimulationReport,
    "ProposalDiff": ProposalDiff,
    "Evidence": Evidence,
    "ValueMeasure": ValueMeasure,
    "NightlyReport": NightlyReport,
}

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem, each naming the field path, e.g. ``policy.max_iterations``."""
    parts = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    more = "" if len(exc.errors()) <= 8 else f" (+{len(exc.errors()) - 8} more)"
    return f"invalid {source}: " + "; ".join(parts) + more


def parse_external(model: type[M], data: str | bytes | dict[str, Any], source: str) -> M:
    """Validate JSON from outside DAS; raise ``InvalidInput`` naming the offending field."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"invalid {source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"invalid {source}: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, source)) from exc
