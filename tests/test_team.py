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
    decision = aggregate(
        [{"task_type": "a"}],
        [Vote(member="m", choice=0, confidence=0.9, rationale="r")],
        Usage(),
        "completed",
    )
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


# --- how members differ -------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch):
    """Every model call the team makes, as the keyword arguments it passed to the gateway."""
    from das.llm import gateway

    made: list[dict] = []
    real = gateway.complete

    def recording(model, messages, **kwargs):
        made.append({"model": model, "prompt": messages[0]["content"], **kwargs})
        return real(model, messages, **kwargs)

    monkeypatch.setattr(gateway, "complete", recording)
    return made


def test_there_is_a_distinct_persona_for_every_seat_the_cli_offers():
    from das.agents.team import MAX_MEMBERS, PERSONAS, TEMPERATURES
    from das.commands.core import select

    members = next(p for p in select.params if p.name == "members")
    assert members.type.max == MAX_MEMBERS == 7
    assert len(set(PERSONAS)) == len(PERSONAS) >= MAX_MEMBERS
    assert len({p.split(":")[0] for p in PERSONAS}) == len(PERSONAS)  # labels differ too
    assert TEMPERATURES[0] == 0 and all(0.3 <= t <= 0.7 for t in TEMPERATURES[1:MAX_MEMBERS])


def test_seven_members_make_seven_distinct_calls_and_the_decision_says_how_they_differed(calls):
    from das.agents.team import PERSONAS

    model = register_script("vote-seven", [answer(1, 0.7)])
    decision = select_task(CANDIDATES, {"case": "invoice"}, models=[model], members=7)
    assert len(calls) == 7 and decision.usage.model_calls == 7
    # each call differs: its own persona, and (after the greedy member 0) its own seed and temperature
    assert len({c["prompt"] for c in calls}) == 7
    assert [c["temperature"] for c in calls][0] == 0.0 and calls[0]["seed"] is None
    assert all(0.3 <= c["temperature"] <= 0.7 for c in calls[1:])
    assert len({c["seed"] for c in calls[1:]}) == 6 and None not in {c["seed"] for c in calls[1:]}
    for call, persona in zip(calls, PERSONAS, strict=True):
        assert persona in call["prompt"]
    # the Decision records how each vote was made
    assert decision.configured_members == 7 and len(decision.votes) == 7
    assert [v.persona for v in decision.votes] == PERSONAS[:7]
    assert [v.model for v in decision.votes] == [model] * 7
    assert [(v.temperature, v.seed) for v in decision.votes] == [(c["temperature"], c["seed"]) for c in calls]
    assert len({v.call for v in decision.votes}) == 7 and all(v.merged == [] for v in decision.votes)
    # seven different calls that happen to agree are seven independent votes
    assert decision.mode == "unanimous" and decision.chosen_index == 1
    assert decision.confidence == pytest.approx(0.7)


def test_members_can_use_different_models(calls):
    a = register_script("vote-model-a", [answer(0)])
    b = register_script("vote-model-b", [answer(0, 0.6)])
    decision = select_task(CANDIDATES, models=[a, b], members=4)
    assert [c["model"] for c in calls] == [a, b, a, b]
    assert [v.model for v in decision.votes] == [a, b, a, b]
    assert f"({decision.votes[1].persona.split(':')[0]}, {b})" in decision.votes[1].member


def test_team_sets_each_members_model_persona_temperature_and_seed(calls):
    a = register_script("vote-team-a", [answer(2)])
    b = register_script("vote-team-b", [answer(2)])
    team = [
        {"model": a, "persona": "auditor: every step leaves evidence"},
        {"model": b, "persona": "auditor: every step leaves evidence", "temperature": 0.5, "seed": 42},
    ]
    decision = select_task(CANDIDATES, team=team)
    assert [(c["model"], c["temperature"], c["seed"]) for c in calls] == [(a, 0.0, None), (b, 0.5, 42)]
    assert all("auditor: every step leaves evidence" in c["prompt"] for c in calls)
    assert [(v.model, v.temperature, v.seed) for v in decision.votes] == [(a, 0.0, None), (b, 0.5, 42)]
    assert decision.chosen_index == 2 and decision.configured_members == 2


def test_seed_shifts_the_sampled_members_and_a_rerun_makes_the_same_calls(calls):
    model = register_script("vote-seeded", [answer(0)])
    first = select_task(CANDIDATES, models=[model], members=3, seed=100)
    again = select_task(CANDIDATES, models=[model], members=3, seed=100)
    assert [v.seed for v in first.votes] == [None, 101, 102]
    assert [v.call for v in first.votes] == [v.call for v in again.votes]


def test_bad_team_configurations_are_clear_errors():
    with pytest.raises(InvalidInput, match="members must be 1..7"):
        select_task(CANDIDATES, models=["test/auto"], members=8)
    with pytest.raises(InvalidInput, match="members must be 1..7"):
        select_task(CANDIDATES, models=["test/auto"], members=0)
    with pytest.raises(InvalidInput, match="team must be a list of 1..7"):
        select_task(CANDIDATES, team=[{"model": "test/auto"}] * 8)
    with pytest.raises(InvalidInput, match="unknown keys"):
        select_task(CANDIDATES, team=[{"model": "test/auto", "votes": 5}])
    with pytest.raises(InvalidInput, match="temperature must be a number"):
        select_task(CANDIDATES, team=[{"model": "test/auto", "temperature": 3}])
    with pytest.raises(InvalidInput, match="seed must be an integer"):
        select_task(CANDIDATES, team=[{"model": "test/auto", "temperature": 0.5, "seed": "x"}])
    with pytest.raises(InvalidInput, match="persona must be"):
        select_task(CANDIDATES, team=[{"model": "test/auto", "persona": "x" * 301}])


def test_a_provider_without_a_seed_gets_the_call_without_one():
    from das.agents.team import _sampling

    assert _sampling("anthropic/claude-3-5-sonnet-20241022", 0.5, 3) == (0.5, None)
    assert _sampling("openai/gpt-4o-mini", 0.5, 3) == (0.5, 3)
    assert _sampling("test/anything", 0.5, 3) == (0.5, 3)


def test_decision_json_only_gains_fields():
    from das.contracts import Decision

    old = {
        "chosen_index": 0,
        "chosen": {"task_type": "a"},
        "mode": "single",
        "rationale": "r",
        "confidence": 0.9,
        "votes": [{"member": "m", "choice": 0, "confidence": 0.9, "rationale": "r"}],
        "dissent": [],
        "stop_reason": "completed",
        "usage": {},
    }
    decision = Decision.model_validate(old)  # a Decision stored before this change still loads
    dumped = decision.model_dump(mode="json")
    assert set(old) <= set(dumped) and set(old["votes"][0]) <= set(dumped["votes"][0])
    assert dumped["configured_members"] == 0 and dumped["votes"][0]["merged"] == []
