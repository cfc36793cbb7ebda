"""Property: every schema-valid authoring document compiles, validates and simulates."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from das.bpmn.authoring import MAX_DEPTH, parse_authoring
from das.bpmn.compile import compile_process
from das.bpmn.simulate import simulate_xml
from das.bpmn.validate import validate

names = st.text(alphabet="abcdefgh xyz", min_size=1, max_size=12).filter(str.strip)
idents = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
codes = st.sampled_from(["DAS_GUARDRAIL", "DAS_INVALID_OUTPUT", "DAS_POLICY_DENIED", "E1"])
durations = st.sampled_from(["PT5M", "PT1H", "P1D", "PT1H30M"])
conditions = st.one_of(
    st.builds(
        lambda v, op, val: {"variable": v, "op": op, "value": val},
        idents,
        st.sampled_from(["==", "!="]),
        st.one_of(st.booleans(), st.integers(0, 9), idents),
    ),
    idents.map(lambda v: "${execution.getVariable('" + v + "') == 'yes'}"),
)


def handler(level: int, timeout: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, Any] = {
        "then": st.sampled_from(["continue", "end", "fail"]),
        "compensate": st.booleans(),
    }
    if level < MAX_DEPTH:
        fields["steps"] = st.lists(steps_at(level + 1), max_size=2)
    fields["duration" if timeout else "error_code"] = durations if timeout else codes
    return st.fixed_dictionaries(fields)


def activity_props(level: int) -> dict[str, Any]:
    return {
        "on_error": st.lists(handler(level), max_size=2, unique_by=lambda h: h["error_code"]),
        "timeout": st.none() | handler(level, timeout=True),
        "compensation": st.none() | st.fixed_dictionaries({"topic": idents}),
        "multi_instance": st.none()
        | st.fixed_dictionaries(
            {
                "collection": idents,
                "element_variable": idents,
                "mode": st.sampled_from(["parallel", "sequential"]),
            }
        ),
    }


def steps_at(level: int) -> st.SearchStrategy[dict[str, Any]]:
    props = activity_props(level)
    leaves = [
        st.fixed_dictionaries(
            {
                "type": st.just("tde"),
                "name": names,
                "task_type": idents,
                "mode": st.sampled_from(["deterministic", "probabilistic"]),
            },
            optional=props,
        ),
        st.fixed_dictionaries({"type": st.just("external"), "name": names, "topic": idents}, optional=props),
        st.fixed_dictionaries({"type": st.just("user"), "name": names}, optional=props),
        st.fixed_dictionaries(
            {"type": st.just("call"), "name": names, "process_key": idents}, optional=props
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("wait"),
                "name": names,
                "on": st.one_of(
                    st.fixed_dictionaries({"message": idents}), st.fixed_dictionaries({"timer": durations})
                ),
            }
        ),
    ]
    if level >= MAX_DEPTH:
        return st.one_of(leaves)
    inner = st.deferred(lambda: steps_at(level + 1))
    composite = [
        st.fixed_dictionaries(
            {
                "type": st.just("choice"),
                "name": names,
                "kind": st.sampled_from(["exclusive", "inclusive"]),
                "branches": st.lists(
                    st.fixed_dictionaries({"condition": conditions, "steps": st.lists(inner, max_size=2)}),
                    min_size=1,
                    max_size=3,
                ),
                "default": st.fixed_dictionaries({"steps": st.lists(inner, max_size=2)}),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("parallel"),
                "name": names,
                "branches": st.lists(
                    st.fixed_dictionaries({"steps": st.lists(inner, min_size=1, max_size=2)}),
                    min_size=2,
                    max_size=3,
                ),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("loop"),
                "name": names,
                "condition": conditions,
                "max_iterations": st.integers(1, 4),
                "steps": st.lists(inner, min_size=1, max_size=2),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("subprocess"), "name": names, "steps": st.lists(inner, min_size=1, max_size=2)},
            optional=props,
        ),
    ]
    lane = {"lane": st.sampled_from(["A", "B"])} if level == 1 else {}
    return (
        st.one_of(
            *[
                s.flatmap(lambda d: st.fixed_dictionaries(lane).map(lambda extra, d=d: {**d, **extra}))
                for s in leaves + composite
            ]
        )
        if lane
        else st.one_of(leaves + composite)
    )


documents = st.fixed_dictionaries(
    {"key": st.just("prop"), "name": names, "steps": st.lists(steps_at(1), min_size=1, max_size=4)}
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(documents)
def test_any_valid_document_compiles_validates_and_simulates(doc: dict[str, Any]) -> None:
    proc = parse_authoring(doc)  # the strategy only builds schema-valid documents
    res = compile_process(proc)
    assert res.findings == []
    report = validate(res.xml.encode(), name="prop.bpmn")
    errors = [f for f in report.findings if f.severity == "error"]
    assert errors == [], errors
    sim = simulate_xml(res.xml, runs=3, seed=0)
    assert sim["runs"] == 3
    assert sim["stuck"] == [], sim["stuck"]
    assert sim["completed"] == 3
