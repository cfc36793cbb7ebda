"""The outline a small model writes, turned deterministically into the authoring form."""

import pytest

from das.authoring import outline
from das.authoring.drafter import _check_new


def test_an_outline_becomes_a_valid_simulated_process():
    data = {
        "name": "Invoice approval",
        "steps": [
            {"task": "Extract invoice data", "by": "ai"},
            {"task": "Match invoice to purchase order", "by": "system"},
            {
                "if": "amount > 10000",
                "then": [
                    {"task": "Finance manager approves invoice", "by": "person", "role": "Finance manager"}
                ],
            },
            {
                "if": "approved == false",
                "then": [{"task": "Notify supplier", "by": "system"}],
                "else": [{"task": "Schedule payment", "by": "system"}],
            },
            {
                "parallel": [
                    [{"task": "Archive invoice", "by": "system"}],
                    [{"task": "Update ledger", "by": "system"}],
                ]
            },
            {
                "repeat": [{"task": "Chase missing receipt", "by": "person", "role": "Clerk"}],
                "while": "receipt missing",
            },
            {"wait": "2 days"},
        ],
    }
    doc, problems = outline.to_authoring(data, "invoice_approval")
    assert problems == []
    kinds = [s["type"] for s in doc["steps"]]
    assert kinds == ["tde", "external", "choice", "choice", "parallel", "loop", "wait"]
    assert doc["steps"][2]["branches"][0]["condition"] == {"variable": "amount", "op": ">", "value": 10000}
    assert doc["steps"][2]["branches"][0]["steps"][0]["candidate_groups"] == ["finance_manager"]
    assert doc["steps"][6]["on"] == {"timer": "P2D"}
    cand = _check_new(doc, "invoice_approval")
    assert cand.ok, cand.problems


@pytest.mark.parametrize(
    "text,expected",
    [
        ("amount > 10000", {"variable": "amount", "op": ">", "value": 10000}),
        ("credit score below 600", {"variable": "creditScore", "op": "<", "value": 600}),
        ("approved == false", {"variable": "approved", "op": "==", "value": False}),
        ("risk is high", {"variable": "risk", "op": "==", "value": "high"}),
        ("invoice rejected", {"variable": "invoiceRejected", "op": "==", "value": True}),
        ("total >= 2,500 EUR", {"variable": "total", "op": ">=", "value": 2500}),
    ],
)
def test_conditions_become_structured(text, expected):
    assert outline.parse_condition(text) == expected


def test_an_empty_then_with_an_else_is_negated():
    doc, _ = outline.to_authoring(
        {
            "name": "x",
            "steps": [
                {"task": "Check order", "by": "system"},
                {"if": "amount > 5", "then": [], "else": [{"task": "Ship order", "by": "system"}]},
            ],
        },
        "k",
    )
    assert doc["steps"][1]["branches"][0]["condition"] == {"variable": "amount", "op": "<=", "value": 5}


def test_nesting_deeper_than_the_form_allows_is_flattened_not_lost():
    deep = {"task": "Innermost task", "by": "system"}
    for i in range(4):
        deep = {"if": f"flag{i} == true", "then": [deep]}
    doc, _ = outline.to_authoring({"name": "Deep", "steps": [deep]}, "deep")
    assert "Innermost task" in str(doc)
    assert _check_new(doc, "deep").ok


@pytest.mark.parametrize(
    "bad", [None, [], {"name": "x"}, {"name": "x", "steps": []}, {"steps": [{"nonsense": 1}]}]
)
def test_an_outline_without_tasks_is_a_problem_for_the_model(bad):
    with pytest.raises(ValueError):
        outline.to_authoring(bad, "k")


def test_every_given_label_lands_on_a_task_when_there_are_enough_tasks():
    labels = ["Receive purchase request", "Approve purchase request", "Order goods"]
    doc, problems = outline.to_authoring(
        {
            "name": "P",
            "steps": [
                {"task": "Get the request", "by": "system"},
                {"task": "Approve request", "by": "person"},
                {"task": "Buy the items", "by": "system"},
            ],
        },
        "p",
        labels,
    )
    assert [s["name"] for s in doc["steps"]] == labels and problems == []


def test_a_given_label_the_model_left_out_is_placed_after_its_predecessor():
    labels = ["Receive purchase request", "Approve purchase request", "Order goods", "Archive request"]
    doc, problems = outline.to_authoring(
        {
            "name": "P",
            "steps": [
                {"task": "Receive the purchase request", "by": "system"},
                {"if": "amount > 100", "then": [{"task": "Approve request", "by": "person"}]},
                {"task": "Archive the request", "by": "system"},
            ],
        },
        "p",
        labels,
    )
    assert problems == []
    assert [s.get("name") for s in doc["steps"]][0] == "Receive purchase request"
    inner = [s["name"] for s in doc["steps"][1]["branches"][0]["steps"]]
    assert inner == ["Approve purchase request", "Order goods"]  # right after its predecessor
    assert doc["steps"][1]["branches"][0]["steps"][1]["type"] == "external"
    assert outline.missing_labels(doc, labels) == []
    assert _check_new(doc, "p").ok


@pytest.mark.parametrize(
    "prompt,labels",
    [
        (
            "Ordering. Use these task names: Receive order; Check stock; Ship order",
            ["Receive order", "Check stock", "Ship order"],
        ),
        (
            'Hiring. Use the following activity labels: "Screen CV", "Interview candidate"',
            ["Screen CV", "Interview candidate"],
        ),
        ("Just a plain description with no list.", []),
    ],
)
def test_labels_are_read_from_the_prompt(prompt, labels):
    assert outline.labels_in_prompt(prompt) == labels
