"""Atomic edit operations: results, typed errors, JSON form, and that nothing else is lost."""

from __future__ import annotations

import json

import pytest
from lxml import etree
from needs import CORPUS, NO_CORPUS, needs

from das.bpmn.edits import (
    DuplicateId,
    EditError,
    EditScript,
    InvalidEdit,
    UnknownElement,
    apply_edits,
    edit_script_schema,
    new_definitions,
    parse_ops,
)
from das.bpmn.parse import parse
from das.bpmn.validate import validate_model
from das.bpmn.write import to_bytes

BUILD = [
    {"op": "add_element", "id": "start", "type": "startEvent"},
    {
        "op": "add_element",
        "id": "work",
        "type": "serviceTask",
        "name": "Work",
        "attributes": {"camunda:type": "external", "camunda:topic": "adapter-x"},
    },
    {"op": "add_element", "id": "gw", "type": "exclusiveGateway"},
    {"op": "add_element", "id": "done", "type": "endEvent"},
    {"op": "add_element", "id": "other", "type": "endEvent"},
    {"op": "connect", "source": "start", "target": "work"},
    {"op": "connect", "source": "work", "target": "gw"},
    {"op": "connect", "source": "gw", "target": "done", "condition": "${ok}"},
    {"op": "connect", "source": "gw", "target": "other", "default": True, "id": "f_default"},
    {"op": "update_element", "id": "work", "retry_time_cycle": "R3/PT1M"},
]


@pytest.fixture
def built():  # type: ignore[no-untyped-def]
    return apply_edits(new_definitions("peo_edit", "Edit demo"), BUILD)


def test_built_process_is_valid_with_diagram(built) -> None:  # type: ignore[no-untyped-def]
    report = validate_model(built)
    assert report.valid, report.findings
    assert set(built.di_shapes) == set(built.nodes)
    assert set(built.di_edges) == set(built.flows)
    assert built.nodes["gw"].default == "f_default"
    assert built.flows["Flow_gw_done"].condition == "${ok}"
    assert built.nodes["work"].outgoing == ["Flow_work_gw"]


def test_apply_does_not_mutate_input(built) -> None:  # type: ignore[no-untyped-def]
    before = to_bytes(built)
    apply_edits(built, [{"op": "remove_element", "id": "work"}])
    assert to_bytes(built) == before


def test_remove_element_takes_flows_boundaries_and_di(built) -> None:  # type: ignore[no-untyped-def]
    d = apply_edits(
        built,
        [
            {
                "op": "add_element",
                "id": "b",
                "type": "boundaryEvent",
                "attached_to": "work",
                "event_definition": "timer",
                "timer": {"kind": "timeDuration", "value": "PT1H"},
            },
            {"op": "connect", "source": "b", "target": "other"},
        ],
    )
    assert d.nodes["b"].attached_to == "work" and d.nodes["b"].event_definitions[0].timer == {
        "timeDuration": "PT1H"
    }
    d2 = apply_edits(d, [{"op": "remove_element", "id": "work"}])
    assert "work" not in d2.nodes and "b" not in d2.nodes
    assert not [f for f in d2.flows.values() if "work" in (f.source, f.target) or f.source == "b"]
    assert "work" not in d2.di_shapes and "b" not in d2.di_shapes
    assert set(d2.di_edges) == set(d2.flows)
    assert d2.nodes["start"].outgoing == []


def test_remove_flow_clears_default(built) -> None:  # type: ignore[no-untyped-def]
    d = apply_edits(built, [{"op": "remove_element", "id": "f_default"}])
    assert d.nodes["gw"].default is None and "f_default" not in d.flows


def test_update_element(built) -> None:  # type: ignore[no-untyped-def]
    d = apply_edits(
        built,
        [
            {
                "op": "update_element",
                "id": "work",
                "name": "Renamed",
                "attributes": {"camunda:topic": "adapter-y", "camunda:asyncBefore": "true"},
                "properties": {"das:mode": "deterministic"},
                "input_parameters": {"retries": "3"},
            },
            {"op": "update_element", "id": "Flow_gw_done", "condition": "${status == 'ok'}"},
            {"op": "update_element", "id": "gw", "attributes": {"default": None}},
        ],
    )
    w = d.nodes["work"]
    assert w.name == "Renamed" and w.camunda("topic") == "adapter-y" and w.camunda("asyncBefore") == "true"
    assert w.properties == {"das:mode": "deterministic"} and w.input_parameters == {"retries": "3"}
    assert d.flows["Flow_gw_done"].condition == "${status == 'ok'}"
    assert d.nodes["gw"].default is None
    d2 = apply_edits(
        d,
        [
            {"op": "update_element", "id": "Flow_gw_done", "condition": ""},
            {"op": "update_element", "id": "work", "properties": {"das:mode": None}},
        ],
    )
    assert d2.flows["Flow_gw_done"].condition is None and d2.nodes["work"].properties == {}


