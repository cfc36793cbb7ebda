"""Attacks on the way from approval to deployment: forged status, stale approvals, bad task types."""

from __future__ import annotations

import subprocess
import sys

from live_api import LiveApi


def test_redeploy_a_proposal_that_is_still_proposed(live: LiveApi, tokens) -> None:
    """Tried: `redeploy` (API and CLI) of a proposal nobody approved; nothing may be written."""
    p = live.file()
    with live.client(tokens["bob"]) as bob:
        r = bob.post(f"/api/proposals/{p.id}/redeploy", json={})
    assert r.status_code == 409 and "only approved proposals deploy" in r.json()["error"]
    cli = subprocess.run(
        [sys.executable, "-m", "das", "queue", "redeploy", p.id],
        capture_output=True,
        text=True,
        env=live.env,
        timeout=60,
    )
    assert cli.returncode != 0 and "only approved" in cli.stderr
    assert not (live.home / "registry").exists() and live.queue.get(p.id).status == "proposed"


def test_forged_approved_status_in_the_database(live: LiveApi, tokens) -> None:
    """Tried: set proposals.status = 'approved' directly, then redeploy and let the kernel deploy."""
    from das.authoring.deploy import deploy_pending

    p = live.file()
    live.queue.store.db.execute("UPDATE proposals SET status = 'approved' WHERE id = ?", (p.id,))
    with live.client(tokens["bob"]) as bob:
        r = bob.post(f"/api/proposals/{p.id}/redeploy", json={})
    assert r.status_code == 409 and "0 valid approval" in r.json()["error"]
    outcomes = deploy_pending(live.queue)
    assert [(o.proposal.id, bool(o.refused)) for o in outcomes] == [(p.id, True)]
    assert not (live.home / "registry").exists() and live.queue.current_version("demo") is None


def test_approval_of_the_old_artifact_counts_after_a_rebase(live: LiveApi, tokens) -> None:
    """Tried: on a two-approval key, bob approves, the artifact is swapped by a rebase, carol
    approves the new text: one person has seen it, so it must not deploy."""
    p = live.file(key="peo_example")
    with live.client(tokens["bob"]) as bob:
        assert bob.post(f"/api/proposals/{p.id}/approve", json={}).json()["status"] == "proposed"
    from das.identity import Principal

    swapped = p.artifact.replace('name="Review"', 'name="Pay everyone"')
    live.queue.replace_artifact(p.id, Principal("alice", "author", "token"), {"artifact": swapped}, "rebased")
    with live.client(tokens["carol"]) as carol:
        r = carol.post(f"/api/proposals/{p.id}/approve", json={})
    assert r.status_code == 200 and r.json()["status"] == "proposed" and r.json()["approvals"] == ["carol"]
    with live.client(tokens["bob"]) as bob:
        again = bob.post(f"/api/proposals/{p.id}/approve", json={})
    assert again.json()["status"] == "deployed" and again.json()["approvals"] == ["bob", "carol"]


def test_task_type_that_escapes_the_registry_folder(live: LiveApi, tokens) -> None:
    """Tried: a proposal carrying a TDE wrapper for task type ../../x, approved by a reviewer."""
    p = live.file(tde_wrappers=[{"task_type": "../../x", "executor": {"kind": "probabilistic"}}])
    with live.client(tokens["bob"]) as bob:
        r = bob.post(f"/api/proposals/{p.id}/approve", json={})
    assert r.status_code == 409 and "not an identifier" in r.json()["error"]
    assert not (live.home.parent / "x.yaml").exists() and not (live.home / "tde").exists()
    assert live.queue.get(p.id).status == "proposed"


def test_task_type_path_in_a_drafted_process_is_a_validation_finding() -> None:
    """Tried: a process whose TDE step names task type ../../x (as an edited draft could)."""
    from das.bpmn.compile import compile_to_xml
    from das.bpmn.validate import validate

    xml = compile_to_xml(
        {
            "key": "t",
            "name": "t",
            "steps": [{"type": "tde", "name": "Score", "task_type": "score_lead", "mode": "probabilistic"}],
        }
    )
    bad = xml.replace(">score_lead<", ">../../x<")
    assert bad != xml
    report = validate(bad.encode(), known_processes=None, name="t.bpmn")
    hits = [f for f in report.findings if f.rule == "governance.task-type"]
    assert hits and hits[0].severity == "error" and "not an identifier" in hits[0].message
    assert not [
        f
        for f in validate(xml.encode(), known_processes=None, name="t.bpmn").findings
        if f.rule == "governance.task-type"
    ]


def test_local_cli_as_another_os_user_by_setting_logname(live: LiveApi) -> None:
    """Tried: the author runs `LOGNAME=bob USER=bob das approve` on their own proposal."""
    from das.identity import os_principal

    me = os_principal().name
    p = live.file(author=me)
    out = subprocess.run(
        [sys.executable, "-m", "das", "approve", p.id],
        capture_output=True,
        text=True,
        env={**live.env, "LOGNAME": "bob", "USER": "bob", "USERNAME": "bob"},
        timeout=60,
    )
    assert out.returncode == 1 and f"{me} authored" in out.stderr
    assert live.queue.get(p.id).status == "proposed"


def test_two_approved_changes_race_to_the_same_version(live: LiveApi, tokens) -> None:
    """Tried: two changes of demo@1.0.0 (both 1.1.0) approved before either deploys; the kernel
    then deploys pending ones. The second must not overwrite the first."""
    from das.authoring.deploy import deploy_pending
    from das.identity import Principal

    q = live.queue
    q.seed_version("demo", "1.0.0", live.file(key="seed").artifact.replace("seed", "demo"))
    a = live.file(base_version="1.0.0", version="1.1.0")
    b = live.file(base_version="1.0.0", version="1.1.0")
    bob = Principal("bob", "reviewer", "token")
    q.approve(a.id, bob)
    q.approve(b.id, bob)
    outcomes = {o.proposal.id: o for o in deploy_pending(q)}
    assert outcomes[a.id].proposal.status == "deployed" and outcomes[a.id].refused is None
    assert outcomes[b.id].refused and "already taken" in outcomes[b.id].refused
    assert q.get(b.id).status == "approved"
    path = live.home / "registry" / "demo" / "1.1.0.bpmn"
    assert (
        path.read_text().count("Review") >= 1
        and q.store.db.execute(
            "SELECT proposal_id FROM process_versions WHERE key='demo' AND version='1.1.0'"
        ).fetchone()[0]
        == a.id
    )


def test_task_type_with_a_trailing_newline(live: LiveApi, tokens) -> None:
    """Tried: task type "send_mail\\n" (a `$` regex would accept it: a newline in a file name)."""
    from das.names import is_task_type

    assert not is_task_type("send_mail\n") and is_task_type("send_mail")
    p = live.file(tde_wrappers=[{"task_type": "send_mail\n", "executor": {"kind": "probabilistic"}}])
    with live.client(tokens["bob"]) as bob:
        assert bob.post(f"/api/proposals/{p.id}/approve", json={}).status_code == 409
