"""Worker throughput on the real engine, like for like: DAS vs the PyPI client vs raw HTTP.

Three contenders drain N pre-started process instances on the same engine in the same run,
and every one of them completes each task with the same variables: the ``tdeResult`` Json
(and flat ``tdeStatus``) that DAS writes, captured from DAS's own warm-up round.
  (a) raw: an httpx fetchAndLock/complete loop (long polling, batches): the engine's own limit;
  (b) pypi: ``camunda-external-task-client-python3`` with a handler that completes with that payload;
  (c) das: ``das serve``'s Worker running the full TDE loop on the test model (guardrails,
      trace, idempotency store).
We time from the first fetch to the last completed instance; rounds are interleaved and the
best of each side counts. Goals: das >= 1.0x pypi and >= 0.9x raw.

    python bench/worker_throughput.py [--tasks 1000] [--workers 8] [--engine-url URL]

Without --engine-url it builds and starts the engine (H2 in a temp dir) and stops it after.
Needs: pip install camunda-external-task-client-python3 (the project's test extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("DAS_ALLOW_MODEL_REQUESTS", "0")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d_{key}" targetNamespace="http://procos.org/bench">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="s" /><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="t" />
    <bpmn:serviceTask id="t" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:sequenceFlow id="b" sourceRef="t" targetRef="e" /><bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>"""

