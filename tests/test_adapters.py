"""Deterministic adapters: found by entry point, served per registry entry, under the policy."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from engine_facts import FakeFacts

from das.adapters import adapters, deterministic_entries
from das.camunda.client import ExternalTask
from das.engine.handlers import HandlerContext, default_handlers, handle_adapter
from das.tools.base import Tool


def task(topic: str, **variables) -> ExternalTask:
    return ExternalTask.from_json(
        {
            "id": "t1",
            "topicName": topic,
            "workerId": "w",
            "retries": None,
            "processInstanceId": "pi1",
            "activityId": "s1",
            "activityInstanceId": "s1:ai1",
            "businessKey": None,
            "priority": 0,
            "variables": {
                k: {"type": "Json", "value": json.dumps(v)}
                if isinstance(v, dict | list)
                else {"type": "String", "value": v}
                for k, v in variables.items()
            },
        }
    )


def engine_ctx(**kw) -> HandlerContext:
    """A handler context whose engine facts say pi1 is a top-level instance (no engine here)."""
    facts = FakeFacts()
    facts.instances["pi1"] = {"id": "pi1", "rootProcessInstanceId": "pi1", "superProcessInstanceId": None}
    return HandlerContext(facts=facts, **kw)


def test_shipped_adapters_come_from_entry_points_and_every_deterministic_entry_is_served():
    assert {"http", "json_transform", "render_template"} <= set(adapters())
    topics = set(deterministic_entries())
    assert {"das-tde-json_transform", "das-tde-render_template", "das-tde-http_fetch"} <= topics
    assert topics <= set(default_handlers())


def test_json_transform_maps_inputs_and_outputs():
    t = task(
        "das-tde-json_transform",
        tdeInputs='{"data": "order", "path": "p"}',
        tdeOutputs='{"result": "amount"}',
        order={"a": [{"b": 7}]},
        p="a[0].b",
    )
    out = handle_adapter(t, engine_ctx())
    assert (
        out.kind == "complete" and out.variables["amount"] == 7 and out.variables["tdeStatus"] == "succeeded"
    )


def test_inputs_that_do_not_match_the_schema_are_a_bpmn_error():
    out = handle_adapter(task("das-tde-json_transform", inputs={"path": "x"}), engine_ctx())
    assert (out.kind, out.error_code) == ("bpmn_error", "DAS_INVALID_INPUT")


def test_http_adapter_applies_the_egress_policy():
    out = handle_adapter(task("das-tde-http_fetch", inputs={"url": "http://127.0.0.1:9/admin"}), engine_ctx())
    assert (out.kind, out.error_code) == ("bpmn_error", "DAS_POLICY_DENIED")


def test_a_plugin_adapter_serves_an_approved_wrapper(das_home: Path):
    calls = []
    noop = Tool(
        "noop_for_tests",
        "records its call",
        {"type": "object"},
        lambda ctx, args: calls.append(args) or {"done": True},
        side_effecting=True,
    )
    ctx = engine_ctx(adapters={**adapters(), "noop_for_tests": noop})
    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / "noop_step.yaml").write_text(
        yaml.safe_dump(
            {
                "task_type": "noop_step",
                "executor": {"kind": "adapter", "adapter": "noop_for_tests"},
                "output_schema": {"type": "object"},
            }
        )
    )
    assert "das-tde-noop_step" in deterministic_entries()
    t = task("das-tde-noop_step", inputs={"n": 1})
    assert handle_adapter(t, engine_ctx()).kind == "failure"  # not installed: the worker's set lacks it
    assert handle_adapter(t, ctx).kind == "complete"
    assert handle_adapter(t, ctx).kind == "complete"  # a re-fetch of the same task
    assert calls == [{"n": 1}]  # side effects at most once per idempotency key
