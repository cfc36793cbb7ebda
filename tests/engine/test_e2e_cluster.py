"""Scale-out on real parts: two engine nodes on one PostgreSQL database, three `das serve`
workers sharing one PostgreSQL store, 200 instances of a probabilistic TDE process with a
side-effecting tool; one engine node and one worker are SIGKILLed mid-run.

A worker killed between sending the side effect and recording it leaves an effect whose
outcome is unknown; DAS never repeats it on its own, so that task stops with an incident.
The test then does what the operator runbook says (docs/SCALING.md): looks at the receiver's
log, `das effects resolve KEY --as done|not-done`, and retries the incident. Checked: every
instance completes, each idempotency key has one result, and the side effect ran exactly
once per instance.
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from engine_helpers import deploy_tde_min, start_engine_process, wait_for
from needs import NO_POSTGRES, missing

from das.camunda.client import EngineClient
from das.store.db import Store

pytestmark = pytest.mark.engine
INSTANCES = int(os.environ.get("DAS_CLUSTER_INSTANCES", "200"))


class Serve:
    def __init__(self, home: Path, engine_url: str, store_url: str, topic: str, ops: Path, name: str) -> None:
        self.log = home / f"serve-{name}.log"
        env = {
            **os.environ,
            "DAS_HOME": str(home / name),
            "DAS_ENGINE_URL": engine_url,
            "DAS_STORE_URL": store_url,
            "DAS_ALLOW_MODEL_REQUESTS": "0",
            "DAS_TEST_SCRIPTS": str(home / "scripts"),
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "das",
                    "serve",
                    "--topics",
                    f"{topic}=das-tde-probabilistic",
                    "--model",
                    "test/effect",
                    "--poll-ms",
                    "500",
                    "--lock-ms",
                    "4000",
                    "--workers",
                    "4",
                    "--policy",
                    str(ops),
                    "--worker-id",
                    name,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


def test_two_engines_three_workers_one_postgres_survive_sigkills(
    pg_server, tmp_path: Path, unique: str
) -> None:
    if pg_server is None:
        missing("DAS_REQUIRE_POSTGRES", NO_POSTGRES)
    hits: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    class Effect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                hits[self.headers.get("x-correlation-id") or "?"] += 1
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args: object) -> None:
            pass

    effect_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Effect)
    threading.Thread(target=effect_server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{effect_server.server_address[1]}/effect"
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "effect.json").write_text(
        json.dumps(
            {
                "steps": [
                    {
                        "sleep_s": 0.05,
                        "tool_calls": [
                            {
                                "name": "http_request",
                                "arguments": {"method": "POST", "url": url, "json": {"n": 1}},
                            }
                        ],
                    },
                    {"sleep_s": 0.05, "auto_finish": True},
                ],
                "repeat_last": True,
            }
        )
    )
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        f"allowed_endpoints: ['{url}']\nallowed_methods: [GET, POST]\nallowed_tools: [finish, http_request]\n"
    )

    engine_db = pg_server.new_database()
    jdbc = "jdbc:postgresql://127.0.0.1:" + engine_db.split(":")[-1]  # "PORT/dbname"
    store_url = pg_server.new_database()
    Store(store_url)  # migrate once before the workers race to
    node_a = start_engine_process(tmp_path / "node-a", jdbc_url=jdbc, jdbc_user="das", jdbc_password="")
    node_b = start_engine_process(tmp_path / "node-b", jdbc_url=jdbc, jdbc_user="das", jdbc_password="")
    workers: list[Serve] = []
    try:
        a, b = EngineClient(node_a.url), EngineClient(node_b.url)
        topic = f"das-tde-{unique}"
        key, _ = deploy_tde_min(a, unique, topic)  # deployed once, seen by both nodes (one database)
        spec = {"task_type": "effect_poster", "prompt": "Post the effect, then finish.", "inputs": {}}
        pids = [
            (a if i % 2 else b).start_process(key, {"taskSpec": spec, "correlationId": f"{unique}-{i}"})["id"]
            for i in range(INSTANCES)
        ]
        workers = [
            Serve(tmp_path, node_a.url, store_url, topic, ops, "w1"),
            Serve(tmp_path, node_b.url, store_url, topic, ops, "w2"),
            Serve(tmp_path, node_a.url, store_url, topic, ops, "w3"),
        ]

        def done_count() -> int:
            return len(
                a.history_process_instances(
                    processDefinitionKey=key, finished="true", maxResults=INSTANCES + 10
                )
            )

        wait_for(lambda: done_count() >= INSTANCES // 4, 300, 0.5, what="a quarter of the instances done")
        node_b.proc.send_signal(signal.SIGKILL)  # an engine node dies mid-run ...
        node_b.proc.wait(timeout=30)
        workers[0].kill()  # ... and so does a worker, tasks locked

        def settled() -> bool:
            return done_count() + len(a.incidents(processDefinitionKey=key)) >= INSTANCES

        wait_for(settled, 600, 1.0, what="every instance completed or stopped on an unknown outcome")
        resolved = _operator_resolves_unknown_effects(a, key, store_url, hits, tmp_path)
        wait_for(
            lambda: done_count() >= INSTANCES, 300, 1.0, what="every instance completed on the surviving node"
        )
        states = collections.Counter(
            a.history_process_instances(processInstanceId=p)[0]["state"] for p in pids
        )
        assert states == {"COMPLETED": INSTANCES}, states
        ends = collections.Counter(
            act["activityId"]
            for act in a.history_activity_instances(
                processDefinitionKey=key, activityType="noneEndEvent", maxResults=INSTANCES * 2
            )
        )
        assert ends == {"ok": INSTANCES}, ends  # each one succeeded, none through an error path
    finally:
        for w in workers:
            w.kill()
        node_a.stop()
        node_b.stop()
        effect_server.shutdown()

    store = Store(store_url)
    per_key = dict(
        store.db.execute("SELECT idempotency_key, count(*) FROM traces GROUP BY idempotency_key").fetchall()
    )
    assert len(per_key) == INSTANCES
    # one run per key, two only where the operator resolved an unknown effect and retried
    assert {k for k, n in per_key.items() if n > 1} <= {c.rsplit(":", 1)[0] for c in resolved}, per_key
    succeeded = store.db.execute("SELECT count(*) FROM results WHERE status = 'succeeded'").fetchone()[0]
    assert succeeded == INSTANCES
    assert len(hits) == INSTANCES and max(hits.values()) == 1, hits.most_common(3)  # each effect exactly once
    print(
        f"\ncluster: {INSTANCES} instances, {len(resolved)} unknown effect(s) resolved by the operator step"
    )


def _operator_resolves_unknown_effects(
    client: EngineClient, key: str, store_url: str, hits: collections.Counter[str], tmp_path: Path
) -> list[str]:
    """The runbook: for each effect of unknown outcome, the receiver's log decides done or not
    done (`das effects resolve`), then the incident's task gets one more retry."""
    store = Store(store_url)
    pending = [e for e in store.effects() if e["state"] in ("started", "unknown")]
    env = {**os.environ, "DAS_STORE_URL": store_url, "DAS_HOME": str(tmp_path / "operator")}
    for effect in pending:
        task_key = effect["call_key"].rsplit(":", 1)[0]
        row = store.db.execute(
            "SELECT correlation_id FROM traces WHERE idempotency_key = ?", (task_key,)
        ).fetchone()
        outcome = "done" if row is not None and hits.get(row[0], 0) > 0 else "not-done"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "das",
                "effects",
                "resolve",
                effect["call_key"],
                "--as",
                outcome,
                "--note",
                "receiver log checked",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
    for incident in client.incidents(processDefinitionKey=key):
        client.set_external_task_retries(incident["configuration"], 1)
    return [e["call_key"] for e in pending]
