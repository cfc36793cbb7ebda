"""Every XML namespace URI DAS reads or writes, and the one ``local()`` helper.

Why one module: BPMN elements are recognised by namespace URI, so a URI spelled twice can
drift (a typo in one copy silently stops a rule or the simulator from seeing an element).
Everything in ``das`` imports the URIs from here; tests/bpmn/test_ns.py checks that no other
module spells one out.
"""

from __future__ import annotations

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"  # legacy; Camunda 7 still reads it as camunda:
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
FLOWABLE_NS = "http://flowable.org/bpmn"
MODELER_NS = "http://camunda.org/schema/modeler/1.0"
COLOR_NS = "http://www.omg.org/spec/BPMN/non-normative/color/1.0"
BIOC_NS = "http://bpmn.io/schema/bpmn/biocolor/1.0"
DAS_NS = "https://procos.dev/schema/das/1.0"

# expressionLanguage value BPMN defines for JUEL (Camunda's default language)
JUEL_LANGUAGE = BPMN_NS + "/JUEL"

# targetNamespace of documents DAS creates: edits' blank document, the compiler's output
EDITS_TARGET_NS = "http://bpmn.io/schema/bpmn"
COMPILE_TARGET_NS = "http://procos.io/das/bpmn"

# prefix -> namespace for documents DAS writes (compiler output, new documents from edits)
WRITE_NSMAP: dict[str, str] = {
    "bpmn": BPMN_NS,
    "bpmndi": BPMNDI_NS,
    "dc": DC_NS,
    "di": DI_NS,
    "camunda": CAMUNDA_NS,
    "xsi": XSI_NS,
}

# namespace URI -> canonical prefix used in model attribute keys
KNOWN_PREFIXES: dict[str, str] = {
    CAMUNDA_NS: "camunda",
    ACTIVITI_NS: "camunda",
    ZEEBE_NS: "zeebe",
    XSI_NS: "xsi",
    DAS_NS: "das",
    MODELER_NS: "modeler",
    FLOWABLE_NS: "flowable",
    COLOR_NS: "color",
    BIOC_NS: "bioc",
}
# canonical prefix -> namespace URI (the inverse, with camunda: meaning Camunda's own URI)
PREFIX_NS: dict[str, str] = {
    "camunda": CAMUNDA_NS,
    "zeebe": ZEEBE_NS,
    "xsi": XSI_NS,
    "das": DAS_NS,
    "modeler": MODELER_NS,
    "flowable": FLOWABLE_NS,
    "color": COLOR_NS,
    "bioc": BIOC_NS,
}


def local(el: etree._Element) -> str:
    """Local name of an element's tag (``{ns}task`` -> ``task``); "" for comments and PIs."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.split("}", 1)[1] if tag.startswith("{") else tag
