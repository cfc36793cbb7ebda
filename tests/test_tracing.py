"""Tracing is off unless asked for: no endpoint, no exporter; a span never changes results."""

from __future__ import annotations

import pytest

from das import tracing


def test_no_endpoint_means_no_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.configure_from_env() is False


def test_a_span_reraises_and_keeps_only_plain_attributes() -> None:
    with pytest.raises(ValueError, match="boom"):
        with tracing.span("das.test", keep="x", drop=None, nested={"no": 1}) as current:
            tracing.set_attributes(current, n=1, bad=object())
            raise ValueError("boom")
    assert tracing._clean({"a": 1, "b": None, "c": [1], "d": "s"}) == {"a": 1, "d": "s"}
