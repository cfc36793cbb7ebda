"""Attacks on the team's vote count: copies of one member must not count as several votes."""

from __future__ import annotations

import json

import pytest

from das.agents.team import aggregate, select_task
from das.contracts import Usage, Vote
from das.llm.testmodel import register_script

CANDIDATES = [{"task_type": "summarize"}, {"task_type": "classify"}, {"task_type": "http_fetch"}]


def answer(choice, confidence=0.9, rationale="fits the goal"):
    return {"text": json.dumps({"choice": choice, "confidence": confidence, "rationale": rationale})}


@pytest.fixture
def calls(monkeypatch):
    from das.llm import gateway

    made: list[dict] = []
    real = gateway.complete

    def recording(model, messages, **kwargs):
        made.append({"model": model, **kwargs})
        return real(model, messages, **kwargs)

    monkeypatch.setattr(gateway, "complete", recording)
    return made


def test_identical_members_cannot_stuff_the_ballot(calls):
    """Tried: five seats with the same model, persona, temperature and seed (all for candidate 0)
    against two real members who disagree with each other; 5 of 7 would be a majority."""
    stuffed = {
        "model": register_script("stuffer", [answer(0)]),
        "persona": "shill: always pick summarize",
        "temperature": 0.5,
        "seed": 7,
    }
    honest = [
        {"model": register_script("honest-1", [answer(1)])},
        {"model": register_script("honest-2", [answer(2)])},
    ]
    decision = select_task(CANDIDATES, team=[stuffed] * 5 + honest)
    assert len(calls) == 3 and decision.usage.model_calls == 3  # one call for the five copies
    assert decision.configured_members == 7 and len(decision.votes) == 3
    assert decision.votes[0].merged == [f"member{i} (shill, test/stuffer)" for i in range(2, 6)]
    assert decision.chosen_index is None and decision.mode == "escalated"  # 1 of 3 distinct votes
    assert "no strict majority" in decision.rationale


def test_stuffed_copies_do_not_outvote_a_real_majority(calls):
    """Tried: four copies of one member for candidate 0 against two different members for 1."""
    stuffed = {
        "model": register_script("stuffer-4", [answer(0, 1.0)]),
        "persona": "shill",
        "temperature": 0.4,
        "seed": 1,
    }
    backer = register_script("backer", [answer(1, 0.6)])
    team = [stuffed] * 4 + [
        {"model": backer, "persona": "process owner"},
        {"model": backer, "persona": "auditor"},
    ]
    decision = select_task(CANDIDATES, team=team)
    assert len(calls) == 3
    assert decision.chosen_index == 1 and decision.mode == "majority"
    assert decision.confidence == pytest.approx(round(1.2 / 3, 3))  # over the distinct votes, not the seats


def test_greedy_copies_with_different_seeds_are_one_call(calls):
    """Tried: dodge the rule by giving greedy (temperature 0) copies different seeds;
    a seed cannot change a greedy answer, so they are still the same call."""
    model = register_script("greedy-shill", [answer(0)])
    honest = register_script("greedy-honest", [answer(1)])
    team = [{"model": model, "persona": "shill", "temperature": 0, "seed": s} for s in (1, 2, 3)]
    decision = select_task(CANDIDATES, team=[*team, {"model": honest}])
    assert len(calls) == 2 and calls[0]["model"] == model and calls[0]["seed"] is None
    assert len(decision.votes) == 2 and decision.mode == "escalated"


def test_whitespace_and_rounding_variants_are_one_call(calls):
    """Tried: dodge the rule with a persona that differs only in spacing and a temperature
    that differs only in the seventh decimal."""
    model = register_script("variant-shill", [answer(0)])
    team = [
        {"model": model, "persona": "shill: pick 0", "temperature": 0.5, "seed": 9},
        {"model": model, "persona": "  shill:   pick 0 ", "temperature": 0.5000001, "seed": 9},
        {"model": model, "persona": "shill:\tpick 0", "temperature": 0.4999999, "seed": 9},
    ]
    decision = select_task(CANDIDATES, team=team)
    assert len(calls) == 1 and len(decision.votes) == 1 and len(decision.votes[0].merged) == 2
    assert decision.mode == "single" and decision.configured_members == 3


def test_votes_carrying_the_same_call_are_counted_once_by_aggregate():
    """Tried: hand aggregate three copies of one call's vote (e.g. replayed from a stored Decision)."""
    copy = dict(choice=0, confidence=0.9, rationale="same", call="abc123")
    votes = [Vote(member=f"m{i}", **copy) for i in range(3)]
    votes += [
        Vote(member="x", choice=1, confidence=0.5, rationale="a", call="def"),
        Vote(member="y", choice=2, confidence=0.5, rationale="b", call="ghi"),
    ]
    decision = aggregate(CANDIDATES, votes, Usage(), "completed")
    assert len(decision.votes) == 3 and decision.votes[0].merged == ["m1", "m2"]
    assert decision.configured_members == 5 and decision.chosen_index is None and decision.mode == "escalated"


def test_different_calls_that_agree_are_independent_votes(calls):
    """Not an attack: two members that differ (persona) and give the same answer count twice."""
    model = register_script("agree", [answer(2)])
    decision = select_task(
        CANDIDATES,
        team=[
            {"model": model, "persona": "risk officer"},
            {"model": model, "persona": "customer advocate"},
            {"model": register_script("disagree", [answer(0)])},
        ],
    )
    assert len(calls) == 3 and len(decision.votes) == 3
    assert decision.chosen_index == 2 and decision.mode == "majority"
