"""`das store migrate` and `das store copy`: an existing SQLite store moves to PostgreSQL whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from needs import NO_POSTGRES, missing

from das.authoring.queue import Queue, new_proposal_id
from das.cli import main
from das.contracts import Proposal
from das.identity import Users
from das.store.db import Store


def _filled(path: Path) -> tuple[Store, str]:
    src = Store(path)
    q = Queue(src)
    p = q.file(Proposal(id=new_proposal_id(), key="triage", version="1.0.0", artifact="<x/>", author="alice"))
    Users(src).add("bob", "reviewer")
    src.save_run("task-1", "classify", "c-1", "succeeded", "completed", {"label": "a"}, True)
    src.claim_effect("task-1:mail", "send_mail")
    src.audit("op", "test", "x", {"n": 1})
    return src, p.id


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_copy_sqlite_to_postgres_keeps_every_row_and_refuses_a_second_copy(
    tmp_path: Path, pg_server: object, capsys: pytest.CaptureFixture[str]
) -> None:
    if pg_server is None:
        missing("DAS_REQUIRE_POSTGRES", NO_POSTGRES)
    src, pid = _filled(tmp_path / "old.db")
    url = pg_server.new_database()  # type: ignore[attr-defined]
    code, out, err = _run(
        capsys, "store", "copy", "--from", str(tmp_path / "old.db"), "--to", url, "--format", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"]["proposals"] == 1 and report["rows"]["proposal_history"] == 1
    assert (
        report["rows"]["users"] == 1
        and report["rows"]["results"] == 1
        and report["rows"]["tool_effects"] == 1
    )
    dst = Store(url)
    assert Queue(dst).get(pid).model_dump() == Queue(src).get(pid).model_dump()
    assert dst.get_result("task-1") == {"label": "a"}
    assert dst.claim_effect("task-1:mail", "send_mail") == ("started", None)  # the claim moved too
    assert [u.name for u in Users(dst).list()] == ["bob"]
    # ids continue after the copied ones: a new history row does not collide with a copied one
    with dst.transaction() as db:
        db.execute(
            "INSERT INTO proposal_history (proposal_id, actor, action) VALUES (?, 'op', 'note')", (pid,)
        )
    assert len(Queue(dst).get(pid).history) == 2
    code, _out, err = _run(capsys, "store", "copy", "--from", str(tmp_path / "old.db"), "--to", url)
    assert code == 4 and "not empty" in err and "Traceback" not in err


def test_migrate_reports_the_store_and_its_migrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = _run(capsys, "store", "migrate", "--url", str(tmp_path / "s.db"), "--format", "json")
    data = json.loads(out)
    assert (
        code == 0 and data["backend"] == "sqlite" and data["migrations"][0] == "m001_idempotency_and_traces"
    )
    code, out, _err = _run(capsys, "store", "migrate", "--url", str(tmp_path / "s.db"), "--format", "json")
    assert json.loads(out)["applied_now"] == []


def test_a_store_url_that_is_neither_backend_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAS_STORE_URL", "mysql://u:pw@h/db")
    code, _out, err = _run(capsys, "store", "migrate")
    assert code == 2 and "postgresql://" in err and "pw" not in err