SPEC = {
    "task_type": "summarize",
    "prompt": "Summarise the text.",
    "inputs": {"text": "DAS runs guarded LLM loops as external tasks of BPMN processes."},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finished(client, key: str) -> int:
    return client.request(
        "GET", "/history/process-instance/count", params={"processDefinitionKey": key, "finished": True}
    )["count"]


def prepare(client, key: str, topic: str, n: int) -> None:
    client.deploy(f"bench-{key}", {f"{key}.bpmn": BPMN.format(key=key, topic=topic)})
    variables = {"taskSpec": SPEC} if "das" in key else {"payload": "x"}
    for _ in range(n):
        client.start_process(key, variables)


def wait_done(client, key: str, n: int, timeout_s: float) -> float:
    start = time.monotonic()
    while finished(client, key) < n:
        if time.monotonic() - start > timeout_s:
            raise SystemExit(f"{key}: only {finished(client, key)}/{n} finished after {timeout_s}s")
        time.sleep(0.05)
    return time.monotonic()


def run_baseline(
    url: str, client, key: str, topic: str, n: int, max_tasks: int, payload: dict | None = None
) -> float:
    from camunda.external_task.external_task_worker import ExternalTaskWorker

    logging.getLogger("camunda").setLevel(logging.WARNING)
    config = {
        "maxTasks": max_tasks,
        "lockDuration": 30000,
        "asyncResponseTimeout": 2000,
        "sleepSeconds": 1,
        "isDebug": False,
    }
    worker = ExternalTaskWorker(worker_id="pypi-baseline", base_url=url, config=config)
    started = time.monotonic()
    # typed values ({"value", "type"}) pass through the client's Variables.format unchanged
    threading.Thread(
        target=worker.subscribe, args=([topic], lambda task: task.complete(dict(payload or {}))), daemon=True
    ).start()  # subscribe() never returns; the thread dies with us
    end = wait_done(client, key, n, 1800)
    return n / (end - started)


def run_raw(
    url: str, client, key: str, topic: str, n: int, threads: int, max_tasks: int, payload: dict
) -> float:
    """The engine's own limit: fetchAndLock (long polling) and complete over kept-alive HTTP."""
    import httpx

    stop = threading.Event()

    def loop(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                tasks = http.post(
                    "/external-task/fetchAndLock",
                    json={
                        "workerId": f"raw-{i}",
                        "maxTasks": max_tasks,
                        "asyncResponseTimeout": 2000,
                        "topics": [{"topicName": topic, "lockDuration": 30000}],
                    },
                ).json()
                for task in tasks:
                    http.post(
                        f"/external-task/{task['id']}/complete",
                        json={"workerId": f"raw-{i}", "variables": payload},
                    ).raise_for_status()

    started = time.monotonic()
    pool = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    end = wait_done(client, key, n, 1800)
    stop.set()
    return n / (end - started)


def run_das(
    client_factory,
    key: str,
    topic: str,
    n: int,
    workers: int,
    max_tasks: int,
    handler=None,
    capture: dict | None = None,
):
    from das.camunda.variables import to_variables
    from das.engine.handlers import TOPIC_TDE, builtin_handlers
    from das.engine.worker import Worker, WorkerConfig

    client = client_factory()
    if capture is not None:  # keep the typed variables of one real completion (the payload to match)
        real_complete = client.complete

        def complete(task_id, worker_id, variables=None, local_variables=None):
            if not capture and variables:
                capture.update(to_variables(dict(variables)))
            return real_complete(task_id, worker_id, variables, local_variables)

        client.complete = complete
    handlers = builtin_handlers()
    if handler is not None:
        handlers = handlers.with_handler("noop", handler, ["taskSpec"])
    config = WorkerConfig(
        topics=[f"{topic}={'noop' if handler else TOPIC_TDE}"],
        workers=workers,
        model="test/auto",
        poll_ms=2000,
        max_tasks_per_fetch=max_tasks,
        grace_s=5,
    )
    worker = Worker(client, config, handlers=handlers)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    started = time.monotonic()
    thread.start()
    end = wait_done(client, key, n, 1800)
    worker.stop()
    thread.join(timeout=30)
    client.close()
    return n / (end - started), worker.metrics


def _noop(task, ctx):
    from das.engine.handlers import Outcome

    return Outcome("complete")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8, help="DAS handler threads")
    parser.add_argument("--max-tasks", type=int, default=10, help="maxTasks per fetch, both workers")
    parser.add_argument("--engine-url", default=None, help="use a running engine instead of starting one")
    parser.add_argument(
        "--java-opts",
        choices=["fast-start", "default"],
        default="default",
        help="JVM options of the started engine (engine_process presets)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best of each side counts")
    parser.add_argument("--noop", action="store_true", help="also time the DAS worker with a no-op handler")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from das.agents import tde_loop  # noqa: F401 - warm imports before timing
    from das.camunda.client import EngineClient
    from das.camunda.engine_process import DEFAULT_JAVA_OPTS, FAST_START_JAVA_OPTS, EngineProcess

    tmp = Path(tempfile.mkdtemp(prefix="das-bench-"))
    os.environ["DAS_HOME"] = str(tmp / "home")
    engine = None
    url = args.engine_url
    if not url:
        url = f"http://127.0.0.1:{free_port()}/engine-rest"
        opts = FAST_START_JAVA_OPTS if args.java_opts == "fast-start" else DEFAULT_JAVA_OPTS
        engine = EngineProcess(url, data_dir=tmp / "engine-data", log_path=tmp / "engine.log", java_opts=opts)
        engine.start()
        print(f"engine started in {engine.startup_s:.1f}s at {url}", file=sys.stderr)
    client = EngineClient(url, max_connections=args.workers + 8)
    try:
        run = f"{int(time.time())}"
        factory = lambda: EngineClient(url, max_connections=args.workers + 8)  # noqa: E731

        payload: dict = {}

        def das_round(tag: str, n: int, handler=None) -> float:
            prepare(client, f"das_{tag}_{run}", f"das-{tag}-{run}", n)
            rate, _ = run_das(
                factory,
                f"das_{tag}_{run}",
                f"das-{tag}-{run}",
                n,
                args.workers,
                args.max_tasks,
                handler,
                capture=payload,
            )
            return rate

        def base_round(tag: str, n: int) -> float:
            prepare(client, f"base_{tag}_{run}", f"base-{tag}-{run}", n)
            return run_baseline(
                url, client, f"base_{tag}_{run}", f"base-{tag}-{run}", n, args.max_tasks, payload
            )

        def raw_round(tag: str, n: int) -> float:
            prepare(client, f"raw_{tag}_{run}", f"raw-{tag}-{run}", n)
            return run_raw(
                url, client, f"raw_{tag}_{run}", f"raw-{tag}-{run}", n, args.workers, args.max_tasks, payload
            )

        # warm-up: JIT in the engine, imports and litellm in DAS; DAS's round captures the payload
        das_round("warm", 100)
        assert "tdeResult" in payload, payload
        base_round("warm", 100)
        raw_round("warm", 100)
        base_rates, das_rates, raw_rates, noop_rates = [], [], [], []
        for r in range(args.rounds):  # interleaved, so load from elsewhere hits every side alike
            raw_rates.append(raw_round(f"r{r}", args.tasks))
            base_rates.append(base_round(f"r{r}", args.tasks))
            das_rates.append(das_round(f"r{r}", args.tasks))
            print(
                f"round {r + 1}: raw {raw_rates[-1]:.1f}/s, pypi {base_rates[-1]:.1f}/s, DAS {das_rates[-1]:.1f}/s",
                file=sys.stderr,
            )
        if args.noop:
            noop_rates.append(das_round("noop", args.tasks, _noop))
        base_rate, das_rate, raw_rate = max(base_rates), max(das_rates), max(raw_rates)
        result = {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "das_workers": args.workers,
            "max_tasks": args.max_tasks,
            "payload_bytes": len(json.dumps(payload)),
            "raw_tasks_per_s": round(raw_rate, 1),
            "baseline_tasks_per_s": round(base_rate, 1),
            "das_tasks_per_s": round(das_rate, 1),
            "ratio": round(das_rate / base_rate, 2),
            "ratio_vs_raw": round(das_rate / raw_rate, 2),
            "all_raw": [round(x, 1) for x in raw_rates],
            "all_baseline": [round(x, 1) for x in base_rates],
            "all_das": [round(x, 1) for x in das_rates],
            "das_noop_handler_tasks_per_s": round(noop_rates[0], 1) if noop_rates else None,
            "engine_startup_s": round(engine.startup_s, 1) if engine and engine.startup_s else None,
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"tasks per run: {args.tasks}, rounds: {args.rounds} (best of each side reported)")
            print(f"every contender completes with the same {result['payload_bytes']}-byte tdeResult payload")
            print(f"raw httpx fetchAndLock/complete loop: {result['raw_tasks_per_s']} tasks/s")
            print(f"pypi camunda-external-task-client-python3: {result['baseline_tasks_per_s']} tasks/s")
            print(
                f"DAS worker ({args.workers} handlers, TDE loop with test model, guardrails, trace, "
                f"idempotency store): {result['das_tasks_per_s']} tasks/s"
            )
            if noop_rates:
                print(f"DAS worker with a no-op handler: {result['das_noop_handler_tasks_per_s']} tasks/s")
            print(
                f"ratio DAS/pypi: {result['ratio']}x (goal >= 1.0), DAS/raw: {result['ratio_vs_raw']}x (goal >= 0.9)"
            )
    finally:
        client.close()
        if engine:
            engine.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
