"""What the compiler's two halves share: the graph it builds, its result.

``compile.py`` turns the authoring form into this graph; ``compile_xml.py`` renders it with
a diagram. Both import this module, never each other's privates, so there is no import cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lxml import etree

from das.bpmn.ns import WRITE_NSMAP

if TYPE_CHECKING:
    from das.bpmn.authoring import Process  # typing only

KIND = {
    "startEvent": "event",
    "endEvent": "event",
    "intermediateCatchEvent": "event",
    "intermediateThrowEvent": "event",
    "boundaryEvent": "event",
    "exclusiveGateway": "gateway",
    "inclusiveGateway": "gateway",
    "parallelGateway": "gateway",
}


def q(tag: str) -> str:
    prefix, local = tag.split(":")
    return f"{{{WRITE_NSMAP[prefix]}}}{local}"


@dataclass
class Node:
    id: str
    tag: str
    name: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    container: str | None = None
    lane: str | None = None
    attached_to: str | None = None
    extras: list[Any] = field(default_factory=list)  # ("io", [(k, v)]), ("in", s, t), ...
    children: list[etree._Element] = field(default_factory=list)  # event defs, loop chars


@dataclass
class Flow:
    id: str
    source: str
    target: str
    container: str | None
    condition: str | None = None
    listeners: list[str] = field(default_factory=list)
    association: bool = False
    name: str | None = None


@dataclass
class CompileResult:
    """The XML text and any layout findings (empty when the diagram is complete)."""

    xml: str
    findings: list[str]


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "x"
    return s if s[0].isalpha() else f"x{s}"


class Graph(Protocol):
    """The compiled process as the renderer reads it."""

    proc: Process
    pid: str
    nodes: dict[str, Node]
    flows: dict[str, Flow]
    errors: dict[str, str]
    messages: dict[str, str]

    def uid(self, base: str) -> str: ...
