"""Prometheus metrics and JSON logs of the worker.

One ``WorkerMetrics`` per worker with its own registry, so several workers in one process
(tests) never collide; ``serve_metrics`` exposes it on a port for scraping.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from das.secrets import scrub

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class WorkerMetrics:
    """Counters and histograms named ``das_worker_*``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.fetched = Counter("das_worker_tasks_fetched", "External tasks locked", ["topic"], registry=r)
        self.completed = Counter("das_worker_tasks_completed", "Tasks completed", ["topic"], registry=r)
        self.failed = Counter(
            "das_worker_tasks_failed", "Tasks reported with handleFailure", ["topic"], registry=r
        )
        self.bpmn_errors = Counter(
            "das_worker_bpmn_errors", "Tasks answered with a BPMN error", ["topic", "code"], registry=r
        )
        self.lost = Counter(
            "das_worker_tasks_lost", "Results dropped: lock lost or task gone", ["topic"], registry=r
        )
        self.unlocked = Counter(
            "das_worker_tasks_unlocked", "Tasks handed back on shutdown", ["topic"], registry=r
        )
        self.iterations = Counter("das_worker_loop_iterations", "TDE loop iterations", ["topic"], registry=r)
        self.guardrail_stops = Counter(
            "das_worker_guardrail_stops", "Loops stopped by a guardrail", ["reason"], registry=r
        )
        self.tokens = Counter("das_worker_tokens", "Model tokens used", ["kind"], registry=r)
        self.cost = Counter("das_worker_cost_usd", "Model cost in USD", registry=r)
        self.task_type_tokens = Counter(
            "das_worker_task_type_tokens",
            "Model tokens used, per task type",
            ["task_type", "kind"],
            registry=r,
        )
        self.task_type_cost = Counter(
            "das_worker_task_type_cost_usd", "Model cost in USD, per task type", ["task_type"], registry=r
        )
        self.engine_errors = Counter("das_worker_engine_errors", "Failed engine calls", ["call"], registry=r)
        self.in_flight = Gauge("das_worker_in_flight", "Tasks being handled now", registry=r)
        self.task_seconds = Histogram(
            "das_worker_task_seconds",
            "Fetch-to-answer latency per task",
            ["topic", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.handler_seconds = Histogram(
            "das_worker_handler_seconds",
            "Handler (loop) run time",
            ["topic"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "das_worker_fetch_seconds", "fetchAndLock round trip", buckets=_LATENCY_BUCKETS, registry=r
        )

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and status output)."""
        got = self.registry.get_sample_value(name, labels or None)
        return float(got or 0.0)


def serve_metrics(metrics: WorkerMetrics, port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=metrics.registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any ``extra`` context."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(out, default=str))  # secrets never reach the logs


def setup_json_logging(level: str = "INFO") -> None:
    """Send ``das.*`` logs as JSON lines to stderr (idempotent)."""
    logger = logging.getLogger("das")
    if not any(getattr(h, "_das_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._das_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
