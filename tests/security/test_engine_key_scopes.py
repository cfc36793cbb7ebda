"""Red team, engine path without an engine: whose key is it, decided from engine facts.

The handlers are called with ExternalTasks built the way the engine client builds them (from
fetchAndLock JSON) and engine facts shaped like the engine's history answers
(tests/engine_facts.py). The same attacks on the real engine: tests/engine/test_e2e_key_attacks.py.
"""

from __future__ import annotations

import yaml
from engine_facts import FakeFacts, external_task

from das.adapters import adapters
from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec
from das.engine.handlers import (
    HandlerContext,
    handle_adapter,
    handle_compensate,
    handle_tde,
    outcome_for_result,
)
from das.engine.keys import RETRY_KEY_VAR, default_idempotency_key
from das.llm.testmodel import register_script
from das.store import open_store
from das.store.keys import scoped_key
from das.tools import registry
from das.tools.base import Tool

SPEC = {"task_type": "never_declared_anywhere", "prompt": "Do it.", "output_schema": {"type": "object"}}


def _peo_example(facts: FakeFacts) -> dict[str, tuple[str, str]]:
    """peo_example's instance and the template instances its UC steps call (UC-4 fans out to
    two items): name -> (template instance id, its call activity instance id)."""
    peo, _ = facts.start()
    children = {}
    for name, activity in (
        ("UC-1", "call_tde"),
        ("UC-3", "retry_tde"),
        ("UC-2", "generate"),
        ("UC-4 item 1", "fan_out"),
        ("UC-4 item 2", "fan_out"),
    ):
        children[name] = facts.start(caller=peo, call_activity=activity)
    return children


def test_peo_example_uc_steps_get_different_keys_even_with_one_spec_key():
    """Tried: every UC step of peo_example passes the same taskSpec (same idempotency_key), so
    UC-3's retry or UC-4's second item would get UC-1's stored result. Each call activity
    instance is its own namespace: five store keys, with or without a spec key."""
    facts = FakeFacts()
    children = _peo_example(facts)
    with_key, default = set(), set()
    for pid, _call in children.values():
        task = external_task(pid, facts=facts, taskSpec={**SPEC, "idempotency_key": "same"})
        namespace = facts.scope(pid).namespace
        with_key.add(scoped_key(namespace, "same"))
        default.add(scoped_key(namespace, default_idempotency_key(task, facts.multi_instance)))
    assert len(with_key) == len(default) == 5
    uc = {name: facts.scope(pid).namespace for name, (pid, _) in children.items()}
    assert len({uc["UC-1"], uc["UC-2"], uc["UC-3"], uc["UC-4 item 1"]}) == 4


def test_namespace_comes_from_engine_facts_not_variables():
    """Tried: variables that claim another root, caller or call activity (any process author
    writes variables). The scope is what the engine's history says; facts are cached."""
    facts = FakeFacts()
    victim = _peo_example(facts)["UC-1"][0]
    attacker, _ = facts.start()
    task = external_task(
        attacker,
        facts=facts,
        taskSpec=SPEC,
        rootProcessInstanceId=victim,
        superProcessInstanceId=victim,
        callActivityInstanceId="call_tde:x",
    )
    scope = facts.scope(task.process_instance_id)
    assert scope.namespace == f"engine:{attacker}/{attacker}/{attacker}" != facts.scope(victim).namespace
    before = facts.lookups
    facts.scope(attacker)
    assert facts.lookups == before  # cached per process instance


def test_template_retry_passes_continue_one_key_and_parallel_items_never_share_it():
    """Tried: the template's retry loop gives each pass a new activity instance (a new default
    key, so the POST ran again); a multi-instance sibling must not pick up a retried key."""
    facts = FakeFacts()
    pid, _ = facts.start()
    first = external_task(pid, facts=facts, taskSpec=SPEC)
    key = default_idempotency_key(first, facts.multi_instance)
    from das.contracts import TdeResult

    retry = outcome_for_result(
        first,
        TdeResult(status="failed", stop_reason="error", retryable=True, idempotency_key=key),
        _policy("process"),
    )
    chain = retry.variables[RETRY_KEY_VAR].value
    second = external_task(pid, facts=facts, taskSpec=SPEC, **{RETRY_KEY_VAR: chain})
    assert second.activity_instance_id != first.activity_instance_id
    assert default_idempotency_key(second, facts.multi_instance) == key
    done = outcome_for_result(
        second,
        TdeResult(status="succeeded", stop_reason="completed", idempotency_key=key),
        _policy("process"),
    )
    assert done.variables[RETRY_KEY_VAR] is None  # over: a later pass of a loop is a new task
    body = "fanTde#multiInstanceBody:1"
    sibling = external_task(
        pid,
        "probabilistic_tde",
        facts=facts,
        parent=body,
        definition="fan:1:y",
        taskSpec=SPEC,
        **{RETRY_KEY_VAR: chain},
    )
    assert default_idempotency_key(sibling, facts.multi_instance) == sibling.activity_instance_id != key


def _policy(retry_at: str):
    from das.contracts import Policy

    return Policy(retry_at=retry_at)


