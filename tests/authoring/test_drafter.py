"""Drafting and repair with the scripted test model. Each script names the mistakes it plays;
DAS's compiler, validator and simulator are real."""

import json

import pytest

from das.authoring.drafter import DraftFailed, draft_proposal, rebase_proposal
from das.authoring.queue import Queue
from das.bpmn.compile import compile_to_xml
from das.identity import Principal
from das.llm.testmodel import register_script

ALICE = Principal("alice", "author", "token")

GOOD = {
    "key": "x",
    "name": "Invoice",
    "steps": [
        {"type": "tde", "name": "Check invoice", "task_type": "classify", "mode": "probabilistic"},
        {
            "type": "choice",
            "name": "Amount?",
            "branches": [
                {
                    "condition": {"variable": "amount", "op": ">", "value": 1000},
                    "steps": [{"type": "user", "name": "Approve"}],
                }
            ],
        },
        {"type": "external", "name": "Pay", "topic": "payment"},
    ],
}


def text(doc):
    return {"text": json.dumps(doc)}


def test_new_draft_repairs_typical_mistakes_within_the_bound_and_traces_every_attempt():
    no_condition = json.loads(json.dumps(GOOD))
    del no_condition["steps"][1]["branches"][0]["condition"]  # a choice with neither condition nor default
    no_topic = json.loads(json.dumps(GOOD))
    del no_topic["steps"][2]["topic"]  # a task without a topic
    model = register_script(
        "draft-mistakes", [{"text": "{not json"}, text(no_condition), text(no_topic), text(GOOD)]
    )
    proposal = draft_proposal("Invoice approval", key="invoice_x", author=ALICE, model=model, max_repairs=3)
    trace = proposal.draft_trace
    assert [a["ok"] for a in trace] == [False, False, False, True]
    assert "not valid JSON" in trace[0]["problems"][0]
    assert any("condition" in p for p in trace[1]["problems"])
    assert any("topic" in p for p in trace[2]["problems"])
    assert proposal.version == "1.0.0" and proposal.base_version is None and proposal.status == "proposed"
    assert proposal.validation.valid is True
    assert proposal.simulation is not None and proposal.simulation.completed == proposal.simulation.runs > 0
    assert proposal.value_measure.repair_attempts == 3 and proposal.evidence[0].prompt == "Invoice approval"
    assert proposal.diff is not None and proposal.diff.text == "new process invoice_x (no base version)"


def test_when_repair_cannot_converge_nothing_is_filed_and_the_error_has_the_last_findings():
    model = register_script("always-bad", [{"text": "{not json"}])
    with pytest.raises(
        DraftFailed, match=r"did not converge after 2 repair attempt\(s\); nothing was filed.*not valid JSON"
    ):
        draft_proposal("Invoice approval", key="invoice_y", model=model, max_repairs=2)
    assert Queue().list() == []


def seed_invoice(queue: Queue) -> None:
    doc = {
        "key": "invoice",
        "name": "Invoice",
        "steps": [
            {"type": "tde", "name": "Check invoice", "task_type": "classify", "mode": "probabilistic"},
            {"type": "user", "name": "Approve"},
            {"type": "external", "name": "Pay", "topic": "payment"},
        ],
    }
    queue.seed_version("invoice", "1.2.0", compile_to_xml(doc))


TIMEOUT_OPS = {
    "ops": [
        {
            "op": "add_element",
            "id": "pay_timeout",
            "type": "boundaryEvent",
            "name": "30 minutes",
            "attached_to": "s3",
            "event_definition": "timer",
            "timer": {"kind": "timeDuration", "value": "PT30M"},
        },
        {"op": "add_element", "id": "end_timeout", "type": "endEvent", "name": "Payment timed out"},
        {"op": "connect", "source": "pay_timeout", "target": "end_timeout"},
    ]
}


