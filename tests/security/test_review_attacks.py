"""Attacks on the reviewer side (issue 23, findings 6, 7 and 9), each against a real
`das api serve` over HTTP: approvals bound to principal ids, executable content a reviewer
cannot miss, and the HTTP edges (repeated identity headers, forwarded proto, downloads)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from executable_samples import SAMPLES, sample_xml
from live_api import LiveApi


def _users(live: LiveApi):
    from das.identity import Users
    from das.store import open_store

    return Users(open_store(live.home / "das.db"))


def _history(live: LiveApi, pid: str) -> list[dict]:
    """The history rows as stored (any version of the schema)."""
    from das.store import open_store

    return [
        dict(r)
        for r in open_store(live.home / "das.db").db.execute(
            "SELECT * FROM proposal_history WHERE proposal_id = ? ORDER BY id", (pid,)
        )
    ]


# -- finding 6: approvals bound to a principal, not a name -------------------------------------
def test_reviewer_added_back_under_the_same_name_does_not_inherit_the_old_approval(
    live: LiveApi, tokens
) -> None:
    """Tried: bob approves invoice (two approvals needed), is revoked, and a new user named bob
    is added; then carol approves. Matched by name, the old bob's approval would count again
    and carol's would deploy it."""
    p = live.file(key="invoice")
    with live.client(tokens["bob"]) as bob:
        assert bob.post(f"/api/proposals/{p.id}/approve", json={}).json()["approvals"] == ["bob"]
    users = _users(live)
    users.revoke("bob")
    _, new_token = users.add("bob", "reviewer")
    assert live.queue.approvals(live.queue.get(p.id)) == []
    with live.client(tokens["carol"]) as carol:
        r = carol.post(f"/api/proposals/{p.id}/approve", json={})
    assert r.status_code == 200 and r.json()["status"] == "proposed" and r.json()["approvals"] == ["carol"]
    approve = [h for h in _history(live, p.id) if h["action"] == "approve"]
    old_id = approve[0]["principal_id"]  # the history names the principal and the credential used
    assert old_id and old_id != users.get("bob").principal_id  # a name added back is a new principal
    assert approve[0]["credential"] == "token:" + tokens["bob"].split("_")[1]
    with live.client(new_token) as new_bob:  # the new bob is a reviewer in his own right
        done = new_bob.post(f"/api/proposals/{p.id}/approve", json={})
    assert done.json()["status"] == "deployed" and done.json()["approvals"] == ["bob", "carol"]