def test_forged_tderesult_key_reaches_only_its_own_instances_effects(tmp_path, das_home):
    """Tried: process B's das-tde-compensate task carries a tdeResult with instance A's key.
    A's compensation lists A's payment; B's lists none and its adapter is given none."""
    facts = FakeFacts()
    victim, _ = facts.start()
    thief, _ = facts.start()
    box = {
        **registry.TOOLS,
        "pay": Tool("pay", "pays", {"type": "object"}, lambda ctx, args: {"paid": True}, side_effecting=True),
    }
    ops = tmp_path / "ops.yaml"
    ops.write_text("allowed_tools: [finish, pay]\nmax_iterations: 2\n")
    model = register_script(
        "pay-then-stall", [{"tool_calls": [{"name": "pay", "arguments": {"n": 1}}]}, {"text": "thinking"}]
    )
    res = run_tde(
        TaskSpec(task_type="payer", prompt="pay", idempotency_key="pay-shared"),
        model=model,
        policy_file=str(ops),
        tools=box,
        namespace=facts.scope(victim).namespace,
    )
    assert res.status == "compensate_required"
    got = []
    refund = Tool(
        "refund_for_tests", "refunds", {"type": "object"}, lambda ctx, args: got.append(args["effects"])
    )
    (das_home / "tde").mkdir(parents=True, exist_ok=True)
    (das_home / "tde" / "payer.yaml").write_text(
        yaml.safe_dump(
            {"task_type": "payer", "executor": {"kind": "probabilistic", "compensate": "refund_for_tests"}}
        )
    )
    ctx = HandlerContext(adapters={**adapters(), "refund_for_tests": refund}, facts=facts)
    forged = {
        "status": "compensate_required",
        "stop_reason": "max_iterations",
        "idempotency_key": "pay-shared",
    }
    out = handle_compensate(
        external_task(
            thief,
            "compensate_task",
            topic="das-tde-compensate",
            facts=facts,
            tdeResult=forged,
            taskType="payer",
        ),
        ctx,
    )
    assert out.kind == "complete" and got == [[]]  # nothing of A's reached B's compensation
    own = handle_compensate(
        external_task(
            victim,
            "compensate_task",
            topic="das-tde-compensate",
            facts=facts,
            tdeResult=res.model_dump(mode="json"),
            taskType="payer",
        ),
        ctx,
    )
    assert own.kind == "complete" and [e["tool"] for e in got[1]] == ["pay"]
    bad = handle_compensate(
        external_task(
            thief,
            "compensate_task",
            topic="das-tde-compensate",
            facts=facts,
            tdeResult={**forged, "idempotency_key": "../pay-shared"},
            taskType="payer",
        ),
        ctx,
    )
    assert bad.kind == "failure" and bad.retries == 0 and "invalid idempotency key" in bad.message


def test_parent_compensation_reaches_its_called_templates_effects_only():
    """A compensation handler on peo_example's call activity undoes what the template it called
    did (its namespace covers the instances it called), never a sibling process's."""
    facts = FakeFacts()
    children = _peo_example(facts)
    peo = facts.instances[children["UC-1"][0]]["superProcessInstanceId"]
    other_peo_child = _peo_example(facts)["UC-1"][0]
    reach = facts.compensation_namespaces(external_task(peo, "call_tde_compensate", facts=facts))
    assert facts.scope(children["UC-1"][0]).namespace in reach
    assert facts.scope(other_peo_child).namespace not in reach


def test_spec_key_in_a_process_variable_is_refused_as_an_incident():
    """Tried: a taskSpec variable whose key is `..`: an incident at once (0 retries), like any
    invalid spec; nothing runs."""
    facts = FakeFacts()
    pid, _ = facts.start()
    out = handle_tde(
        external_task(pid, facts=facts, taskSpec={**SPEC, "idempotency_key": ".."}),
        HandlerContext(model="test/auto", facts=facts),
    )
    assert out.kind == "failure" and out.retries == 0 and "idempotency_key" in (out.message or "")


def test_adapter_effects_are_kept_per_instance(das_home):
    """Two instances run the same deterministic side-effecting adapter with the same inputs:
    each is its own effect (the old key was the instance id + activity instance, now the same
    digest scheme as the loop), and a re-delivery of one replays it."""
    from das.adapters import deterministic_entries

    facts = FakeFacts()
    sent = []
    entries = deterministic_entries()
    topic = next((t for t, e in entries.items() if e.executor.adapter == "http"), None)
    assert topic is not None, (
        "processes/tde/http_fetch.yaml (the registry's deterministic http entry) is missing"
    )
    entry = entries[topic]
    fake_http = Tool(
        "http",
        "sends",
        {"type": "object"},
        lambda ctx, args: sent.append(ctx.idempotency_key) or {},
        side_effecting=True,
    )
    ctx = HandlerContext(adapters={**adapters(), entry.executor.adapter: fake_http}, facts=facts)
    first, _ = facts.start()
    second, _ = facts.start()
    inputs = {"url": "https://example.org/x"}
    task_a = external_task(first, "step", topic=topic, facts=facts, inputs=inputs)
    handle_adapter(task_a, ctx)
    handle_adapter(task_a, ctx)  # re-delivered: replayed
    handle_adapter(external_task(second, "step", topic=topic, facts=facts, inputs=inputs), ctx)
    assert len(sent) == 2 and len(set(sent)) == 2 and all(len(k) == 64 for k in sent)
    assert open_store().effects("done") and all(
        e["call_key"].split(":")[0] in sent for e in open_store().effects()
    )
