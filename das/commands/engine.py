"""``das serve`` (the external-task worker) and ``das kernel up|status|down``."""

from __future__ import annotations

import json

import click

from das.adapters import deterministic_entries
from das.camunda.client import EngineClient
from das.engine.kernel import Kernel, down, status
from das.engine.metrics import WorkerMetrics, serve_metrics, setup_json_logging
from das.engine.worker import Worker, WorkerConfig
from das.errors import InvalidInput, NegativeResult
from das.output import emit, progress
from das.tracing import configure_from_env
from das.views.text import render_kernel_status, render_kernel_up

DEFAULT_TOPICS = ["das-tde-probabilistic", "das-peo-select", "das-nightly", "das-tde-compensate"]


def _split_topics(values: tuple[str, ...]) -> list[str]:
    """The topics named, or the defaults plus one per deterministic registry entry."""
    topics = [t.strip() for v in values for t in v.split(",") if t.strip()]
    if topics:
        return topics

    return list(DEFAULT_TOPICS) + sorted(deterministic_entries())


@click.command()
@click.option(
    "--topics",
    "-t",
    multiple=True,
    metavar="TOPIC[,TOPIC]",
    help="Topics to serve (default das-tde-probabilistic, das-peo-select, das-nightly and "
    "das-tde-<type> for each deterministic registry entry, e.g. das-tde-json_transform); "
    "NAME=HANDLER serves topic NAME "
    "with a known topic's handler, e.g. my-tde=das-tde-probabilistic.",
)
@click.option(
    "--workers", "-w", type=click.IntRange(1, 256), default=4, show_default=True, help="Concurrent handlers."
)
@click.option("--model", default=None, help="litellm model string (default $DAS_MODEL).")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Operator policy file: may loosen the defaults; task types and specs may only tighten it.",
)
@click.option("--engine-url", default=None, help="Engine REST base (default $DAS_ENGINE_URL).")
@click.option(
    "--lock-ms",
    type=click.IntRange(1000),
    default=60_000,
    show_default=True,
    help="Lock duration; running loops extend it (heartbeat).",
)
@click.option(
    "--poll-ms",
    type=click.IntRange(0, 300_000),
    default=5_000,
    show_default=True,
    help="Long-polling asyncResponseTimeout of one fetchAndLock.",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(1, 1000),
    default=32,
    show_default=True,
    help="Most tasks locked by one fetch (never more than free handlers).",
)
@click.option(
    "--prefetch",
    type=click.IntRange(-1, 1000),
    default=-1,
    show_default=True,
    help="Tasks locked ahead of free handlers (-1 = as many as --workers, 0 = none).",
)
@click.option(
    "--grace",
    "grace_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds in-flight tasks may finish after SIGTERM before they are unlocked.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Serve Prometheus /metrics on this port (0 = off).",
)
@click.option("--metrics-addr", default="127.0.0.1", show_default=True)
@click.option("--worker-id", default=None, help="Worker id shown in the engine (default host-pid-random).")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def serve(
    topics: tuple[str, ...],
    workers: int,
    model: str | None,
    policy_file: str | None,
    engine_url: str | None,
    lock_ms: int,
    poll_ms: int,
    max_tasks: int,
    prefetch: int,
    grace_s: float,
    metrics_port: int,
    metrics_addr: str,
    worker_id: str | None,
    log_level: str,
) -> None:
    """Run the external-task worker until SIGTERM (JSON logs on stderr).

    Fetches tasks of the topics, runs N handlers concurrently, extends locks while loops run,
    and answers: complete with tdeResult/tdeStatus, BPMN errors DAS_GUARDRAIL /
    DAS_INVALID_OUTPUT / DAS_POLICY_DENIED, or handleFailure with the policy's retries.
    Survives engine outages (reconnects with backoff).
    """
    setup_json_logging(log_level)

    if configure_from_env():  # OTEL_EXPORTER_OTLP_ENDPOINT set: spans go out over OTLP/HTTP
        progress("tracing: OpenTelemetry spans exported over OTLP")
    _warm_up()
    config = WorkerConfig(
        topics=_split_topics(topics),
        workers=workers,
        worker_id=worker_id or "",
        lock_duration_ms=lock_ms,
        poll_ms=poll_ms,
        max_tasks_per_fetch=max_tasks,
        prefetch=prefetch,
        model=model,
        policy_file=policy_file,
        grace_s=grace_s,
    )
    metrics = WorkerMetrics()
    if metrics_port:
        serve_metrics(metrics, metrics_port, metrics_addr)
    with EngineClient(engine_url or None, max_connections=workers + 8) as client:
        Worker(client, config, metrics=metrics).run()


def _warm_up() -> None:
    """Import the loop and the model gateway before fetching, so no lock waits on imports."""
    import das.agents.tde_loop  # noqa: F401 - warm-up: loaded before the handler threads start

    try:
        import litellm  # noqa: F401
    except ImportError:  # pragma: no cover - litellm is a dependency
        pass


@click.group()
def kernel() -> None:
    """Start, check and stop the engine and DAS's deployments."""


@kernel.command("up")
@click.option("--engine-url", default=None, help="Engine REST base (default $DAS_ENGINE_URL).")
@click.option(
    "--processes",
    "processes_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Folder of BPMN files to deploy (default processes/).",
)
@click.option("--root", "root_process", default=None, help="Process key of a root orchestrator to start.")
@click.option("--root-vars", default=None, help="JSON object of variables for the root orchestrator.")
@click.option("--detach", is_flag=True, help="Return after deploying; leave the engine running.")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Health check period (s).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def kernel_up(
    engine_url: str | None,
    processes_dir: str | None,
    root_process: str | None,
    root_vars: str | None,
    detach: bool,
    interval: float,
    fmt: str,
) -> None:
    """Validate the environment, start (or adopt) the engine, deploy, then monitor until SIGTERM."""
    from pathlib import Path

    setup_json_logging("INFO")
    variables = {}
    if root_vars:
        try:
            variables = json.loads(root_vars)
        except ValueError as exc:
            raise InvalidInput(f"invalid --root-vars: not JSON ({exc})") from exc
        if not isinstance(variables, dict):
            raise InvalidInput("invalid --root-vars: expected a JSON object")
    k = Kernel(
        engine_url,
        processes_dir=Path(processes_dir) if processes_dir else None,
        root_process=root_process,
        root_variables=variables,
        monitor_interval_s=interval,
    )
    progress(f"kernel: engine at {k.url} ...")
    try:
        report = k.up()
    except BaseException:
        k.shutdown()
        raise
    emit(report, fmt, render_kernel_up)
    if detach:
        k.client.close()
        return
    progress("kernel: monitoring (SIGTERM or Ctrl-C to stop)")
    k.monitor()


@kernel.command("status")
@click.option("--engine-url", default=None)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def kernel_status(engine_url: str | None, fmt: str) -> None:
    """Engine health, deployments, incidents, open external tasks. Exit 1 if the engine is down."""
    data = status(engine_url)
    emit(data, fmt, render_kernel_status)
    if not data.ready:
        raise NegativeResult(f"engine not ready at {data.url}")


@kernel.command("down")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def kernel_down(fmt: str) -> None:
    """Stop a running `kernel up` and the engine the kernel started (never a foreign engine)."""
    stopped = down()
    emit(stopped, fmt, lambda d: f"stopped kernel {d['kernel'] or '-'}, engine {d['engine'] or '-'}")
