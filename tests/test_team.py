"""Team selection with scripted members (the test model plays each member's answer)."""

import json

import pytest

from das.agents.team import aggregate, select_task
from das.contracts import Policy, Usage, Vote
from das.errors import InvalidInput
from das.llm.testmodel import register_script

CANDIDATES = [{"task_type": "summarize"}, {"task_type": "classify"}, "http_fetch"]


def answer(choice, confidence=0.8, rationale="fits the goal"):
    return {"text": json.dumps({"choice": choice, "confidence": confidence, "rationale": rationale})}


def test_majority_picks_one_of_the_candidates_with_votes_and_dissent():
    a = register_script("vote-1", [answer(1)])
    b = register_script("vote-2", [answer(1, 0.6)])
    c = register_script("vote-0", [answer(0, 0.9, "cheaper")])
    decision = select_task(CANDIDATES, {"case": "invoice"}, models=[a, b, c], members=3)
    assert decision.chosen_index == 1 and decision.chosen == {"task_type": "classify"}
    assert decision.mode == "majority" and len(decision.votes) == 3
    assert decision.dissent and "cheaper" in decision.dissent[0]
    assert decision.confidence == pytest.approx((0.8 + 0.6) / 3, abs=1e-3)
    assert decision.usage.model_calls == 3


def test_an_index_outside_the_candidates_is_repaired_or_abstains_never_chosen():
    invent = register_script("invents", [answer(7), answer(7)])  # a task that was never offered
    ok = register_script("vote-2b", [answer(2)])
    decision = select_task(CANDIDATES, models=[invent, ok, ok], members=3)
    assert decision.chosen_index == 2
    assert decision.votes[0].choice is None and "abstained" in decision.votes[0].rationale


def test_no_strict_majority_escalates():
    models = [register_script(f"split-{i}", [answer(i)]) for i in range(3)]
    decision = select_task(CANDIDATES, models=models, members=3)
    assert decision.chosen_index is None and decision.mode == "escalated"
    assert "no strict majority" in decision.rationale


def test_budget_stop_escalates_with_reason():
    expensive = register_script("vote-expensive", [{**answer(0), "cost_usd": 1.0}])
    decision = select_task(CANDIDATES, models=[expensive], members=3, policy=Policy(max_cost_usd=0.5))
    assert decision.stop_reason == "max_cost_usd" and decision.mode == "escalated"


def test_bad_candidates_are_clear_errors():
    with pytest.raises(InvalidInput, match="non-empty JSON list"):
        select_task([], models=["test/auto"])
    with pytest.raises(InvalidInput, match=r"candidates\[0\] must be an object"):
        select_task([42], models=["test/auto"])


def test_single_member_mode():
    decision = aggregate([{"task_type": "a"}], [Vote(member="m", choice=0, confidence=0.9, rationale="r")],
                         Usage(), "completed")
    assert decision.mode == "single" and decision.chosen_index == 0


def test_selection_uses_the_merged_guardrails_policy(tmp_path):
    ops = tmp_path / "ops.yaml"
    ops.write_text("max_cost_usd: 0.1\n")
    pricey = register_script("vote-pricey", [{**answer(0), "cost_usd": 0.2}])
    decision = select_task(CANDIDATES, models=[pricey], members=3, policy_file=str(ops))
    assert decision.stop_reason == "max_cost_usd"


def test_pii_context_refuses_external_members_and_secrets_are_scrubbed(monkeypatch, tmp_path):
    ops = tmp_path / "ops.yaml"
    ops.write_text("data_class: pii\n")
    decision = select_task(CANDIDATES, {"name": "Jane"}, models=["openai/gpt-4o-mini"], policy_file=str(ops))
    assert decision.stop_reason == "policy_denied" and decision.chosen_index is None
    monkeypatch.setenv("SERVICE_TOKEN", "tok-abcdef-123456")
    leaky = register_script("vote-leaky", [answer(0, rationale="use tok-abcdef-123456")])
    decision = select_task(CANDIDATES, models=[leaky], members=1)
    assert "tok-abcdef-123456" not in decision.model_dump_json() and "[SECRET]" in decision.rationale
