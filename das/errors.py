"""Exceptions, split by audience.

* ``DasError`` subclasses are domain errors: the CLI prints their message as one line and
  exits with ``exit_code``. They carry what the user needs to fix the problem.
* ``GuardrailStop`` subclasses are signals to the loop: a limit was hit. The loop turns
  them into a ``stop_reason``; they only escape when a caller asks for them.
* ``ModelRetry`` is a signal from a tool or validator back to the model: the model caused
  the problem, so it is told and may try again.
* Anything else (``TypeError``, ``KeyError`` ...) is a bug and is raised.
"""

from __future__ import annotations

from typing import Any


class DasError(Exception):
    """A domain error with a message for the user and an exit code for the CLI."""

    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NegativeResult(DasError):
    """The command ran but its answer is "no" (findings, a failed run)."""

    exit_code = 1


class UsageError(DasError):
    """The command was called wrongly (missing option, unknown name)."""

    exit_code = 2


class InvalidInput(DasError):
    """Data from outside (a file, a variable, a model) failed validation."""

    exit_code = 4


class UpstreamError(DasError):
    """A system DAS depends on (model provider, engine) failed or is unreachable."""

    exit_code = 5


class TransientUpstreamError(UpstreamError):
    """An upstream failure worth retrying (timeout, 429, 5xx, connection refused)."""


class PolicyDenied(DasError):
    """Policy forbids what was asked (data class, tool allowlist, provider)."""

    exit_code = 3

    def __init__(self, message: str, rule: str = "policy", **details: Any) -> None:
        super().__init__(message, **details)
        self.rule = rule


class GuardrailStop(DasError):
    """A limit was reached. ``limit`` is the policy key, ``value`` what was seen."""

    exit_code = 3
    stop_reason = "guardrail"

    def __init__(self, limit: str, value: Any, maximum: Any) -> None:
        super().__init__(f"guardrail {limit} stopped the task: {value} seen, limit {maximum}")
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.stop_reason = limit


class ModelRetry(Exception):
    """Raised by a tool or output validator: tell the model what went wrong, let it retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutcomeUnknown(Exception):
    """A side-effecting call was sent but its outcome is unknown (timeout or reset after the
    request left). Never retried automatically: the loop stops and an operator resolves it
    (``das effects resolve``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
