"""The simulator's JUEL follows JUEL's rules (EL 2.2 coercions), within size bounds, never Python's."""

from __future__ import annotations

import time

import pytest

from das.bpmn import juel


@pytest.mark.parametrize(
    "expr,data,want",
    [
        ("${a > 5 && b == 'x'}", {"a": 6, "b": "x"}, True),
        ("${'2' + 3}", {}, 5),  # + adds numbers: the string is coerced
        ("${'1.5' + 1}", {}, 2.5),
        ("${null + 1}", {}, 1),  # null is 0 in arithmetic
        ("${4 / 2 == 2}", {}, True),  # / is Double division
        ("${7 % -3}", {}, 1),  # Java's remainder keeps the dividend's sign
        ("${-7 mod 3}", {}, -1),
        ("${9223372036854775807 + 1}", {}, -(2**63)),  # Long wraps
        ("${1 / 0}", {}, float("inf")),
        ("${empty l}", {"l": []}, True),
        ("${empty s}", {"s": "x"}, False),
        ("${execution.getVariable('missing') == null}", {}, True),
        ("${'abc' lt 'abd'}", {}, True),
        ("${amount == '100'}", {"amount": 100}, True),  # a number against a string compares numbers
        ("${ok == 'TRUE'}", {"ok": True}, True),  # a boolean against a string compares booleans
        ("${not (a ge 3) or b}", {"a": 5, "b": "true"}, True),
        ("${!x}", {"x": ""}, True),
        ("${amount == 'abc'}", {"amount": 1}, False),  # invented values of another type: "not equal"
        ("${l != false}", {"l": ["a"]}, True),
    ],
)
def test_juel_semantics(expr: str, data: dict[str, object], want: object) -> None:
    assert juel.evaluate(juel.to_body(expr), data) == want


@pytest.mark.parametrize(
    "expr,data,why",
    [
        ("${'x' * 100000000}", {}, "cannot coerce 'x'"),  # no string repetition
        ("${'a' + 'b'}", {}, "cannot coerce 'a'"),  # no string concatenation
        ("${amount > 'abc'}", {"amount": 1}, "cannot coerce 'abc'"),
        ("${flag + 1}", {"flag": True}, "cannot coerce True"),
        ("${5 % 0}", {}, "division by zero"),
        ("${unknown > 1}", {}, "cannot resolve identifier 'unknown'"),
        ("${" + " * ".join(["99999999999999999999999999999999999999"] * 9) + "}", {}, "larger than"),
    ],
)
def test_juel_errors_are_juels_errors(expr: str, data: dict[str, object], why: str) -> None:
    with pytest.raises(juel.JuelError, match=why):
        juel.evaluate(juel.to_body(expr), data)


@pytest.mark.parametrize(
    "expr",
    [
        "${a.b}",
        "${f(1)}",
        "${a ? 1 : 2}",
        "${__import__('os')}",
        "${x[0]}",
        "${" + "(" * 60 + "1" + ")" * 60 + "}",  # nesting bound
        "${" + "+".join(["1"] * 100) + "}",  # chain bound
        "${a == '" + "x" * 5000 + "'}",  # length bound
        "${" + "9" * 50 + "}",  # number literal bound
    ],
)
def test_unsupported_or_oversized_expressions_are_named_not_run(expr: str) -> None:
    with pytest.raises(juel.JuelUnsupported):
        juel.to_body(expr)


def test_one_evaluation_is_cheap_whatever_the_expression() -> None:
    worst = "${" + " * ".join(["9223372036854775807"] * 60) + " > 0}"
    body = juel.to_body(worst)
    start = time.perf_counter()
    for _ in range(100):
        juel.evaluate(body, {})
    assert time.perf_counter() - start < 0.5


def test_listener_expression_counts_from_null() -> None:
    var, body = juel.set_variable("${execution.setVariable('n', execution.getVariable('n') + 1)}")
    assert var == "n" and juel.evaluate(body, {}) == 1 and juel.evaluate(body, {"n": 4}) == 5


@pytest.mark.parametrize(
    "expr,data",
    [
        ("${(1e308 * 10) % 2}", {}),  # an infinite dividend
        ("${x % 2}", {"x": float("-inf")}),
        ("${x % 2.5}", {"x": float("nan")}),
        ("${2.5 % x}", {"x": float("nan")}),  # a NaN divisor
        ("${2.5 % 0}", {}),
    ],
)
def test_floating_remainder_of_infinity_or_nan_is_nan_as_in_java(expr: str, data: dict[str, object]) -> None:
    """Java's ``%`` gives NaN here; Python's math.fmod raises a bare ValueError ("math domain
    error") that no caller expects."""
    result = juel.evaluate(juel.to_body(expr), data)
    assert isinstance(result, float) and result != result
    assert juel.evaluate(juel.to_body("${(1e308 * 10) % 2 > 0}"), {}) is False
    assert juel.evaluate(juel.to_body("${2.5 % (1e308 * 10)}"), {}) == 2.5  # a finite dividend is kept