def test_move_into_subprocess_and_lane() -> None:
    d = apply_edits(
        new_definitions("p"),
        [
            {"op": "add_element", "id": "sp", "type": "subProcess"},
            {"op": "add_element", "id": "t", "type": "task"},
            {"op": "add_element", "id": "u", "type": "task"},
            {"op": "connect", "source": "t", "target": "u"},
        ],
    )
    with pytest.raises(InvalidEdit, match="cross a sub-process boundary"):
        apply_edits(d, [{"op": "move_element", "id": "t", "parent": "sp"}])
    d2 = apply_edits(d, [{"op": "move_element", "id": "t", "parent": "sp", "drop_flows": True}])
    assert d2.nodes["t"].parent == "sp" and not d2.flows
    d3 = apply_edits(
        d2,
        [{"op": "move_element", "id": "u", "parent": "sp"}, {"op": "connect", "source": "t", "target": "u"}],
    )
    assert d3.flows["Flow_t_u"].parent == "sp"
    with pytest.raises(InvalidEdit, match="into itself"):
        apply_edits(d3, [{"op": "move_element", "id": "sp", "parent": "sp"}])


def test_typed_errors(built) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownElement, match="edit 1 .*'ghost'"):
        apply_edits(built, [{"op": "remove_element", "id": "ghost"}])
    with pytest.raises(DuplicateId, match="'work' already exists"):
        apply_edits(built, [{"op": "add_element", "id": "work", "type": "task"}])
    with pytest.raises(InvalidEdit, match="not a flow node type"):
        apply_edits(built, [{"op": "add_element", "id": "x", "type": "banana"}])
    with pytest.raises(InvalidEdit, match="needs attached_to"):
        apply_edits(built, [{"op": "add_element", "id": "x", "type": "boundaryEvent"}])
    with pytest.raises(UnknownElement):
        apply_edits(built, [{"op": "connect", "source": "work", "target": "nowhere"}])
    with pytest.raises(InvalidEdit, match="ids cannot be changed"):
        apply_edits(built, [{"op": "update_element", "id": "work", "attributes": {"id": "x"}}])
    with pytest.raises(InvalidEdit, match="invalid edit op"):
        apply_edits(built, [{"op": "explode", "id": "work"}])
    # the second op fails: the message names it, and nothing is half-applied to the input
    with pytest.raises(EditError, match="edit 2"):
        apply_edits(built, [{"op": "remove_element", "id": "work"}, {"op": "remove_element", "id": "work"}])
    assert "work" in built.nodes


def test_json_form_and_schema() -> None:
    schema = edit_script_schema()
    text = json.dumps(schema)
    for op in ("add_element", "remove_element", "update_element", "move_element", "connect"):
        assert op in text
    assert schema["properties"]["ops"]["maxItems"] == 200
    script = EditScript.model_validate({"ops": BUILD})
    assert [o.op for o in script.ops][:2] == ["add_element", "add_element"]
    assert len(parse_ops({"ops": BUILD})) == len(BUILD)
    import jsonschema

    jsonschema.validate({"ops": BUILD}, schema)


@needs((CORPUS / "C.1.0.bpmn").is_file(), "DAS_REQUIRE_CORPUS", f"{NO_CORPUS}: C.1.0.bpmn")
def test_edit_on_vendor_file_keeps_everything_else() -> None:
    src = CORPUS / "C.1.0.bpmn"
    d = parse(src)
    task = next(n for n in d.nodes.values() if n.type == "userTask")
    after = apply_edits(d, [{"op": "update_element", "id": task.id, "name": "Renamed task"}])
    old_root = etree.fromstring(src.read_bytes())
    new_root = etree.fromstring(to_bytes(after))
    old = [(e.tag, dict(e.attrib)) for e in old_root.iter() if isinstance(e.tag, str)]
    new = [(e.tag, dict(e.attrib)) for e in new_root.iter() if isinstance(e.tag, str)]
    assert len(old) == len(new)
    changed = [(o, n) for o, n in zip(old, new, strict=True) if o != n]
    assert len(changed) == 1 and changed[0][1][1]["name"] == "Renamed task"
