"""Camunda 7 executability and ProcOS governance rules; the JUEL and timer checkers."""

from __future__ import annotations

import pytest

from das.bpmn.exprcheck import check_juel, check_timer
from das.bpmn.validate import validate

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  id="defs" targetNamespace="http://example.com">
<bpmn:error id="Err" name="E" errorCode="E1"/>
"""


def doc(body: str, pid: str = "peo_x", ttl: bool = True) -> str:
    attr = ' camunda:historyTimeToLive="P30D"' if ttl else ""
    return (
        f'{HEAD}<bpmn:process id="{pid}" isExecutable="true"{attr}>{body}</bpmn:process></bpmn:definitions>'
    )


def chain(*middle: str, flows: str = "") -> str:
    """start -> each middle node (by id order) -> end, plus extra flows."""
    ids = [m.split('id="')[1].split('"')[0] for m in middle]
    seq = ["s", *ids, "e"]
    fl = "".join(
        f'<bpmn:sequenceFlow id="c{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(zip(seq, seq[1:], strict=False))
    )
    return '<bpmn:startEvent id="s"/>' + "".join(middle) + '<bpmn:endEvent id="e"/>' + fl + flows


def found(text: str, known: list[str] | None = None) -> dict[str, set]:
    out: dict[str, set] = {}
    for f in validate(text, known_processes=known).findings:
        out.setdefault(f.rule, set()).add((f.severity, f.element))
    return out


EXT_OK = (
    '<bpmn:serviceTask id="t" camunda:type="external" camunda:topic="adapter">'
    "<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R3/PT1M</camunda:failedJobRetryTimeCycle>"
    "</bpmn:extensionElements></bpmn:serviceTask>"
)


def test_governed_external_task_is_valid() -> None:
    report = validate(doc(chain(EXT_OK)))
    assert report.valid, report.findings


def test_external_task_without_topic() -> None:
    r = found(doc(chain('<bpmn:serviceTask id="t" camunda:type="external"/>')))
    assert ("error", "t") in r["camunda.topic"]


def test_service_task_without_implementation() -> None:
    r = found(doc(chain('<bpmn:serviceTask id="t"/>'), pid="other"))
    assert ("error", "t") in r["camunda.implementation"]


def test_missing_history_ttl_is_an_error_for_procos_only() -> None:
    assert ("error", "peo_x") in found(doc(chain(EXT_OK), ttl=False))["camunda.history-ttl"]
    assert ("warning", "plain") in found(
        doc(chain('<bpmn:userTask id="u" camunda:assignee="a"/>'), pid="plain", ttl=False)
    )["camunda.history-ttl"]


def test_bad_juel_condition() -> None:
    body = chain(
        '<bpmn:exclusiveGateway id="g" default="c2"/>',
        flows="""
      <bpmn:sequenceFlow id="fx" sourceRef="g" targetRef="e">
        <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${amount &gt;}</bpmn:conditionExpression>
      </bpmn:sequenceFlow>""",
    )
    r = found(doc(body))
    assert ("error", "fx") in r["camunda.juel"]


def test_bad_timer_values() -> None:
    body = chain(
        '<bpmn:intermediateCatchEvent id="w"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>5 minutes</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )
    r = found(doc(body))
    assert ("error", "w") in r["camunda.timer"]
    ok = body.replace("5 minutes", "PT5M")
    assert "camunda.timer" not in found(doc(ok))


def test_call_target_known_or_not() -> None:
    call = (
        '<bpmn:callActivity id="ca" calledElement="tde_task_template"><bpmn:extensionElements>'
        '<camunda:in source="correlationId" target="correlationId"/>'
        '<camunda:in source="retries" target="retries"/></bpmn:extensionElements></bpmn:callActivity>'
    )
    text = doc(chain(call))
    assert ("info", "ca") in found(text)["camunda.call-target"]
    assert ("error", "ca") in found(text, known=["other"])["camunda.call-target"]
    assert "camunda.call-target" not in found(text, known=["tde_task_template"])


def test_governance_no_script_in_peo() -> None:
    script = (
        '<bpmn:scriptTask id="sc" scriptFormat="groovy"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'
    )
    assert ("error", "sc") in found(doc(chain(script)))["governance.no-script"]
    # the same script task in any other process is flagged too, as a warning: approving it
    # needs the reviewer's acknowledgement (das/bpmn/rules_executable.py)
    assert found(doc(chain(script), pid="pdo_router"))["governance.no-script"] == {("warning", "sc")}
    java = '<bpmn:serviceTask id="j" camunda:class="com.acme.Foo"/>'
    assert ("error", "j") in found(doc(chain(java)))["governance.no-script"]


def test_governance_error_handling() -> None:
    bare = '<bpmn:serviceTask id="t" camunda:type="external" camunda:topic="adapter"/>'
    assert ("error", "t") in found(doc(chain(bare)))["governance.error-handling"]
    # an error boundary event satisfies it
    boundary = (
        '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition errorRef="Err"/>'
        "</bpmn:boundaryEvent>"
    )
    fixed = doc(
        '<bpmn:startEvent id="s"/>' + bare + boundary + '<bpmn:endEvent id="e"/><bpmn:endEvent id="e2"/>'
        '<bpmn:sequenceFlow id="a" sourceRef="s" targetRef="t"/><bpmn:sequenceFlow id="b1" sourceRef="t" targetRef="e"/>'
        '<bpmn:sequenceFlow id="b2" sourceRef="b" targetRef="e2"/>'
    )
    assert validate(fixed).valid, validate(fixed).findings
    # so does a 'retries' input parameter
    retries = bare.replace(
        "/>",
        '><bpmn:extensionElements><camunda:inputOutput><camunda:inputParameter name="retries">3'
        "</camunda:inputParameter></camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>",
    )
    assert "governance.error-handling" not in found(doc(chain(retries)))
    # outside ProcOS the same gap is only a warning
    assert ("warning", "t") in found(doc(chain(bare), pid="invoice"))["governance.error-handling"]


def test_governance_probabilistic_needs_policy() -> None:
    prob = (
        '<bpmn:serviceTask id="p" camunda:type="external" camunda:topic="das-tde-probabilistic">'
        "<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R3/PT1M</camunda:failedJobRetryTimeCycle>"
        "</bpmn:extensionElements></bpmn:serviceTask>"
    )
    assert ("error", "p") in found(doc(chain(prob), pid="tde_x"))["governance.guardrail"]
    with_policy = prob.replace(
        "</bpmn:extensionElements>",
        '<camunda:inputOutput><camunda:inputParameter name="policy">'
        "default</camunda:inputParameter></camunda:inputOutput></bpmn:extensionElements>",
    )
    assert "governance.guardrail" not in found(doc(chain(with_policy), pid="tde_x"))


def test_governance_correlation_into_call_activity() -> None:
    call = (
        '<bpmn:callActivity id="ca" calledElement="sub"><bpmn:extensionElements>'
        "<camunda:failedJobRetryTimeCycle>R1/PT1M</camunda:failedJobRetryTimeCycle></bpmn:extensionElements>"
        "</bpmn:callActivity>"
    )
    assert ("error", "ca") in found(doc(chain(call)))["governance.correlation"]
    ok = call.replace(
        "<bpmn:extensionElements>",
        '<bpmn:extensionElements><camunda:in source="correlationId" target="correlationId"/>',
    )
    assert "governance.correlation" not in found(doc(chain(ok)))


def test_every_message_says_how_to_fix() -> None:
    text = doc(
        chain(
            '<bpmn:serviceTask id="t" camunda:type="external"/>',
            '<bpmn:scriptTask id="sc"><bpmn:script>x</bpmn:script></bpmn:scriptTask>',
            '<bpmn:callActivity id="ca" calledElement="x"/>',
        ),
        ttl=False,
    )
    findings = [f for f in validate(text).findings if f.severity != "info"]
    assert len(findings) >= 5
    fix_words = (
        "add",
        "set",
        "move",
        "use",
        "remove",
        "write",
        "fix",
        "rewrite",
        "attach",
        "connect",
        "point",
        "give",
    )
    for f in findings:
        assert any(w in f.message.lower() for w in fix_words), f.message


@pytest.mark.parametrize(
    "expr",
    [
        "${a > 1}",
        "${x.y(1, 'a}b')[0] == \"q\" && !empty z}",
        "${a ? b : c}",
        "${fn:upper(x) eq 'A'}",
        "${not a or b and c}",
        "${x mod 2 == 0}",
        "${execution.getVariable('v') != null}",
        "#{bean.ok}",
        "${tdeStatus == 'succeeded'}",
        "${-1.5e3 < n}",
    ],
)
def test_juel_accepts(expr: str) -> None:
    assert check_juel(expr, require_expression=True) is None


@pytest.mark.parametrize(
    "expr,why",
    [
        ("${a >}", "ends where a value"),
        ("${a", "unterminated"),
        ("${}", "empty"),
        ("${a.b.}", "property name"),
        ("${a ? b}", "expected ':'"),
        ("#{a} ${b}", "mixes"),
        ("amount > 1", "not a JUEL expression"),
        ("x ${a}", "mixes literal text"),
        ("${(a}", "expected ')'"),
        ("${a @ b}", "unexpected character"),
    ],
)
def test_juel_rejects(expr: str, why: str) -> None:
    err = check_juel(expr, require_expression=True)
    assert err is not None and why in err


@pytest.mark.parametrize(
    "kind,value,ok",
    [
        ("timeDuration", "PT5M", True),
        ("timeDuration", "P1DT12H", True),
        ("timeDuration", "PT", False),
        ("timeDuration", "PT5X", False),
        ("timeDuration", "${delay}", True),
        ("timeDate", "2025-01-31T09:00:00Z", True),
        ("timeDate", "tomorrow", False),
        ("timeCycle", "R3/PT10M", True),
        ("timeCycle", "R/PT1H", True),
        ("timeCycle", "0 0/5 * * * ?", True),
        ("timeCycle", "R3/2025-01-01T00:00:00Z/PT1H", True),
        ("timeCycle", "every day", False),
        ("timeCycle", "R3/PT", False),
        ("timeDuration", "", False),
    ],
)
def test_timers(kind: str, value: str, ok: bool) -> None:
    assert (check_timer(kind, value) is None) is ok


def test_call_target_of_a_compiled_file(tmp_path) -> None:
    """validate()'s docstring: known_processes=None means "not known" -> info; a given set
    (also an empty one, and validate_files / the CLI) -> error when the target is missing."""
    from click.testing import CliRunner

    from das.bpmn.compile import compile_to_xml
    from das.bpmn.validate import revalidate_tree, validate_files
    from das.commands.bpmn import bpmn

    xml = compile_to_xml(
        {
            "key": "peo_caller",
            "name": "Caller",
            "steps": [{"type": "call", "name": "Run it", "process_key": "tde_missing"}],
        }
    )
    call = [f for f in validate(xml).findings if f.rule == "camunda.call-target"]
    assert [(f.severity, "tde_missing" in f.message) for f in call] == [("info", True)]
    assert validate(xml).valid
    from das.bpmn.safexml import load_xml

    path = tmp_path / "caller.bpmn"
    path.write_text(xml)
    assert [
        f.severity
        for f in revalidate_tree(load_xml(str(path)), "caller.bpmn").findings
        if f.rule == "camunda.call-target"
    ] == ["info"]
    for known in ([], ["other"]):
        sev = {
            f.severity
            for f in validate(xml, known_processes=known).findings
            if f.rule == "camunda.call-target"
        }
        assert sev == {"error"}
    (report,) = validate_files([path])
    assert not report.valid and {f.rule for f in report.findings if f.severity == "error"} == {
        "camunda.call-target"
    }
    runner = CliRunner()
    assert runner.invoke(bpmn, ["validate", str(path)]).exit_code == 1
    assert runner.invoke(bpmn, ["validate", str(path), "--known", "tde_missing"]).exit_code == 0


def test_call_to_a_process_of_the_same_file_is_known_without_a_list() -> None:
    call = '<bpmn:callActivity id="ca" calledElement="peo_x"/>'
    assert "camunda.call-target" not in found(doc(chain(call)))


# -- executable content read as the engine reads it (das/bpmn/executable.py) -----------------
def _items(body: str, pid: str = "plain", allow: object = None) -> list:
    from das.bpmn.executable import AllowList, executable_content
    from das.bpmn.parse import parse

    return executable_content(
        parse(doc(chain(body), pid=pid).encode()), allow if allow is not None else AllowList()
    )


def test_shipped_processes_and_compiled_drafts_need_no_acknowledgement() -> None:
    """The stricter reading must not cry wolf: nothing DAS ships or compiles is flagged."""
    import json
    from pathlib import Path

    from das.bpmn.compile import compile_to_xml
    from das.bpmn.executable import executable_content
    from das.bpmn.parse import parse

    repo = Path(__file__).resolve().parents[2]
    sources = [p.read_bytes() for p in sorted((repo / "processes").glob("*.bpmn"))]
    drafts = [
        json.loads(p.read_text())
        for p in [
            repo / "tests" / "bpmn" / "authoring_all_features.json",
            *sorted((repo / "processes" / "src").glob("*.json")),
        ]
    ]
    sources += [compile_to_xml(d).encode() for d in drafts]
    assert len(sources) >= 9
    for source in sources:
        items = executable_content(parse(source))
        assert [i for i in items if i.flagged] == []


@pytest.mark.parametrize(
    "body,shown",
    [
        ("${ok}<!---->${bean.x()}", "${ok}${bean.x()}"),  # once listed as the plain ${ok}
        (
            "<!-- reviewed -->${approvals.grantAll(execution)}",
            "${approvals.grantAll(execution)}",
        ),  # once missed
        ("${ok<!-- a comment hides nothing here, but the split is still flagged -->}", "${ok}"),
        ("${ok<?pi x?>}", "${ok}"),
    ],
)
def test_condition_text_is_read_whole_and_a_split_is_flagged(body: str, shown: str) -> None:
    flow = f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{body}</bpmn:conditionExpression>'
    gateway = chain(
        '<bpmn:exclusiveGateway id="g" default="c2"/>',
        flows=(f'<bpmn:sequenceFlow id="fx" sourceRef="g" targetRef="e">{flow}</bpmn:sequenceFlow>'),
    )
    from das.bpmn.executable import AllowList, executable_content
    from das.bpmn.parse import parse

    items = executable_content(parse(doc(gateway, pid="plain").encode()), AllowList())
    assert [(i.element, i.content, i.flagged) for i in items] == [("fx", shown, True)]
    assert "comment" in items[0].where
    # the operator's allow-list is the only way to accept it without an acknowledgement
    import re

    allowed = executable_content(
        parse(doc(gateway, pid="plain").encode()), AllowList(expressions=(re.compile(re.escape(shown)),))
    )
    assert [i.flagged for i in allowed] == [False]


def test_input_parameter_with_a_comment_child_is_read_whole() -> None:
    task = (
        '<bpmn:userTask id="u"><bpmn:extensionElements><camunda:inputOutput><camunda:inputParameter name="x">'
        "${bean.run(execution)}<!-- --></camunda:inputParameter></camunda:inputOutput></bpmn:extensionElements>"
        "</bpmn:userTask>"
    )
    assert [(i.element, i.content, i.flagged) for i in _items(task)] == [
        ("u", "${bean.run(execution)}", True)
    ]


def test_java_classes_in_every_attribute_that_names_one() -> None:
    found_ = _items(
        '<bpmn:callActivity id="ca" calledElement="plain" camunda:variableMappingClass="com.x.Map"/>'
        '<bpmn:callActivity id="cb" calledElement="plain" camunda:variableMappingDelegateExpression="${mapper}"/>'
        '<bpmn:userTask id="u" camunda:formHandlerClass="com.x.Form"><bpmn:extensionElements><camunda:formData>'
        '<camunda:formField id="f" type="string"><camunda:validation>'
        '<camunda:constraint name="validator" config="com.x.V"/><camunda:constraint name="validator" config="${v}"/>'
        '<camunda:constraint name="maxlength" config="5"/></camunda:validation></camunda:formField></camunda:formData>'
        "</bpmn:extensionElements></bpmn:userTask>"
    )
    assert [(i.element, i.kind, i.content, i.flagged) for i in found_] == [
        ("ca", "class", "com.x.Map", True),
        ("cb", "delegate_expression", "${mapper}", True),
        ("u", "class", "com.x.Form", True),
        ("u", "class", "com.x.V", True),
        ("u", "delegate_expression", "${v}", True),
    ]


def test_unknown_camunda_values_are_flagged_even_when_plain_known_data_fields_are_not() -> None:
    found_ = _items(
        '<bpmn:userTask id="u" camunda:assignee="${owner}" camunda:futureHook="${hook}" '
        'name="Review ${bean.title()}"><bpmn:documentation>${bean.ignored()}</bpmn:documentation>'
        '<bpmn:extensionElements><flowable:taskListener xmlns:flowable="http://flowable.org/bpmn" '
        'event="create" class="com.x.L"/><camunda:unknownThing>${plain}</camunda:unknownThing>'
        '<camunda:inputOutput><camunda:inputParameter name="p">${plain}</camunda:inputParameter>'
        "</camunda:inputOutput></bpmn:extensionElements></bpmn:userTask>"
    )
    got = {(i.content, i.flagged) for i in found_}
    assert got == {
        ("${owner}", False),
        ("${hook}", True),
        ("Review ${bean.title()}", True),
        ("com.x.L", True),
        ("${plain}", True),
        ("${plain}", False),
    }
    assert "${bean.ignored()}" not in {i.content for i in found_}  # documentation never runs


def test_message_and_signal_names_and_performers_are_listed() -> None:
    from das.bpmn.executable import AllowList, executable_content
    from das.bpmn.parse import parse

    text = doc(
        chain(
            '<bpmn:userTask id="u"><bpmn:humanPerformer><bpmn:resourceAssignmentExpression>'
            "<bpmn:formalExpression>${users.pick(execution)}</bpmn:formalExpression>"
            "</bpmn:resourceAssignmentExpression></bpmn:humanPerformer></bpmn:userTask>"
        ),
        pid="plain",
    )
    text = text.replace(
        "<bpmn:process",
        '<bpmn:message id="M" name="${m.x()}"/><bpmn:signal id="S" name="${s}"/><bpmn:process',
    )
    got = [(i.element, i.content, i.flagged) for i in executable_content(parse(text.encode()), AllowList())]
    assert got == [("M", "${m.x()}", True), ("S", "${s}", False), ("u", "${users.pick(execution)}", True)]
