"""Attacks through a TaskSpec's output_schema on the linear-time schema check (das.llm.schema_check)."""

from __future__ import annotations

from typing import Any

import pytest
from agent_helpers import FINISH, spec

from das.agents.tde_loop import run_tde
from das.errors import InvalidInput
from das.llm import testmodel
from das.llm.testmodel import register_script


@pytest.mark.parametrize("name", ["enum", "const", "default", "examples"])
def test_backtracking_pattern_under_a_property_named_like_a_data_keyword(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Tried: an output_schema whose property is *named* ``enum`` (or const, default, examples),
    its subschema a pattern with a backreference. The schema check once skipped it as data, so
    the spec was accepted and the pattern failed only while validating the model's answer."""
    calls: list[Any] = []
    real_play = testmodel.play
    monkeypatch.setattr(testmodel, "play", lambda *a, **kw: calls.append(a) or real_play(*a, **kw))
    schema = {
        "type": "object",
        "required": [name],
        "properties": {name: {"type": "string", "pattern": r"^(a)\1$"}},
    }
    s = spec("never_declared_anywhere").model_copy(update={"output_schema": schema})
    with pytest.raises(InvalidInput, match=r"output_schema .*\^\(a\)\\\\1\$.* linear time"):
        run_tde(s, model=register_script(f"schema_{name}", [FINISH]))
    assert calls == []  # refused before the model is asked anything


def test_data_named_pattern_inside_an_enum_is_still_data() -> None:
    """The guard itself: an enum *value* that looks like a schema with a bad pattern is data and
    does not make a good schema fail."""
    from das.llm.schema_check import validate_within, validator_for

    schema = {"type": "object", "properties": {"mode": {"enum": [{"pattern": r"(a)\1"}, "x"]}}}
    assert validate_within(validator_for(schema), {"mode": "x"}, 5) == []
