"""Guardrails: declarative policy, merged in one order, enforced outside the model.

``resolve_policy`` merges default < task type < operator file < the spec's own policy
(which may only tighten). ``Limits`` holds a policy and a usage; each ``check_*`` raises one
``GuardrailStop`` naming the limit and the value seen. The loop turns it into a stop_reason.
"""

from __future__ import annotations

import re
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
    return _read_yaml(Path(root or resource_dir("guardrails")) / "data_classes.yaml")


def tighten(base: Policy, overrides: dict[str, Any], source: str) -> Policy:
    """Apply overrides that may only make the policy stricter; loosening is an error."""
    _check_keys(overrides, source)
    merged = base.model_dump()
    for key, value in overrides.items():
        current = merged[key]
        if key in ("allowed_tools", "allowed_hosts"):
            extra = set(value) - set(current)
            if extra:
                raise PolicyDenied(f"{source} may only tighten {key}; it adds {sorted(extra)}", rule=key)
        elif key == "data_class":
            if DATA_CLASS_ORDER.index(value) < DATA_CLASS_ORDER.index(current):
                raise PolicyDenied(f"{source} may only tighten data_class ({current} -> {value})", rule=key)
        elif key == "human_gate":
            if current and not value:
                raise PolicyDenied(f"{source} may not switch off human_gate", rule=key)
        elif isinstance(current, int | float) and value > current:
            raise PolicyDenied(f"{source} may only tighten {key} ({current} -> {value})", rule=key)
        merged[key] = value
    return _validate(merged, source)


def _validate(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, source)) from exc


def resolve_policy(spec: TaskSpec, policy_file: str | Path | None = None,
                   registry_policy: dict[str, Any] | None = None, root: Path | None = None) -> Policy:
    """Merge default < task type < registry < operator file < spec (tighten only)."""
    default, per_type = _defaults(str(root or resource_dir("guardrails")))
    merged = dict(default)
    merged.update(per_type.get(spec.task_type, {}))
    if registry_policy:
        merged.update(_check_keys(registry_policy, f"TDE registry ({spec.task_type})"))
    if policy_file:
        merged.update(_check_keys(_read_yaml(Path(policy_file)), str(policy_file)))
    policy = _validate(merged, "merged policy")
    if spec.policy:
        policy = tighten(policy, spec.policy, "the task spec's policy")
    return policy


def check_model_allowed(policy: Policy, model: str, is_local: bool) -> None:
    """Refuse, before any call, a model the data class forbids."""
    rules = data_class_rules().get(policy.data_class, {})
    if not is_local and not rules.get("external_providers", True):
        raise PolicyDenied(
            f"data_class {policy.data_class} allows only local models; {model} is an external provider",
            rule="data_class",
        )


def redactor(policy: Policy, is_local: bool):
    """A function that masks configured patterns, or None when no redaction applies."""
    rules = data_class_rules()
    if is_local or not rules.get(policy.data_class, {}).get("redact"):
        return None
    patterns = [(name, re.compile(rx)) for name, rx in (rules.get("redaction_patterns") or {}).items()]

    def redact(text: str) -> str:
        for name, rx in patterns:
            text = rx.sub(f"[REDACTED:{name}]", text)
        return text

    return redact


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
                f"tool {name!r} is not in allowed_tools ({', '.join(self.policy.allowed_tools)})", rule="allowed_tools"
            )

    def remaining_tokens(self) -> int:
        return max(self.policy.max_tokens - self.usage.total_tokens, 0)
