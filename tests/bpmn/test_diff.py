"""Semantic diff: what changed for a reviewer, not how the XML moved."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from das.bpmn.diff import diff, render_text
from das.bpmn.edits import apply_edits, new_definitions
from das.bpmn.parse import parse
from das.bpmn.write import to_bytes, write
from das.commands.bpmn import bpmn

BASE = [
    {"op": "add_element", "id": "s", "type": "startEvent"},
    {
        "op": "add_element",
        "id": "t",
        "type": "serviceTask",
        "name": "Work",
        "attributes": {"camunda:type": "external", "camunda:topic": "a"},
    },
    {"op": "add_element", "id": "g", "type": "exclusiveGateway"},
    {"op": "add_element", "id": "e1", "type": "endEvent"},
    {"op": "add_element", "id": "e2", "type": "endEvent"},
    {"op": "connect", "source": "s", "target": "t", "id": "f1"},
    {"op": "connect", "source": "t", "target": "g", "id": "f2"},
    {"op": "connect", "source": "g", "target": "e1", "id": "f3", "condition": "${x > 1}"},
    {"op": "connect", "source": "g", "target": "e2", "id": "f4", "default": True},
]


def _base():  # type: ignore[no-untyped-def]
    return apply_edits(new_definitions("proc"), BASE)


def test_identical_models_have_no_diff() -> None:
    d = _base()
    result = diff(d, parse(to_bytes(d)))
    assert result.empty and render_text(result).startswith("no semantic differences")


def test_reports_added_removed_changed() -> None:
    old = _base()
    new = apply_edits(
        old,
        [
            {"op": "update_element", "id": "t", "attributes": {"camunda:topic": "b"}, "name": "Work 2"},
            {"op": "update_element", "id": "f3", "condition": "${x > 2}"},
            {
                "op": "add_element",
                "id": "bt",
                "type": "boundaryEvent",
                "attached_to": "t",
                "event_definition": "timer",
                "timer": {"value": "PT5M"},
            },
            {"op": "connect", "source": "bt", "target": "e2", "id": "f5"},
            {"op": "remove_element", "id": "e1"},
        ],
    )
    result = diff(old, new)
    by = {(e.kind, e.change, e.id): e for e in result.entries}
    t = by[("node", "changed", "t")]
    assert {(f.field, f.old, f.new) for f in t.fields} >= {
        ("camunda:topic", "a", "b"),
        ("name", "Work", "Work 2"),
    }
    assert ("node", "added", "bt") in by and ("flow", "added", "f5") in by
    assert ("node", "removed", "e1") in by and ("flow", "removed", "f3") in by
    added = by[("node", "added", "bt")]
    assert any(
        f.field == "event_definitions" and f.new[0]["timer"] == {"timeDuration": "PT5M"} for f in added.fields
    )
    text = render_text(result)
    assert "~ serviceTask t 'Work 2'" in text and "camunda:topic: 'a' -> 'b'" in text
    assert "- endEvent e1" in text and "+ boundaryEvent bt" in text
    json.dumps(result.model_dump(mode="json"))  # JSON-able


def test_condition_change_is_reported() -> None:
    old = _base()
    new = apply_edits(old, [{"op": "update_element", "id": "f3", "condition": "${x > 2}"}])
    (entry,) = diff(old, new).entries
    assert entry.kind == "flow" and entry.fields[0].field == "condition"
    assert (entry.fields[0].old, entry.fields[0].new) == ("${x > 1}", "${x > 2}")


def test_diagram_only_change_is_not_semantic() -> None:
    old = _base()
    data = to_bytes(old).replace(b'x="150"', b'x="999"')
    result = diff(old, parse(data))
    assert result.empty


def test_cli_diff(tmp_path: Path) -> None:
    old = _base()
    new = apply_edits(old, [{"op": "update_element", "id": "t", "attributes": {"camunda:topic": "b"}}])
    a, b = write(old, tmp_path / "a.bpmn"), write(new, tmp_path / "b.bpmn")
    res = CliRunner().invoke(bpmn, ["diff", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["entries"][0]["id"] == "t" and data["entries"][0]["fields"][0]["new"] == "b"
    res = CliRunner().invoke(bpmn, ["diff", str(a), str(b)])
    assert "camunda:topic: 'a' -> 'b'" in res.output
