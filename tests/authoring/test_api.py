"""The HTTP API and the CLI's remote mode over a real `das api serve` (real SQLite, real HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_api import LiveApi


@pytest.fixture
def live(das_home: Path) -> Iterator[LiveApi]:
    server = LiveApi(das_home)
    yield server
    assert "Traceback" not in server.stop()


def test_draft_list_show_approve_through_the_api(live: LiveApi) -> None:
    alice, bob = live.token("alice", "author"), live.token("bob", "reviewer")
    with live.client(alice) as a:
        assert a.get("/api/me").json() == {"user": "alice", "role": "author", "proof": "token"}
        filed = a.post("/api/drafts", json={"prompt": "Check the invoice, then pay it", "key": "invoice_api"})
        assert filed.status_code == 201, filed.text
        pid = filed.json()["proposal_id"]
        assert [r["id"] for r in a.get("/api/proposals").json()] == [pid]
        assert a.get("/api/proposals", params={"status": "deployed"}).json() == []
        shown = a.get(f"/api/proposals/{pid}").json()
        assert shown["author"] == "alice" and shown["history"][0]["proof"] == "token"
        assert a.get("/api/proposals/p-missing").status_code == 404
        assert a.get("/api/proposals", params={"status": "bogus"}).status_code == 422
    with live.client(bob) as b:
        done = b.post(f"/api/proposals/{pid}/approve", json={"comment": "fine"})
    assert done.status_code == 200 and done.json()["status"] == "deployed"
    assert done.json()["approvals"] == ["bob"] and done.json()["approvals_needed"] == 1
    history = live.queue.get(pid).history
    assert [(h.actor, h.action) for h in history] == [
        ("alice", "filed"),
        ("bob", "approve"),
        ("kernel", "deployed"),
    ]
    assert history[1].artifact_sha256 == live.queue.get(pid).artifact_sha256()


def test_cli_acts_through_the_api_as_the_tokens_user(live: LiveApi, tmp_path: Path) -> None:
    alice, bob = live.token("alice", "author"), live.token("bob", "reviewer")
    client_home = tmp_path / "client_home"  # the client has no store of its own

    def das(*args: str, token: str) -> subprocess.CompletedProcess[str]:
        env = {
            **live.env,
            "DAS_HOME": str(client_home),
            "DAS_API_URL": live.url,
            "DAS_TOKEN": token,
            "LOGNAME": "root",
            "USER": "root",
        }
        return subprocess.run(
            [sys.executable, "-m", "das", *args], capture_output=True, text=True, env=env, timeout=120
        )

    drafted = das("draft", "Ship the order", "--key", "orders_cli", "--format", "json", token=alice)
    assert drafted.returncode == 0, drafted.stderr
    pid = json.loads(drafted.stdout)["proposal_id"]
    listed = das("queue", "list", "--format", "json", token=alice)
    assert [r["author"] for r in json.loads(listed.stdout)] == ["alice"]
    own = das("approve", pid, token=alice)
    assert own.returncode == 1 and "role author" in own.stderr and own.stderr.count("\n") == 1
    shown = das("queue", "show", "last", token=bob)
    assert shown.returncode == 0 and f"proposal {pid}" in shown.stdout
    ok = das("approve", pid, "--format", "json", token=bob)
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == "deployed"
    assert not (client_home / "das.db").exists()  # nothing went to a local store
    bad = das("queue", "list", token="das_000000000000_" + "x" * 43)
    assert bad.returncode == 2 and "invalid" in bad.stderr


def test_login_saves_credentials_privately(live: LiveApi, tmp_path: Path) -> None:
    bob = live.token("bob", "reviewer")
    env = {**live.env, "DAS_HOME": str(tmp_path / "client")}
    out = subprocess.run(
        [sys.executable, "-m", "das", "login", live.url, "--token-stdin", "--format", "json"],
        input=bob + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["user"] == "bob"
    creds = tmp_path / "client" / "credentials.json"
    assert creds.stat().st_mode & 0o077 == 0
    listed = subprocess.run(
        [sys.executable, "-m", "das", "queue", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0 and "no proposals" in listed.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "das", "login", live.url, "--token-stdin"],
        input="nope\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert wrong.returncode == 2 and "invalid token" in wrong.stderr


def test_user_cli_prints_the_token_once_and_lists_no_secrets(das_home: Path) -> None:
    run = [sys.executable, "-m", "das", "user"]
    added = subprocess.run(
        [*run, "add", "carol", "--role", "reviewer", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(added.stdout)
    assert set(data) == {"user", "role", "token"} and data["token"].startswith("das_")
    again = subprocess.run(
        [*run, "add", "Carol", "--role", "admin"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "exists" in again.stderr
    listed = subprocess.run(
        [*run, "list", "--format", "json"], capture_output=True, text=True, timeout=60
    ).stdout
    assert data["token"] not in listed and json.loads(listed)[0]["name"] == "carol"
    revoked = subprocess.run(
        [*run, "revoke", "carol", "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert json.loads(revoked.stdout)["revoked_at"]
