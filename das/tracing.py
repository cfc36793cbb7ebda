"""OpenTelemetry spans an operator can follow: task -> TDE loop -> model and tool calls -> answer.

Why here and this small: DAS only *emits* spans through the OpenTelemetry API (a no-op unless
a tracer provider is installed), so tracing costs nothing when nobody listens. ``das serve``
calls :func:`configure_from_env`: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set it installs the SDK
with an OTLP/HTTP exporter; without it, nothing. Attribute names follow the GenAI semantic
conventions (``gen_ai.*``) plus ``das.*`` for the engine side (process instance, activity,
correlation id, idempotency key).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from das import __version__

try:  # the API is a small pure-Python package; without it, tracing is simply off
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
    _trace = None  # type: ignore[assignment]

PROCESS_INSTANCE = "das.process_instance_id"
ACTIVITY = "das.activity_id"
CORRELATION = "das.correlation_id"
IDEMPOTENCY_KEY = "das.idempotency_key"
TASK_TYPE = "das.task_type"
TOPIC = "das.topic"


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around the block (the current one becomes its parent); ``None`` values are left
    out. Exceptions are recorded and re-raised."""
    if _trace is None:
        yield None
        return
    tracer = _trace.get_tracer("das", __version__)
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def set_attributes(current: Any, **attributes: Any) -> None:
    """Add attributes to a span from :func:`span` (a no-op for ``None``)."""
    if current is not None and getattr(current, "is_recording", lambda: False)():
        current.set_attributes(_clean(attributes))


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None and isinstance(v, str | bool | int | float)}


def configure_from_env() -> bool:
    """Install the SDK with an OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
    (and no provider is installed yet); True if it did."""
    if _trace is None or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(_trace.get_tracer_provider(), TracerProvider):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "das")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _trace.set_tracer_provider(provider)
    return True


__all__ = [
    "ACTIVITY",
    "CORRELATION",
    "IDEMPOTENCY_KEY",
    "PROCESS_INSTANCE",
    "TASK_TYPE",
    "TOPIC",
    "configure_from_env",
    "set_attributes",
    "span",
]
