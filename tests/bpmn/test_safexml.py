"""Hostile and broken inputs: each must be a clear BpmnParseError (or finding) within a second,
with no file read and no network access."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from das.bpmn.parse import parse
from das.bpmn.safexml import BpmnParseError, load_bpmn, load_xml
from das.bpmn.validate import validate
from das.errors import InvalidInput

MINIMAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p"><startEvent id="s"/></process>
</definitions>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p" name="&lol9;"/>
</definitions>"""


def _xxe(uri: str) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "{uri}">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="p" name="&xxe;"/>
</definitions>""".encode()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record (and refuse) any socket connection attempt made while parsing."""
    attempts: list[tuple] = []

    def refuse(self, address, *a, **k):  # type: ignore[no-untyped-def]
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))
    return attempts


def _rejects_fast(data: bytes, rule: str) -> BpmnParseError:
    t0 = time.perf_counter()
    with pytest.raises(BpmnParseError) as info:
        load_bpmn(data)
    assert time.perf_counter() - t0 < 1.0
    assert info.value.rule == rule
    assert isinstance(info.value, InvalidInput) and info.value.exit_code == 4
    assert "\n" not in info.value.message
    return info.value


def test_minimal_bpmn_loads() -> None:
    tree = load_bpmn(MINIMAL)
    assert tree.getroot().get("id") == "d"


def test_billion_laughs_is_refused_without_expansion() -> None:
    # tried: nine levels of nested entities (10^9 "lol"s) referenced from an attribute
    err = _rejects_fast(BILLION_LAUGHS, "xml.doctype")
    assert "DOCTYPE" in err.message


def test_external_entity_file_is_refused_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tried: <!ENTITY xxe SYSTEM "file:///.../secret.txt"> used in a name attribute
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    opened: list[str] = []
    real_open = open

    def spy_open(file, *a, **k):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy_open)
    err = _rejects_fast(_xxe(secret.as_uri()), "xml.doctype")
    assert "TOP-SECRET" not in err.message
    assert str(secret) not in opened


def test_external_entity_http_is_refused_without_network(no_network: list[tuple]) -> None:
    # tried: <!ENTITY xxe SYSTEM "http://127.0.0.1:9/evil.dtd">
    _rejects_fast(_xxe("http://127.0.0.1:9/evil.dtd"), "xml.doctype")
    assert no_network == []


def test_external_dtd_reference_is_refused(no_network: list[tuple]) -> None:
    # tried: a DOCTYPE with a SYSTEM id (external DTD) and no internal subset
    data = b'<?xml version="1.0"?><!DOCTYPE definitions SYSTEM "http://127.0.0.1:9/x.dtd"><definitions/>'
    _rejects_fast(data, "xml.doctype")
    assert no_network == []


def test_doctype_hidden_in_utf16_is_refused() -> None:
    # tried: the billion-laughs document re-encoded as UTF-16 (a naive byte scan would miss it)
    _rejects_fast(
        BILLION_LAUGHS.decode()
        .replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?')
        .encode("utf-16"),
        "xml.doctype",
    )


def test_50_mb_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tried: a sparse 50 MB file; the size check must happen on stat, before any read
    big = tmp_path / "big.bpmn"
    with open(big, "wb") as fh:
        fh.write(b"<definitions>")
        fh.truncate(50 * 1024 * 1024)
    reads: list[str] = []
    real_open = open

    def spy_open(file, *a, **k):  # type: ignore[no-untyped-def]
        reads.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy_open)
    t0 = time.perf_counter()
    with pytest.raises(BpmnParseError) as info:
        load_bpmn(big)
    assert time.perf_counter() - t0 < 1.0
    assert info.value.rule == "xml.too-large"
    assert "10485760" in info.value.message
    assert str(big) not in reads


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    f = tmp_path / "m.bpmn"
    f.write_bytes(MINIMAL)
    with pytest.raises(BpmnParseError, match="exceeds the 100-byte limit"):
        load_bpmn(f, max_bytes=100)
    assert load_bpmn(f, max_bytes=len(MINIMAL)).getroot() is not None
    with pytest.raises(BpmnParseError, match="limit"):
        load_bpmn(MINIMAL, max_bytes=10)


def test_non_bpmn_xml_is_a_clear_error() -> None:
    # tried: a well-formed XHTML document
    err = _rejects_fast(b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', "xml.not-bpmn")
    assert "expected definitions" in err.message
    # tried: BPMN's local name in the wrong namespace
    _rejects_fast(b'<definitions xmlns="http://example.com/not-bpmn"/>', "xml.not-bpmn")


def test_truncated_xml_is_a_clear_error() -> None:
    # tried: a valid document cut in the middle of an element
    err = _rejects_fast(MINIMAL[: len(MINIMAL) // 2], "xml.syntax")
    assert "not well-formed" in err.message and "truncated" in err.message


@pytest.mark.parametrize("data", [b"", b"   \n", b"\x00\x01\x02garbage", b"not xml at all"])
def test_garbage_is_a_clear_error(data: bytes) -> None:
    # tried: empty input, whitespace, binary junk, plain text
    with pytest.raises(BpmnParseError):
        load_bpmn(data)


def test_directory_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BpmnParseError, match="not a regular file"):
        load_xml(tmp_path)
    with pytest.raises(BpmnParseError, match="cannot read"):
        load_xml(tmp_path / "missing.bpmn")


def test_validate_turns_hostile_input_into_a_finding(tmp_path: Path) -> None:
    f = tmp_path / "laughs.bpmn"
    f.write_bytes(BILLION_LAUGHS)
    t0 = time.perf_counter()
    report = validate(f)
    assert time.perf_counter() - t0 < 1.0
    assert not report.valid
    assert [x.rule for x in report.findings] == ["xml.doctype"]
    assert report.file == str(f)


def test_parse_raises_typed_error() -> None:
    with pytest.raises(BpmnParseError):
        parse(b"<definitions")
