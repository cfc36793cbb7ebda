"""Camunda variable typing without an engine."""

from __future__ import annotations

from das.camunda.variables import Json, from_variables, to_variables, typed


def test_typing_round_trip() -> None:
    values = {
        "s": "x",
        "b": False,
        "i": 7,
        "l": 2**33,
        "d": 1.5,
        "n": None,
        "j": {"a": [1, {"b": None}]},
        "lst": [1, 2],
        "forced": Json("plain"),
    }
    typed_vars = to_variables(values)
    assert typed_vars["s"]["type"] == "String" and typed_vars["b"]["type"] == "Boolean"
    assert typed_vars["i"]["type"] == "Integer" and typed_vars["l"]["type"] == "Long"
    assert typed_vars["d"]["type"] == "Double" and typed_vars["n"]["type"] == "Null"
    assert typed_vars["j"]["type"] == "Json" and isinstance(typed_vars["j"]["value"], str)
    assert typed_vars["forced"] == {"value": '"plain"', "type": "Json"}
    back = from_variables(typed_vars)
    assert back == {**values, "lst": [1, 2], "forced": "plain"}


def test_already_typed_passes_through() -> None:
    v = {"value": "1", "type": "String"}
    assert typed(v) is v


def test_object_json_is_parsed() -> None:
    raw = {
        "x": {
            "type": "Object",
            "value": '{"k": 1}',
            "valueInfo": {"serializationDataFormat": "application/json"},
        }
    }
    assert from_variables(raw) == {"x": {"k": 1}}
