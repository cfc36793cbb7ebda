"""Guardrails: declarative policy, merged in one order, enforced outside the model.

``resolve_policy`` merges, in this order: ``guardrails/default.yaml`` (narrowed by the ``*``
entry of ``task_types.yaml`` for a task type declared nowhere) -> the operator's policy
file (``--policy``; the only layer that may loosen the default, and the only one that may name
private endpoints or declare model prices) -> the TDE registry entry -> the task type's entry in
``guardrails/task_types.yaml`` -> the TaskSpec's own ``policy``. Every layer after the
operator's may only tighten: registry and task type are clamped to the ceiling, a spec that
tries to loosen is refused. So whoever starts a process cannot pick a looser task type.

Tools are default-deny: ``allowed_tools`` of default + operator is a ceiling, never a grant to
a declared task type. A type declared in the registry or ``task_types.yaml`` gets exactly the
tools its entries name (within the ceiling); one whose entries name none gets ``READ_ONLY_TOOLS``
(``finish``, ``json_query``, ``read_file`` of its own workspace; ``http_request`` is egress even
for a GET, so never read-only). A type declared nowhere gets the ``*`` entry's tools unless the
operator's file names ``allowed_tools``. ``retry_at`` is decided by policy (operator, registry,
task type), never by the spec.
``Limits`` holds a policy and a usage; each ``check_*`` raises one ``GuardrailStop`` naming the
limit and the value seen. The loop turns it into a stop_reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from das.config import resource_dir
from das.contracts import Policy, TaskSpec, Usage, describe_validation_error
from das.errors import GuardrailStop, InvalidInput, PolicyDenied

DATA_CLASS_ORDER = ["public", "internal", "confidential", "pii"]
_POLICY_KEYS = set(Policy.model_fields)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"invalid YAML in {path}: {exc}") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read policy file {path}: {exc.strerror}") from exc


def _check_keys(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput(f"invalid policy in {source}: expected a mapping of policy keys")
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown policy key(s) in {source}: {', '.join(unknown)}; known keys: {', '.join(sorted(_POLICY_KEYS))}"
        )
    return data


@lru_cache(maxsize=8)
def _defaults(root: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    base = Path(root)
    default = _check_keys(_read_yaml(base / "default.yaml"), "guardrails/default.yaml")
    per_type_path = base / "task_types.yaml"
    per_type = _read_yaml(per_type_path) if per_type_path.exists() else {}
    for name, overrides in per_type.items():
        _check_keys(overrides, f"guardrails/task_types.yaml ({name})")
    return default, per_type


@lru_cache(maxsize=8)
def data_class_rules(root: str | None = None) -> dict[str, Any]:
    rules: dict[str, Any] = _read_yaml(Path(root or resource_dir("guardrails")) / "data_classes.yaml")
    return rules


LIST_KEYS = ("allowed_tools", "allowed_hosts", "allowed_methods", "allowed_endpoints")
OPERATOR_ONLY = ("model_prices",)
FREE_KEYS = ("retry_backoff_s", "retry_at")
SPEC_FORBIDDEN = ("retry_at",)  # decided by policy: a spec choosing it would pick its own retry semantics
# what a declared task type whose entries name no tools gets (within the ceiling)
READ_ONLY_TOOLS = ("finish", "json_query", "read_file")


def tighten(
    base: Policy,
    overrides: dict[str, Any],
    source: str,
    clamp: bool = False,
    sources: dict[str, str] | None = None,
) -> Policy:
    """Apply overrides that may only make the policy stricter.

    Loosening is refused (``PolicyDenied``), or with ``clamp`` silently kept at the base's
    value (a registry entry or task type never lifts the operator's ceiling). ``sources``
    records which layer set each key, for ``das policy explain``.
    """
    _check_keys(overrides, source)
    merged = base.model_dump()
    for key, value in overrides.items():
        current = merged[key]
        looser: str | None = None
        if key in OPERATOR_ONLY:
            if value:
                raise PolicyDenied(
                    f"{source} may not set {key}; only the operator's policy file can", rule=key
                )
            continue
        try:  # each value is checked against its field's type before any comparison
            value = Policy.model_validate({**merged, key: value}).model_dump()[key]
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc, source)) from exc
        if key in LIST_KEYS:
            if not isinstance(value, list):
                raise InvalidInput(f"{source}: {key} must be a list")
            extra = [v for v in value if v not in current]
            if extra:
                looser = f"it adds {extra}"
                value = [v for v in value if v in current]
        elif key == "data_class":
            if value not in DATA_CLASS_ORDER:
                raise InvalidInput(f"{source}: data_class must be one of {', '.join(DATA_CLASS_ORDER)}")
            if DATA_CLASS_ORDER.index(value) < DATA_CLASS_ORDER.index(current):
                looser, value = f"{current} -> {value}", current
        elif key in FREE_KEYS:
            pass  # waiting longer between retries is never looser
        elif key == "human_gate":
            if current and not value:
                looser, value = "it switches human_gate off", current
        elif isinstance(current, int | float) and not isinstance(value, int | float):
            raise InvalidInput(f"{source}: {key} must be a number")
        elif isinstance(current, int | float) and value > current:
            looser, value = f"{current} -> {value}", current
        if looser and not clamp:
            raise PolicyDenied(f"{source} may only tighten {key} ({looser})", rule=key)
        if value != current and sources is not None:
            sources[key] = source
        merged[key] = value
    return _validate(merged, source)


def _validate(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, source)) from exc


def resolve_policy(
    spec: TaskSpec,
    policy_file: str | Path | None = None,
    registry_policy: dict[str, Any] | None = None,
    root: Path | None = None,
    sources: dict[str, str] | None = None,
) -> Policy:
    """default -> operator file -> registry -> task type -> spec; after the operator, tighten only."""
    default, per_type = _defaults(str(root or resource_dir("guardrails")))
    if sources is not None:
        sources.update({k: "guardrails/default.yaml" for k in Policy.model_fields})
    merged = dict(default)
    if spec.task_type not in per_type and registry_policy is None and "*" in per_type:
        # a task type declared nowhere gets the narrow default; the operator's file may widen it
        merged.update(per_type["*"])
        if sources is not None:
            sources.update(
                {k: "guardrails/task_types.yaml (* = undeclared task types)" for k in per_type["*"]}
            )
    if policy_file:
        operator = _check_keys(_read_yaml(Path(policy_file)), str(policy_file))
        merged.update(operator)
        if sources is not None:
            sources.update({k: f"operator file {policy_file}" for k in operator})
    policy = _validate(merged, "the default and operator policy")
    if registry_policy:
        policy = tighten(
            policy, registry_policy, f"TDE registry ({spec.task_type})", clamp=True, sources=sources
        )
    if spec.task_type in per_type:
        policy = tighten(
            policy,
            per_type[spec.task_type],
            f"guardrails/task_types.yaml ({spec.task_type})",
            clamp=True,
            sources=sources,
        )

    policy = _default_deny_tools(
        policy, spec.task_type, registry_policy, per_type.get(spec.task_type), sources
    )
    if spec.policy:
        forbidden = [k for k in SPEC_FORBIDDEN if k in spec.policy]
        if forbidden:
            raise PolicyDenied(
                f"the task spec's policy may not set {', '.join(forbidden)}: it is decided by the "
                "operator's policy file, the TDE registry or guardrails/task_types.yaml",
                rule=forbidden[0],
            )
        policy = tighten(policy, spec.policy, "the task spec's policy", sources=sources)
    return policy


def _default_deny_tools(
    policy: Policy,
    task_type: str,
    registry_policy: dict[str, Any] | None,
    type_policy: dict[str, Any] | None,
    sources: dict[str, str] | None,
) -> Policy:
    """A declared task type gets exactly the tools its entries name; one naming none gets
    ``READ_ONLY_TOOLS`` (within the ceiling). Undeclared types keep the ``*``/operator tools."""
    layers = [
        (name, layer)
        for name, layer in (
            (f"TDE registry ({task_type})", registry_policy),
            (f"guardrails/task_types.yaml ({task_type})", type_policy),
        )
        if layer is not None
    ]
    naming = [name for name, layer in layers if "allowed_tools" in layer]
    if not layers:
        return policy  # declared nowhere: the "*" entry or the operator's file said
    if naming:
        if sources is not None:
            sources["allowed_tools"] = " narrowed by ".join(naming) + " (within the default/operator ceiling)"
        return policy
    tools = [t for t in READ_ONLY_TOOLS if t in policy.allowed_tools]
    if sources is not None:
        where = " and ".join(name for name, _ in layers)
        sources["allowed_tools"] = (
            f"default-deny: {where} name{'s' if len(layers) == 1 else ''} no tools, "
            "so finish + read-only tools"
        )
    return policy.model_copy(update={"allowed_tools": tools})


def service_policy(task_type: str, policy_file: str | Path | None = None) -> Policy:
    """The policy for DAS's own model calls (drafting ``das_author``, nightly ``das_curator``,
    team selection ``peo_select``): the same layers as a task, from ``task_types.yaml``."""
    return resolve_policy(TaskSpec(task_type=task_type, mode="deterministic"), policy_file)


def check_model_allowed(policy: Policy, model: str, is_local: bool) -> None:
    """Refuse, before any call, a model the data class forbids."""
    rules = data_class_rules().get(policy.data_class, {})
    if not is_local and not rules.get("external_providers", True):
        raise PolicyDenied(
            f"data_class {policy.data_class} allows only local models; {model} is an external provider",
            rule="data_class",
        )


@dataclass
class Limits:
    """A policy's numeric limits against the usage seen so far."""

    policy: Policy
    usage: Usage = field(default_factory=Usage)

    def check_before_iteration(self) -> None:
        if self.usage.iterations >= self.policy.max_iterations:
            raise GuardrailStop("max_iterations", self.usage.iterations, self.policy.max_iterations)

    def check_time(self, elapsed_s: float) -> None:
        if elapsed_s >= self.policy.timeout_s:
            raise GuardrailStop("timeout", round(elapsed_s, 3), self.policy.timeout_s)

    def check_tokens(self) -> None:
        if self.usage.total_tokens > self.policy.max_tokens:
            raise GuardrailStop("max_tokens", self.usage.total_tokens, self.policy.max_tokens)

    def check_cost(self) -> None:
        if self.usage.cost_usd > self.policy.max_cost_usd:
            raise GuardrailStop("max_cost_usd", round(self.usage.cost_usd, 6), self.policy.max_cost_usd)

    def check_tool_call(self) -> None:
        """Called before a tool runs: would this call exceed max_tool_calls?"""
        if self.usage.tool_calls + 1 > self.policy.max_tool_calls:
            raise GuardrailStop("max_tool_calls", self.usage.tool_calls + 1, self.policy.max_tool_calls)

    def check_tool_allowed(self, name: str) -> None:
        if name != "finish" and name not in self.policy.allowed_tools:
            raise PolicyDenied(
                f"tool {name!r} is not in allowed_tools ({', '.join(self.policy.allowed_tools)})",
                rule="allowed_tools",
            )

    def remaining_tokens(self) -> int:
        return max(self.policy.max_tokens - self.usage.total_tokens, 0)
