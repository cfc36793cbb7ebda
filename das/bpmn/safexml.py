"""Safe XML loading for BPMN files that come from anywhere (models, users, other tools).

Why this exists: BPMN is XML, and XML parsers will, unless told otherwise, expand entities
(billion laughs), read local files or URLs named by external entities, and swallow any size.
Every BPMN byte DAS reads goes through :func:`load_xml`, which

* refuses anything larger than ``max_bytes`` (default 10 MB) *before* reading it,
* refuses any ``<!DOCTYPE`` (hence every entity declaration) outright: BPMN never needs one,
* parses with lxml set to resolve no entities, load no DTD, touch no network, and keep
  libxml2's own huge-document limits on,
* and raises :class:`BpmnParseError` (an ``InvalidInput``: exit code 4) with one clear line.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from lxml import etree

from das.bpmn.ns import BPMN_NS
from das.errors import InvalidInput

DEFAULT_MAX_BYTES = 10 * 1024 * 1024

Source = str | bytes | os.PathLike[str]


class BpmnParseError(InvalidInput):
    """The input is not safe, well-formed BPMN XML. ``rule`` names which check failed."""

    def __init__(self, message: str, rule: str = "xml.syntax", source: str | None = None) -> None:
        super().__init__(message, rule=rule, source=source)
        self.rule = rule
        self.source = source


# A DOCTYPE can hide behind a BOM, an XML declaration, comments or processing instructions;
# scanning the whole (size-limited) input is simpler and safer than scanning a prolog.
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
    )


def read_limited(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a regular file of at most ``max_bytes``; refuse devices, FIFOs and larger files."""
    name = str(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise BpmnParseError(f"{name}: cannot read: {exc.strerror}", "xml.io", name) from None
    if not stat.S_ISREG(st.st_mode):
        raise BpmnParseError(f"{name}: not a regular file; pass a .bpmn file", "xml.io", name)
    if st.st_size > max_bytes:
        raise BpmnParseError(
            f"{name}: {st.st_size} bytes exceeds the {max_bytes}-byte limit; "
            "split the model or raise max_bytes if it is trusted",
            "xml.too-large",
            name,
        )
    with open(name, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew between stat and read
        raise BpmnParseError(
            f"{name}: more than {max_bytes} bytes; split the model or raise max_bytes",
            "xml.too-large",
            name,
        )
    return data


def _as_scannable(data: bytes) -> bytes:
    """Bytes in which an ASCII ``<!DOCTYPE`` is visible, whatever the document encoding."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
        for enc in ("utf-16", "utf-16-le", "utf-16-be"):
            try:
                return data.decode(enc).encode("utf-8", "replace")
            except UnicodeDecodeError:
                continue
    return data


def check_bytes(data: bytes, name: str = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse oversized input and any DTD or entity declaration before the parser sees it."""
    if len(data) > max_bytes:
        raise BpmnParseError(
            f"{name}: {len(data)} bytes exceeds the {max_bytes}-byte limit; "
            "split the model or raise max_bytes if it is trusted",
            "xml.too-large",
            name,
        )
    scan = _as_scannable(data)
    if _DOCTYPE.search(scan) or _ENTITY.search(scan):
        raise BpmnParseError(
            f"{name}: contains a <!DOCTYPE> or <!ENTITY> declaration, which BPMN never needs "
            "and DAS refuses (entity expansion, external files or URLs); remove it",
            "xml.doctype",
            name,
        )


def source_label(source: Source) -> str:
    """How to name ``source`` in a message: its path, or ``<bytes>`` / ``<string>``."""
    if isinstance(source, bytes):
        return "<bytes>"
    if isinstance(source, str) and source.lstrip().startswith("<"):
        return "<string>"
    return str(source)


def load_xml(
    source: Source, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None
) -> etree._ElementTree:
    """Parse XML from a path or bytes under the rules in the module docstring.

    A ``str`` is a path unless it starts with ``<`` (then it is the XML text itself).
    """
    if isinstance(source, bytes):
        data = source
        label = name or "<bytes>"
    elif isinstance(source, str) and source.lstrip().startswith("<"):
        data = source.encode("utf-8")
        label = name or "<string>"
        # the text is now UTF-8, whatever its declaration says
        data = re.sub(rb"^(\s*<\?xml[^>]*?)encoding=[\"'][^\"']*[\"']", rb"\1", data, count=1)
    else:
        label = name or str(source)
        data = read_limited(Path(source), max_bytes)
    check_bytes(data, label, max_bytes)
    if not data.strip():
        raise BpmnParseError(f"{label}: empty file; expected BPMN 2.0 XML", "xml.syntax", label)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc).splitlines()[0]
        line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise BpmnParseError(
            f"{label}: not well-formed XML{line}: {msg}; fix the XML (is the file truncated?)",
            "xml.syntax",
            label,
        ) from None
    except ValueError as exc:  # e.g. unsupported encoding declarations
        raise BpmnParseError(f"{label}: cannot parse: {exc}", "xml.syntax", label) from None
    tree = root.getroottree()
    if tree.docinfo.doctype:  # defence in depth; check_bytes should have refused it
        raise BpmnParseError(f"{label}: DOCTYPE is not allowed; remove it", "xml.doctype", label)
    return tree


def load_bpmn(
    source: Source, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None
) -> etree._ElementTree:
    """Like :func:`load_xml`, and the root must be a BPMN 2.0 ``definitions`` element."""
    tree = load_xml(source, max_bytes, name)
    root = tree.getroot()
    label = name or source_label(source)
    qn = etree.QName(root)
    if qn.localname != "definitions" or qn.namespace != BPMN_NS:
        found = f"{{{qn.namespace}}}{qn.localname}" if qn.namespace else qn.localname
        raise BpmnParseError(
            f"{label}: not BPMN 2.0: the root element is {found}, expected definitions in "
            f"namespace {BPMN_NS}",
            "xml.not-bpmn",
            label,
        )
    return tree