def test_edit_by_chat_applies_atomic_edits_and_the_diff_shows_only_the_change():
    queue = Queue()
    seed_invoice(queue)
    dangling = {
        "ops": [{"op": "connect", "source": "s3", "target": "nowhere"}]
    }  # an edit with a dangling flow
    gap = {"ops": [{"op": "remove_element", "id": "s2"}]}  # leaves Pay unreachable from the start
    model = register_script("edit-timeout", [text(dangling), text(gap), text(TIMEOUT_OPS)])
    proposal = draft_proposal(
        "add a 30-minute timeout to the payment step",
        base="invoice@1.2.0",
        author=ALICE,
        model=model,
        queue=queue,
    )
    assert [a["ok"] for a in proposal.draft_trace] == [False, False, True]
    assert "nowhere" in proposal.draft_trace[0]["problems"][0]
    assert (proposal.base_version, proposal.version) == ("1.2.0", "1.3.0")
    assert proposal.diff is not None
    entries = proposal.diff.entries
    assert all(e.change == "added" for e in entries)  # nothing removed or changed
    assert {e.id for e in entries if e.kind != "flow"} == {"pay_timeout", "end_timeout"}
    from das.bpmn.parse import parse

    new = parse(proposal.artifact.encode(), name="new")
    [flow_entry] = [e for e in entries if e.kind == "flow"]
    flow = new.flows[flow_entry.id]
    assert (flow.source, flow.target) == ("pay_timeout", "end_timeout")
    assert new.nodes["pay_timeout"].attached_to == "s3" and "PT30M" in proposal.artifact
    assert [op["op"] for op in proposal.edit_ops] == ["add_element", "add_element", "connect"]
    assert proposal.edit_ops[0]["attached_to"] == "s3" and proposal.edit_ops[2]["target"] == "end_timeout"


def test_stale_proposal_is_rebased_by_reapplying_its_edits():
    queue = Queue()
    seed_invoice(queue)
    model = register_script("edit-timeout-2", [text(TIMEOUT_OPS)])
    first = draft_proposal("add a timeout", base="invoice@1.2.0", author=ALICE, model=model, queue=queue)
    # meanwhile someone else's 1.3.0 is deployed
    queue.seed_version("invoice", "1.3.0", queue.artifact_of("invoice", "1.2.0"))
    rebased = rebase_proposal(queue, first.id, ALICE)
    assert (rebased.base_version, rebased.version) == ("1.3.0", "1.4.0")
    assert rebased.history[-1].action == "rebased" and rebased.validation.valid


def test_unknown_base_is_a_usage_error():
    from das.errors import UsageError

    with pytest.raises(UsageError, match="no process nope@1.0.0 is known"):
        draft_proposal("change it", base="nope@1.0.0", model="test/auto")


def test_queue_show_presents_findings_simulation_and_diff(das_home):
    import subprocess
    import sys

    queue = Queue()
    seed_invoice(queue)
    model = register_script("edit-show", [text(TIMEOUT_OPS)])
    proposal = draft_proposal("add a timeout", base="invoice@1.2.0", author=ALICE, model=model, queue=queue)
    env = {**__import__("os").environ, "DAS_HOME": str(das_home)}
    shown = subprocess.run(
        [sys.executable, "-m", "das", "queue", "show", proposal.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    sim = proposal.simulation
    assert sim is not None
    assert f"validation: valid ({len(proposal.validation.findings)} findings)" in shown
    assert f"simulation: {sim.completed}/{sim.runs} runs completed" in shown
    assert "diff against base:" in shown and "pay_timeout" in shown.split("diff against base:")[1]
    assert "boundaryEvent" in shown and "history:" in shown
    as_json = json.loads(
        subprocess.run(
            [sys.executable, "-m", "das", "queue", "show", proposal.id, "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        ).stdout
    )
    assert as_json["validation"]["valid"] is True and as_json["simulation"]["runs"] == sim.runs
    assert {e["id"] for e in as_json["diff"]["entries"]} >= {"pay_timeout", "end_timeout"}
