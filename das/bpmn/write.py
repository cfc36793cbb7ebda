"""The graph model back to BPMN XML, losing nothing.

Why so short: the model is a view over the lxml tree it was parsed from, and edit operations
change that tree, so writing is serialising the tree. Vendor extensions, DI, documentation,
comments and namespace prefixes come back exactly as they were read.
"""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from das.bpmn.model import Definitions


def to_bytes(defs: Definitions, pretty: bool = False) -> bytes:
    """The document as UTF-8 XML with a declaration."""
    if defs.tree is None:
        raise ValueError("this Definitions has no XML tree; build it with parse() or edits.new_definitions()")
    tree = defs.tree
    if pretty:  # re-indent a copy; the model's own tree stays as read
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        tree = etree.fromstring(etree.tostring(tree), parser).getroottree()
        etree.indent(tree, space="  ")
    # serialise the whole tree, not the root, so comments before the root survive; end with a
    # newline as text files (and DAS's compiler) do, so parse -> write of DAS output is byte-stable
    data = etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=pretty)
    return data if data.endswith(b"\n") else data + b"\n"


def to_string(defs: Definitions, pretty: bool = False) -> str:
    return to_bytes(defs, pretty).decode("utf-8")


def write(defs: Definitions, path: str | os.PathLike[str], pretty: bool = False) -> Path:
    """Write the document to ``path`` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_bytes(defs, pretty))
    return out
