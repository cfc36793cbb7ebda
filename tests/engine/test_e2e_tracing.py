"""OpenTelemetry: one TDE task through the real engine and the worker yields one trace
task -> loop -> model call -> answer, carrying the process instance id and token counts."""

from __future__ import annotations

import pytest
from engine_helpers import deploy_tde_min, wait_for
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.engine
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # the global provider can be set once per process
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(EXPORTER))


def test_a_tde_task_is_one_trace_with_engine_ids_and_token_counts(engine_client, run_worker, unique) -> None:
    topic = f"das-tde-{unique}"
    key, _ = deploy_tde_min(engine_client, unique, topic)
    spec = {"task_type": "summarize", "prompt": "Summarise the text.", "inputs": {"text": "tracing test"}}
    EXPORTER.clear()
    pid = engine_client.start_process(key, {"taskSpec": spec, "correlationId": f"trace-{unique}"})["id"]
    worker = run_worker(topic)
    wait_for(
        lambda: engine_client.history_process_instances(processInstanceId=pid)[0]["state"] == "COMPLETED",
        60,
        what="the instance completed",
    )
    wait_for(
        lambda: any(
            s.name.startswith("das.task") and s.attributes.get("das.process_instance_id") == pid
            for s in EXPORTER.get_finished_spans()
        ),
        10,
        what="the task span ended",
    )
    spans = [s for s in EXPORTER.get_finished_spans()]
    task = next(
        s for s in spans if s.name == f"das.task {topic}" and s.attributes["das.process_instance_id"] == pid
    )
    mine = [s for s in spans if s.context.trace_id == task.context.trace_id]
    names = [s.name for s in mine]
    assert "das.tde summarize" in names and "das.answer complete" in names
    chats = [s for s in mine if s.name.startswith("chat ")]
    assert chats and all(s.attributes["gen_ai.operation.name"] == "chat" for s in chats)
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats) > 0
    loop = next(s for s in mine if s.name == "das.tde summarize")
    assert loop.parent is not None and loop.parent.span_id == task.context.span_id
    assert (
        loop.attributes["das.idempotency_key"] and loop.attributes["das.correlation_id"] == f"trace-{unique}"
    )
    assert task.attributes["das.activity_id"] == "tde" and task.attributes["das.outcome"] == "complete"
    assert task.attributes["gen_ai.usage.input_tokens"] == loop.attributes["gen_ai.usage.input_tokens"] > 0
    assert worker.metrics.value("das_worker_task_type_tokens_total", task_type="summarize", kind="input") > 0