def test_revoking_a_reviewer_voids_their_approval_of_an_undeployed_proposal(live: LiveApi, tokens) -> None:
    """Tried: bob's approval is recorded (approved, not yet deployed), then `das user revoke bob`;
    carol then asks for the deployment. The revoked approval must not deploy anything."""
    p = live.file(key="demo")
    bob = _users(live).authenticate(tokens["bob"])
    assert live.queue.approve(p.id, bob).status == "approved"  # the kernel would deploy it next
    out = subprocess.run(
        [sys.executable, "-m", "das", "user", "revoke", "bob"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DAS_HOME": str(live.home)},
    )
    assert out.returncode == 0, out.stderr
    after = live.queue.get(p.id)
    assert after.status == "proposed" and live.queue.approvals(after) == []
    voided = [h for h in _history(live, p.id) if h["action"] == "approval_voided"]
    assert (
        len(voided) == 1 and "bob" in voided[0]["comment"] and voided[0]["principal_id"] == bob.principal_id
    )
    with live.client(tokens["carol"]) as carol:
        assert carol.post(f"/api/proposals/{p.id}/redeploy", json={}).status_code == 409
    assert live.queue.get(p.id).status == "proposed"
    assert not (live.home / "registry" / "demo").exists()


# -- finding 7: executable content visible, flagged, acknowledged --------------------------------
@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_executable_content_hidden_in_a_new_process(live: LiveApi, tokens, kind: str) -> None:
    """Tried: alice proposes a new process carrying one kind of executable content (a listener
    class, a Groovy script task, an expression, a delegate expression, an input/output script,
    a connector, a condition calling a bean ...); bob approves it as he would any other."""
    xml = sample_xml(kind)
    _, shown, item_kind = SAMPLES[kind]
    with live.client(tokens["alice"]) as alice:
        filed = alice.post("/api/proposals", json={"bpmn": xml, "name": "demo.bpmn"})
    assert filed.status_code == 201, filed.text
    pid = filed.json()["proposal_id"]
    with live.client(tokens["bob"]) as bob:
        proposal = bob.get(f"/api/proposals/{pid}").json()
        items = [i for i in proposal["diff"]["executable"] if i["content"] == shown]
        assert items and items[0]["kind"] == item_kind and items[0]["flagged"], proposal["diff"]["executable"]
        assert any(
            f["rule"] == "governance.no-script" and shown in f["message"]
            for f in proposal["validation"]["findings"]
        )
        diff = bob.get(f"/proposals/{pid}/diff.json").json()
        assert any(i["content"] == shown and i["flagged"] for i in diff["executable"])
        page = bob.get(f"/proposals/{pid}").text
        data = json.loads(
            re.search(r"<script type='application/json' id='das-data'>(.*?)</script>", page, re.S).group(1)
        )
        assert any(i["content"] == shown and i["flagged"] for i in data["executable"])
        assert "Executable content" in page and "ack_executable" in page
        refused = bob.post(f"/api/proposals/{pid}/approve", json={"comment": "looks fine"})
        assert refused.status_code == 409 and "acknowledg" in refused.json()["error"]
        assert live.queue.get(pid).status == "proposed"
        ok = bob.post(f"/api/proposals/{pid}/approve", json={"ack_executable": True})
    assert ok.status_code == 200 and ok.json()["status"] == "deployed", ok.text
    approve = [h for h in live.queue.get(pid).history if h.action == "approve"]
    assert len(approve) == 1 and approve[0].acknowledged and shown[:40] in approve[0].acknowledged


def test_page_approve_of_a_script_without_ticking_the_acknowledgement(live: LiveApi, tokens) -> None:
    """Tried: a signed-in reviewer posts the page's approve form for a script task without the
    acknowledgement checkbox (the browser's `required` bypassed), then with it."""
    with live.client(tokens["alice"]) as alice:
        pid = alice.post("/api/proposals", json={"bpmn": sample_xml("groovy_script_task")}).json()[
            "proposal_id"
        ]
    with live.client() as browser:
        assert browser.post("/login", data={"username": "bob", "token": tokens["bob"]}).status_code == 303
        page = browser.get(f"/proposals/{pid}").text
        csrf = re.search(r"name='csrf' value='([^']+)'", page).group(1)
        assert "name='ack_executable'" in page and "curl evil.example" in page
        bare = browser.post(f"/proposals/{pid}/approve", data={"csrf": csrf, "comment": "ok"})
        assert bare.status_code == 409 and "acknowledg" in bare.text
        assert live.queue.get(pid).status == "proposed"
        ticked = browser.post(f"/proposals/{pid}/approve", data={"csrf": csrf, "ack_executable": "yes"})
        assert ticked.status_code == 303
    assert live.queue.get(pid).status == "deployed"


def test_cli_approve_of_a_listener_class_without_ack_executable(live: LiveApi, tokens) -> None:
    """Tried: the operator's `das approve ID` on a process with an execution-listener class,
    without and then with --ack-executable."""
    with live.client(tokens["alice"]) as alice:
        pid = alice.post("/api/proposals", json={"bpmn": sample_xml("execution_listener_class")}).json()[
            "proposal_id"
        ]
    env = {k: v for k, v in os.environ.items() if k not in ("DAS_API_URL", "DAS_TOKEN", "DAS_ENGINE_URL")}
    env["DAS_HOME"] = str(live.home)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "das", "approve", pid, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    plain = run()
    assert (
        plain.returncode == 1 and "--ack-executable" in plain.stderr and "com.evil.Backdoor" in plain.stderr
    )
    assert live.queue.get(pid).status == "proposed"
    shown = subprocess.run(
        [sys.executable, "-m", "das", "queue", "show", pid],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "com.evil.Backdoor" in shown.stdout and "executable content" in shown.stdout
    acked = run("--ack-executable")
    assert acked.returncode == 0, acked.stderr
    assert live.queue.get(pid).status == "deployed"


def test_wrapper_tools_are_named_on_the_page(live: LiveApi, tokens) -> None:
    """Tried: a proposal whose TDE wrappers' policies name tools (one names none); the reviewer
    must see which tools each wrapper would get before approving it."""
    p = live.file(
        key="demo",
        tde_wrappers=[
            {
                "task_type": "fetch_rates",
                "executor": {"kind": "probabilistic"},
                "policy": {"allowed_tools": ["http_request", "json_query"]},
            },
            {
                "task_type": "tidy_text",
                "executor": {"kind": "probabilistic"},
                "policy": {"max_iterations": 4},
            },
        ],
    )
    with live.client(tokens["bob"]) as bob:
        page = bob.get(f"/proposals/{p.id}").text
    data = json.loads(
        re.search(r"<script type='application/json' id='das-data'>(.*?)</script>", page, re.S).group(1)
    )
    assert data["tde_tools"] == {"fetch_rates": ["http_request", "json_query"], "tidy_text": None}
    assert (
        "<td>http_request, json_query</td>" in page and "none named: finish and read-only tools only" in page
    )


# -- finding 9: the HTTP edges ------------------------------------------------------------------
def test_two_identity_headers_of_the_same_name(das_home: Path) -> None:
    """Tried: behind the SSO proxy, a request carrying two X-Remote-User headers (bob first,
    carol second) with the proxy's secret; two Authorization headers; two session cookies."""
    secret = secrets.token_urlsafe(24)
    live = LiveApi(
        das_home,
        "--trust-proxy-header",
        "X-Remote-User",
        "--proxy-secret-env",
        "DAS_TEST_PROXY_SECRET",
        env={"DAS_TEST_PROXY_SECRET": secret},
    )
    try:
        bob, carol = live.token("bob", "reviewer"), live.token("carol", "admin")
        with live.client() as anon:
            two_users = anon.get(
                "/api/me",
                headers=[("X-Remote-User", "bob"), ("X-Remote-User", "carol"), ("X-Proxy-Secret", secret)],
            )
            assert two_users.status_code == 400 and "x-remote-user" in two_users.json()["error"]
            two_secrets = anon.get(
                "/api/me",
                headers=[("X-Remote-User", "bob"), ("X-Proxy-Secret", secret), ("X-Proxy-Secret", "other")],
            )
            assert two_secrets.status_code == 400
            two_tokens = anon.get(
                "/api/me", headers=[("Authorization", f"Bearer {bob}"), ("Authorization", f"Bearer {carol}")]
            )
            assert two_tokens.status_code == 400
            two_cookies = anon.get("/api/me", headers=[("Cookie", "das_session=a; das_session=b")])
            assert two_cookies.status_code == 400
            one = anon.get("/api/me", headers={"X-Remote-User": "bob", "X-Proxy-Secret": secret})
            assert one.json()["user"] == "bob"
    finally:
        assert "Traceback" not in live.stop()


def _login_cookie(live: LiveApi, token: str, **headers: str) -> str:
    with live.client() as browser:
        r = browser.post("/login", data={"username": "bob", "token": token}, headers=headers)
    assert r.status_code == 303, r.text
    return r.headers["set-cookie"].lower()


def test_forwarded_proto_is_believed_only_from_a_configured_proxy(das_home: Path, tmp_path: Path) -> None:
    """Tried: sign in with X-Forwarded-Proto: https (a) through the operator's TLS proxy, which
    must make the session cookie Secure, and (b) from a peer that is not a configured proxy
    (another server whose DAS_TRUSTED_PROXIES names 10.0.0.0/8), whose claim must be ignored."""
    trusted = LiveApi(das_home, env={"DAS_TRUSTED_PROXIES": "127.0.0.1, ::1"})
    try:
        token = trusted.token("bob", "reviewer")
        assert "secure" in _login_cookie(trusted, token, **{"X-Forwarded-Proto": "https"})
        assert "secure" not in _login_cookie(trusted, token, **{"X-Forwarded-Proto": "http"})
        assert "secure" not in _login_cookie(trusted, token)
    finally:
        assert "Traceback" not in trusted.stop()
    other = LiveApi(tmp_path / "other_home", env={"DAS_TRUSTED_PROXIES": "10.0.0.0/8"})
    try:
        token = other.token("bob", "reviewer")
        assert "secure" not in _login_cookie(other, token, **{"X-Forwarded-Proto": "https"})
    finally:
        assert "Traceback" not in other.stop()


def test_non_ascii_proposal_key_download(live: LiveApi, tokens) -> None:
    """Tried: alice proposes a process whose id is Cyrillic; bob downloads its BPMN and diff."""
    from das.bpmn.compile import compile_to_xml

    xml = compile_to_xml({"key": "demo", "name": "demo", "steps": [{"type": "user", "name": "Review"}]})
    xml = xml.replace('"demo"', '"процесс"')
    with live.client(tokens["alice"]) as alice:
        filed = alice.post("/api/proposals", json={"bpmn": xml})
    assert filed.status_code == 201, filed.text
    pid = filed.json()["proposal_id"]
    with live.client(tokens["bob"]) as bob:
        for path in (f"/proposals/{pid}/artifact.bpmn", f"/proposals/{pid}/diff.json"):
            r = bob.get(path)
            assert r.status_code == 200, (path, r.text)
            disposition = r.headers["content-disposition"]
            assert "filename*=UTF-8''%D0%BF%D1%80%D0%BE%D1%86%D0%B5%D1%81%D1%81-1.0.0." in disposition
            assert re.search(r'filename="[\x20-\x7e]+"', disposition)
    assert httpx.get(live.url + f"/proposals/{pid}/artifact.bpmn").status_code in (303, 401)
