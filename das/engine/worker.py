"""The external-task worker behind ``das serve``.

One fetch thread long-polls ``fetchAndLock`` for as many tasks as there are free handler
slots; N handler threads run the topic handlers; one lock keeper extends the locks of
in-flight tasks (and the loop's own heartbeat callback extends them between iterations), so
long loops keep their tasks. Engine failures never crash the worker: fetches back off and
retry, answers are retried until they land or the lock is known to be lost (then another
worker re-runs the task and the idempotency store returns the same result).

Shutdown (SIGTERM/SIGINT or ``stop()``): stop fetching, unlock tasks fetched after the stop,
let in-flight tasks finish for ``grace_s``, unlock the rest, return.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from das import tracing
from das.adapters import adapters as installed_adapters
from das.camunda.client import EngineClient, EngineError, ExternalTask, Topic
from das.engine.handlers import HandlerContext, Outcome, TopicHandler, correlation_of, default_handlers
from das.engine.keys import EngineFacts
from das.engine.metrics import WorkerMetrics
from das.errors import TransientUpstreamError, UpstreamError, UsageError
from das.secrets import scrub
from das.tools.base import Tool

log = logging.getLogger("das.worker")


@dataclass
class WorkerConfig:
    topics: list[str] = field(default_factory=lambda: ["das-tde-probabilistic"])
    workers: int = 4
    worker_id: str = ""
    lock_duration_ms: int = 60_000
    poll_ms: int = 5_000  # asyncResponseTimeout of one long poll; bounds shutdown time
    max_tasks_per_fetch: int = 32
    prefetch: int = -1  # tasks locked ahead of free handlers; -1 = as many as handlers
    model: str | None = None
    policy_file: str | None = None
    grace_s: float = 30.0
    backoff_max_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"das-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.prefetch < 0:
            self.prefetch = self.workers


@dataclass
class _InFlight:
    task: ExternalTask
    correlation_id: str
    fetched_at: float
    extended_at: float
    lost: bool = False


class Worker:
    """Fetch, run, answer. ``run()`` blocks until ``stop()`` or a signal."""

    def __init__(
        self,
        client: EngineClient,
        config: WorkerConfig | None = None,
        handlers: Mapping[str, TopicHandler] | None = None,
        metrics: WorkerMetrics | None = None,
        adapters: Mapping[str, Tool] | None = None,
    ) -> None:
        self.client = client
        self.config = config or WorkerConfig()
        known = handlers if handlers is not None else default_handlers()
        self.handlers: dict[str, TopicHandler] = {}
        for entry in self.config.topics:
            # "name" serves a known topic; "name=handler" serves topic `name` with the handler
            # of a known topic, so deployments can use their own topic names.
            name, _, alias = entry.partition("=")
            handler = known.get(alias or name)
            if handler is None:
                raise UsageError(
                    f"no handler for topic {alias or name!r}; known: {', '.join(sorted(known))} "
                    "(use NAME=HANDLER to serve another topic name with a known handler)"
                )
            self.handlers[name] = handler
        self.metrics = metrics or WorkerMetrics()
        self.adapters: Mapping[str, Tool] = installed_adapters() if adapters is None else adapters
        self.facts = EngineFacts(client)  # whose task is it: per process instance, asked once
        self._stop = threading.Event()
        # handlers + prefetch: while handlers run, the next batch is already locked, so one
        # fetchAndLock serves many tasks (the locks of waiting tasks are kept alive too)
        self._slots = threading.Semaphore(self.config.workers + self.config.prefetch)
        self._queue: queue.Queue[ExternalTask | None] = queue.Queue()
        self._in_flight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.engine_up = True

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        if not self._stop.is_set():
            log.info("stopping: no more fetching", extra={"workerId": self.config.worker_id})
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def run(self, install_signals: bool = True) -> None:
        """Serve until stopped; then drain as described in the module docstring."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info(
            "worker started",
            extra={
                "workerId": self.config.worker_id,
                "topics": self.config.topics,
                "workers": self.config.workers,
                "engine": self.client.base_url,
            },
        )
        for i in range(self.config.workers):
            self._spawn(self._handler_loop, f"das-handler-{i}")
        keeper = self._spawn(self._keeper_loop, "das-lock-keeper")
        fetcher = self._spawn(self._fetch_loop, "das-fetch")
        self._stop.wait()
        fetcher.join(timeout=self.config.poll_ms / 1000 + self.client.timeout + 5)
        self._drain()
        keeper.join(timeout=2)
        log.info("worker stopped", extra={"workerId": self.config.worker_id})

    def _spawn(self, target, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _drain(self) -> None:
        deadline = time.monotonic() + self.config.grace_s
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(self.config.workers):
            self._queue.put(None)
        with self._lock:
            leftovers = list(self._in_flight.values())
        for item in leftovers:
            self._unlock(item.task, "grace period over")

    # -- fetching ---------------------------------------------------------------------------

    def _topics(self) -> list[Topic]:
        return [
            Topic(name, self.config.lock_duration_ms, variables=self.handlers[name].variables)
            for name in self.handlers
        ]

    def _fetch_loop(self) -> None:
        backoff = 0.5
        topics = self._topics()
        backlog = False  # the last fetch came back full: more work is waiting
        batch = max(1, min(self.config.max_tasks_per_fetch, self.config.workers))
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            free = 1
            while free < self.config.max_tasks_per_fetch and self._slots.acquire(blocking=False):
                free += 1
            if backlog and free < batch and self.config.prefetch:
                deadline = time.monotonic() + 0.05  # gather a batch; queued tasks keep handlers busy
                while free < batch and self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    free += 1
            started = time.monotonic()
            try:
                tasks = self.client.fetch_and_lock(
                    self.config.worker_id,
                    topics,
                    max_tasks=free,
                    async_response_timeout_ms=self.config.poll_ms,
                )
            except (UpstreamError, ValueError, KeyError) as exc:  # never let the fetcher die
                self._release(free)
                self.metrics.engine_errors.labels("fetchAndLock").inc()
                if self.engine_up:
                    what = (
                        "engine refused fetchAndLock"
                        if isinstance(exc, EngineError)
                        else "engine unavailable"
                        if isinstance(exc, UpstreamError)
                        else "unreadable fetchAndLock answer"
                    )
                    log.warning(
                        f"{what}, retrying with backoff",
                        extra={"error": getattr(exc, "message", str(exc)), "backoff_s": backoff},
                    )
                self.engine_up = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            self.metrics.fetch_seconds.observe(time.monotonic() - started)
            if not self.engine_up:
                log.info("engine reachable again", extra={"engine": self.client.base_url})
            self.engine_up, backoff = True, 0.5
            backlog = len(tasks) == free
            self._release(free - len(tasks))
            for task in tasks:
                self.metrics.fetched.labels(task.topic).inc()
                if self._stop.is_set():
                    self._unlock(task, "fetched during shutdown")
                    self._slots.release()
                    continue
                now = time.monotonic()
                with self._lock:
                    self._in_flight[task.id] = _InFlight(task, correlation_of(task), now, now)
                self.metrics.in_flight.inc()
                self._queue.put(task)

    def _release(self, n: int) -> None:
        for _ in range(max(0, n)):
            self._slots.release()

    # -- handling ---------------------------------------------------------------------------

    def _handler_loop(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                if self._stop.is_set():  # prefetched, never started: hand it back at once
                    self._unlock(task, "not started before shutdown")
                else:
                    self._handle(task)
            finally:
                with self._lock:
                    self._in_flight.pop(task.id, None)
                self.metrics.in_flight.dec()
                self._slots.release()

    def _context(self, task: ExternalTask) -> dict[str, str]:
        item = self._in_flight.get(task.id)
        return {
            "taskId": task.id,
            "topic": task.topic,
            "processInstanceId": task.process_instance_id,
            "activityId": task.activity_id,
            "correlationId": item.correlation_id if item else correlation_of(task),
        }

    def _handle(self, task: ExternalTask) -> None:
        ctx_log = self._context(task)
        with tracing.span(
            f"das.task {task.topic}",
            **{
                tracing.TOPIC: task.topic,
                tracing.PROCESS_INSTANCE: task.process_instance_id,
                tracing.ACTIVITY: task.activity_id,
                tracing.CORRELATION: ctx_log["correlationId"],
                "das.task_id": task.id,
            },
        ) as current:
            outcome, delivered = self._handle_traced(task, ctx_log)
            tracing.set_attributes(
                current,
                **{
                    "das.outcome": outcome.kind if delivered else "lost",
                    "das.stop_reason": outcome.stop_reason,
                    "gen_ai.usage.input_tokens": outcome.input_tokens,
                    "gen_ai.usage.output_tokens": outcome.output_tokens,
                    "das.cost_usd": outcome.cost_usd,
                },
            )

    def _handle_traced(self, task: ExternalTask, ctx_log: dict[str, str]) -> tuple[Outcome, bool]:
        handler = self.handlers[task.topic]
        log.info("task started", extra=ctx_log)
        started = time.monotonic()
        ctx = HandlerContext(
            model=self.config.model,
            policy_file=self.config.policy_file,
            heartbeat=lambda: self._extend(task.id, force=False),
            correlation_id=ctx_log["correlationId"],
            adapters=self.adapters,
            facts=self.facts,
        )
        try:
            outcome = handler.handle(task, ctx)
        except Exception as exc:  # handlers map their own errors; this is a last resort
            log.exception("handler crashed", extra=ctx_log)
            outcome = Outcome(
                "failure",
                message=f"DAS handler crashed: {type(exc).__name__}: {exc}",
                retries=max(0, (task.retries if task.retries is not None else 3) - 1),
                retry_timeout_ms=5000,
            )
        self.metrics.handler_seconds.labels(task.topic).observe(time.monotonic() - started)
        self._record(task.topic, outcome)
        with tracing.span(
            f"das.answer {outcome.kind}",
            **{"das.outcome": outcome.kind, "das.error_code": outcome.error_code},
        ):
            delivered = self._answer(task, outcome, ctx_log)
        label = outcome.kind if delivered else "lost"
        self.metrics.task_seconds.labels(task.topic, label).observe(time.monotonic() - started)
        log.info(
            "task answered" if delivered else "task result dropped",
            extra={
                **ctx_log,
                "outcome": outcome.kind,
                "stopReason": outcome.stop_reason,
                "errorCode": outcome.error_code,
                "seconds": round(time.monotonic() - started, 4),
            },
        )
        return outcome, delivered

    def _record(self, topic: str, outcome: Outcome) -> None:
        m = self.metrics
        m.iterations.labels(topic).inc(outcome.iterations)
        m.tokens.labels("input").inc(outcome.input_tokens)
        m.tokens.labels("output").inc(outcome.output_tokens)
        m.cost.inc(outcome.cost_usd)
        if outcome.task_type:
            m.task_type_tokens.labels(outcome.task_type, "input").inc(outcome.input_tokens)
            m.task_type_tokens.labels(outcome.task_type, "output").inc(outcome.output_tokens)
            m.task_type_cost.labels(outcome.task_type).inc(outcome.cost_usd)
        if outcome.error_code == "DAS_GUARDRAIL" and outcome.stop_reason:
            m.guardrail_stops.labels(outcome.stop_reason).inc()

    def _answer(self, task: ExternalTask, outcome: Outcome, ctx_log: dict[str, str]) -> bool:
        """Deliver the outcome; retry while the engine is down; False if the lock is lost."""
        wid = self.config.worker_id
        # failure texts come from exceptions and tracebacks: mask secrets before the engine stores them
        outcome.message = scrub(outcome.message) if outcome.message else outcome.message
        outcome.details = scrub(outcome.details) if outcome.details else outcome.details
        backoff = 0.25
        give_up = time.monotonic() + max(self.config.lock_duration_ms / 1000 * 3, 60)
        while True:
            try:
                if outcome.kind == "complete":
                    self.client.complete(task.id, wid, outcome.variables)
                    self.metrics.completed.labels(task.topic).inc()
                elif outcome.kind == "bpmn_error":
                    self.client.handle_bpmn_error(
                        task.id, wid, outcome.error_code or "DAS_ERROR", outcome.message, outcome.variables
                    )
                    self.metrics.bpmn_errors.labels(task.topic, outcome.error_code or "").inc()
                else:
                    self.client.handle_failure(
                        task.id,
                        wid,
                        outcome.message or "failure",
                        error_details=outcome.details,
                        retries=outcome.retries,
                        retry_timeout_ms=outcome.retry_timeout_ms,
                    )
                    self.metrics.failed.labels(task.topic).inc()
                return True
            except EngineError as exc:  # 4xx: task gone, or locked by another worker now
                self.metrics.lost.labels(task.topic).inc()
                log.warning(
                    "engine refused the answer; lock lost or task gone",
                    extra={**ctx_log, "status": exc.status, "error": exc.message},
                )
                return False
            except TransientUpstreamError as exc:
                self.metrics.engine_errors.labels(outcome.kind).inc()
                if time.monotonic() > give_up or (self._stop.is_set() and time.monotonic() > give_up - 30):
                    log.error(
                        "engine unavailable; giving up on this answer (result is stored "
                        "under its idempotency key)",
                        extra={**ctx_log, "error": exc.message},
                    )
                    self.metrics.lost.labels(task.topic).inc()
                    return False
                log.warning(
                    "engine unavailable while answering; retrying",
                    extra={**ctx_log, "error": exc.message, "backoff_s": backoff},
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)

    # -- locks ------------------------------------------------------------------------------

    def _extend(self, task_id: str, force: bool) -> None:
        """Extend the lock if a third of its duration has passed since the last extension."""
        with self._lock:
            item = self._in_flight.get(task_id)
        if item is None or item.lost:
            return
        now = time.monotonic()
        if not force and now - item.extended_at < self.config.lock_duration_ms / 3000:
            return
        try:
            self.client.extend_lock(task_id, self.config.worker_id, self.config.lock_duration_ms)
            item.extended_at = now
        except EngineError as exc:
            item.lost = True
            log.warning("lock lost while running", extra={**self._context(item.task), "error": exc.message})
        except UpstreamError as exc:
            self.metrics.engine_errors.labels("extendLock").inc()
            log.warning("could not extend lock; will retry", extra={"taskId": task_id, "error": exc.message})

    def _keeper_loop(self) -> None:
        period = max(0.2, self.config.lock_duration_ms / 6000)
        while True:
            if self._stop.wait(period) and not self.in_flight():
                return
            with self._lock:
                ids = list(self._in_flight)
            for task_id in ids:
                self._extend(task_id, force=False)

    def _unlock(self, task: ExternalTask, why: str) -> None:
        try:
            self.client.unlock(task.id)
            self.metrics.unlocked.labels(task.topic).inc()
            log.info("task unlocked", extra={"taskId": task.id, "topic": task.topic, "reason": why})
        except UpstreamError as exc:
            log.warning(
                "could not unlock task; it frees itself at lock expiry",
                extra={"taskId": task.id, "error": exc.message},
            )
