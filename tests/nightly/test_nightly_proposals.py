"""Deterministic ops give valid, simulatable BPMN; filing, dedup, curator fallback, the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from nightly_fakes import KEY, XML, FakeClient, incident, log, normal_instance

from das.authoring.drafter import check_xml
from das.authoring.queue import ApprovalRefused, Queue
from das.bpmn.edits import apply_edits
from das.bpmn.parse import parse
from das.bpmn.write import to_string
from das.identity import Principal
from das.llm.testmodel import register_script
from das.nightly.mining import mine
from das.nightly.proposals import file_proposals, plan_for


def history() -> FakeClient:
    acts = []
    for i in range(20):
        acts += normal_instance(f"pi-{i}", review_ms=3_600_000 if i >= 18 else 60_000)
    rows = [
        log(0, "t1"),
        log(1, "t1", failure=True, retries=2),
        log(2, "t1", success=True),
        log(3, "t2"),
        log(4, "t2", failure=True, retries=0),
    ]
    return FakeClient(
        incidents=[incident(i) for i in range(2)] + [incident(2, task="t2")], task_log=rows, activities=acts
    )


@pytest.mark.parametrize("refactor", ["add_error_boundary", "add_retry", "add_timeout"])
def test_each_refactor_yields_valid_simulatable_bpmn(refactor):
    defs = parse(XML.encode(), name="x.bpmn")
    finding = next(f for f in mine(history(), keys=[KEY]) if f.refactor == refactor)
    plan = plan_for(finding, defs)
    assert plan is not None and plan.value.how
    new = apply_edits(defs, plan.ops)
    cand = check_xml(to_string(new), KEY)
    assert cand.ok, cand.problems
    if refactor == "add_timeout":
        timer = new.nodes["review_nightly_timeout"]
        assert timer.attached_to == "review" and timer.event_definitions[0].timer == {"timeDuration": "PT3M"}
        assert plan.value.instances_over_timeout == 2 and plan.value.p95_ms_with_timeout == 180_000
    if refactor == "add_error_boundary":
        assert new.nodes["charge_nightly_error"].event_kinds() == ["error"]
        assert {(f.source, f.target) for f in new.flows.values()} >= {
            ("charge_nightly_error", "charge_nightly_resolve"),
            ("charge_nightly_resolve", "charge_nightly_failed"),
        }
    if refactor == "add_retry":
        assert new.nodes["charge"].input_parameters["retries"] == "3"
        assert plan.value.observed_recovery_rate == 0.5 and plan.value.incidents_avoided_estimate == 0.5


def test_filing_is_nightly_by_das_deduplicated_and_das_cannot_approve():
    client, queue = history(), Queue()
    results = file_proposals(client, mine(client, keys=[KEY]), queue=queue)
    filed = {r.fingerprint: r for r in results if r.status == "filed"}
    assert set(filed) == {
        f"{KEY}:charge:add_error_boundary",
        f"{KEY}:charge:add_retry",
        f"{KEY}:review:add_timeout",
    }
    p = queue.get(filed[f"{KEY}:charge:add_error_boundary"].proposal_id)
    assert (p.origin, p.author, p.base_version, p.version, p.status) == (
        "nightly",
        "das",
        "1.0.0",
        "1.1.0",
        "proposed",
    )
    ev = p.evidence[0]
    assert ev.kind == "incidents" and ev.fingerprint == f"{KEY}:charge:add_error_boundary" and ev.details
    assert ev.details["incidents"] == 3 and p.value_measure.refactor == "add_error_boundary"
    assert p.value_measure.metric == "incidents_avoided" and p.value_measure.estimate == 3
    assert p.validation.valid and p.diff is not None and "charge_nightly_error" in p.diff.text and p.edit_ops
    assert queue.current_version(KEY) == "1.0.0"  # the running definition was seeded as the base
    with pytest.raises(ApprovalRefused):
        queue.approve(p.id, Principal("das", "admin", "token"))
    again = file_proposals(client, mine(client, keys=[KEY]), queue=queue)
    assert {r.status for r in again if r.fingerprint in filed} == {"duplicate"}
    queue.reject(
        p.id, Principal("alice", "reviewer", "token"), "not now"
    )  # no longer proposed: the refactor may be filed again
    third = {r.fingerprint: r.status for r in file_proposals(client, mine(client, keys=[KEY]), queue=queue)}
    assert third[f"{KEY}:charge:add_error_boundary"] == "filed"


def test_dry_run_files_nothing():
    client, queue = history(), Queue()
    results = file_proposals(client, mine(client, keys=[KEY]), queue=queue, dry_run=True)
    assert {r.status for r in results} == {"would_file"} and queue.list() == []


def test_the_model_words_the_rationale_but_cannot_change_the_ops():
    client, queue = history(), Queue()
    findings = [f for f in mine(client, keys=[KEY]) if f.refactor == "add_retry"]
    text = json.dumps(
        {
            "rationale": "charge fails transiently; retries let it recover. Also set retries to 99!",
            "risks": ["duplicate charges if the adapter is not idempotent"],
        }
    )
    model = register_script("curator-ok", [{"text": text}])
    [r] = file_proposals(client, findings, queue=queue, model=model)
    p = queue.get(r.proposal_id)
    assert p.rationale.startswith("charge fails transiently") and "duplicate charges" in p.rationale
    assert p.edit_ops == [
        {
            "op": "update_element",
            "id": "charge",
            "retry_time_cycle": "R3/PT5M",
            "input_parameters": {"retries": "3", "retryBackoff": "PT5M"},
        }
    ]
    assert [t.get("ok") for t in p.draft_trace] == [True, True]


def test_invalid_model_output_falls_back_after_one_repair():
    client, queue = history(), Queue()
    findings = [f for f in mine(client, keys=[KEY]) if f.refactor == "add_retry"]
    model = register_script(
        "curator-bad",
        [{"text": "{not json"}, {"text": json.dumps({"rationale": "too vague but long enough"})}],
    )
    [r] = file_proposals(client, findings, queue=queue, model=model)
    p = queue.get(r.proposal_id)
    assert p.rationale.startswith("2 of 2 external task(s) at charge")
    assert [t.get("ok") for t in p.draft_trace] == [True, False, False]  # deterministic, then 2 bad attempts


def test_cli_reports_findings_and_filed_ids(monkeypatch):
    import das.commands.nightly as nightly_cmd
    from das.commands.nightly import nightly

    fake = history()
    fake.close = lambda: None
    fake.__enter__ = None
    monkeypatch.setattr(
        nightly_cmd, "EngineClient", lambda url=None: _Ctx(fake)
    )  # where the command looks it up
    out = CliRunner().invoke(nightly, ["--key", KEY, "--format", "json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert len(report["filed"]) == 3 and report["counts"] == {"filed": 3}
    assert {f["kind"] for f in report["findings"]} == {"incidents", "task_failures", "long_duration"}
    text = CliRunner().invoke(nightly, ["--key", KEY, "--dry-run"])
    assert text.exit_code == 0 and "duplicate" in text.output and "filed: none" in text.output


def test_bad_since_is_a_usage_error():
    from das.errors import InvalidInput
    from das.nightly.run import parse_since

    with pytest.raises(InvalidInput):
        parse_since("yesterday")
    assert parse_since("2026-11-21").tzinfo is not None


class _Ctx:
    def __init__(self, client):
        self.client = client

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        return None


def test_handler_completes_with_a_report_and_rejects_bad_input(monkeypatch):
    from types import SimpleNamespace

    import das.engine.handlers as handlers
    from das.camunda.variables import Json
    from das.engine.handlers import HandlerContext, handle_nightly

    monkeypatch.setattr(
        handlers, "EngineClient", lambda url=None: _Ctx(history())
    )  # where the handler looks it up
    task = SimpleNamespace(variables={"keys": KEY, "dryRun": True}, retries=None)
    out = handle_nightly(task, HandlerContext())
    assert out.kind == "complete" and isinstance(out.variables["nightlyReport"], Json)
    assert out.variables["nightlyFiled"] == 0 and out.variables["nightlyReport"].value["counts"] == {
        "would_file": 3
    }
    bad = handle_nightly(SimpleNamespace(variables={"since": "soon"}, retries=None), HandlerContext())
    assert bad.kind == "failure" and bad.retries == 0 and "since" in bad.message
