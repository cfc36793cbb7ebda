"""The must-show draft: the embedded local model, no network, files a proposal whose BPMN
passes validate and simulate (after repair if needed). Real inference, nothing scripted."""

import pytest
from needs import NO_LLAMA_CPP, needs_module

from das.authoring.drafter import draft_proposal
from das.authoring.queue import Queue
from das.bpmn.simulate import simulate_xml
from das.bpmn.validate import validate
from das.identity import Principal

pytestmark = pytest.mark.local_model


def test_embedded_model_drafts_a_valid_simulated_proposal(monkeypatch):
    needs_module("llama_cpp", "DAS_REQUIRE_LOCAL_MODEL", NO_LLAMA_CPP)
    monkeypatch.delenv("DAS_MODEL", raising=False)
    proposal = draft_proposal(
        "Invoice approval: check the invoice, a manager approves it, then pay it",
        key="invoice_approval",
        author=Principal("alice", "author", "token"),
    )
    assert proposal.value_measure.model == "local/qwen2.5-coder-1.5b"
    from das.evals.authoring import elements

    names = [toks for _, toks in elements(proposal.artifact)[0]]
    found = [
        wanted
        for wanted in ("invoice", "approv", "pay")  # the draft follows the request, not only the schema
        if any(any(w.startswith(wanted) for w in toks) for toks in names)
    ]
    assert "invoice" in found and len(found) >= 2, names
    assert Queue().get(proposal.id).status == "proposed"
    report = validate(proposal.artifact.encode(), known_processes={"invoice_approval"})
    assert report.valid, report.findings
    sim = simulate_xml(proposal.artifact, runs=10, seed=3)
    assert sim["stuck"] == [] and sim["completed"] == 10
    assert len(proposal.draft_trace) == (proposal.value_measure.repair_attempts or 0) + 1
