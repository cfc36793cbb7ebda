"""Approval rules, history and crash safety of the approval queue, on both store backends
(SQLite, and the session's real PostgreSQL server through ``DAS_STORE_URL``)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from principals import proven

from das.authoring.deploy import deploy_and_record
from das.authoring.queue import ApprovalRefused, Queue, new_proposal_id
from das.contracts import Proposal, ValidationReport
from das.identity import Principal


@pytest.fixture(autouse=True)
def backend(store_location: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every queue test runs on both backends (see ``store_location`` in tests/conftest.py)."""
    if store_location.startswith("postgresql://"):
        monkeypatch.setenv("DAS_STORE_URL", store_location)
        return "postgresql"
    return "sqlite"


def who(name: str, role: str = "reviewer") -> Principal:
    """A registered user as the API would prove them; variants of names are passed as typed."""
    from das.names import identity

    canonical = identity(name)
    if canonical != "das":
        proven(canonical, role)  # type: ignore[arg-type]
    return Principal(name, role, "token")  # type: ignore[arg-type]


class _Xml:
    """A small valid process per key (approval re-validates the artifact)."""

    @staticmethod
    def format(key: str) -> str:
        from das.bpmn.compile import compile_to_xml

        return compile_to_xml({"key": key, "name": key, "steps": [{"type": "user", "name": "Review"}]})


XML = _Xml()


def make(queue, key="demo", base=None, version="1.0.0", author="alice", valid=True):
    p = Proposal(
        id=new_proposal_id(),
        key=key,
        base_version=base,
        version=version,
        artifact=XML.format(key=key),
        author=author,
        validation=ValidationReport(file=f"{key}.bpmn", valid=valid),
    )
    return queue.file(p)


def test_filed_proposal_has_history_and_is_listed():
    q = Queue()
    p = make(q)
    assert p.status == "proposed" and p.history[0].action == "filed" and p.history[0].actor == "alice"
    assert [r["id"] for r in q.list("proposed")] == [p.id]


def test_das_identity_and_author_cannot_approve():
    q = Queue()
    p = make(q)
    with pytest.raises(ApprovalRefused, match="DAS identity 'das' cannot approve"):
        q.approve(p.id, who("das"))
    with pytest.raises(ApprovalRefused, match="alice authored"):
        q.approve(p.id, who("alice"))
    assert q.get(p.id).status == "proposed"


def test_approve_then_deploy_to_local_registry_when_no_engine(monkeypatch, das_home):
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    q = Queue()
    p = make(q)
    assert q.approve(p.id, who("bob"), "looks right").status == "approved"
    deployed = deploy_and_record(q, p.id)
    assert deployed.status == "deployed"
    assert "local registry" in deployed.history[-1].comment
    assert (das_home / "registry" / "demo" / "1.0.0.bpmn").read_text().count('versionTag="1.0.0"') == 1
    assert q.current_version("demo") == "1.0.0"


def test_stale_base_is_refused_with_the_reason():
    q = Queue()
    q.seed_version("invoice", "1.2.0", XML.format(key="invoice"))
    first = make(q, key="invoice", base="1.2.0", version="1.3.0")
    second = make(q, key="invoice", base="1.2.0", version="1.3.0")
    q.approve(first.id, who("bob"))
    q.approve(first.id, who("carol"))  # invoice is high-impact: two approvals
    deploy_and_record(q, first.id)
    with pytest.raises(
        ApprovalRefused, match=r"based on invoice@1.2.0 but the current version is 1.3.0; rebase"
    ):
        q.approve(second.id, who("bob"))


def test_high_impact_keys_need_two_distinct_approvals():
    q = Queue()
    p = make(q, key="peo_example")
    assert q.approve(p.id, who("bob")).status == "proposed"
    with pytest.raises(ApprovalRefused, match="bob already approved"):
        q.approve(p.id, who("bob"))
    assert q.approve(p.id, who("carol")).status == "approved"


def test_invalid_proposal_cannot_be_approved_and_reject_needs_comment():
    q = Queue()
    p = make(q, valid=False)
    with pytest.raises(ApprovalRefused, match="did not pass validation"):
        q.approve(p.id, who("bob"))
    from das.errors import UsageError

    with pytest.raises(UsageError, match="comment is required"):
        q.reject(p.id, who("bob"), "")
    assert q.reject(p.id, who("bob"), "not needed").status == "rejected"
    with pytest.raises(ApprovalRefused, match="is rejected"):
        q.approve(p.id, who("carol"))


def test_history_is_append_only(das_home):
    q = Queue()
    p = make(q)
    for sql, args in (
        ("UPDATE proposal_history SET actor = 'mallory' WHERE proposal_id = ?", (p.id,)),
        ("DELETE FROM proposal_history", ()),
    ):
        with pytest.raises(Exception, match="append-only"):  # sqlite3 or psycopg: the database refuses
            with q.store.transaction() as db:
                db.execute(sql, args)
    assert [h.actor for h in q.get(p.id).history] == ["alice"]


def test_deploy_failure_is_recorded_and_redeploy_fixes_it(monkeypatch):
    q = Queue()
    p = make(q)
    q.approve(p.id, who("bob"))
    # an engine URL where nothing listens: the deploy fails with the client's message
    failed = deploy_and_record(q, p.id, engine_url="http://127.0.0.1:9/engine-rest")
    assert failed.status == "deploy_failed" and failed.history[-1].action == "deploy_failed"
    assert failed.history[-1].comment
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    fixed = deploy_and_record(q, p.id)
    assert fixed.status == "deployed"


def test_cli_refuses_self_approval_with_one_line(das_home):
    from das.identity import os_principal

    me = os_principal().name  # the local CLI is the OS account (effective uid), not $USER
    q = Queue()
    mine = make(q, author=me)
    # LOGNAME/USER are typed names too: they do not change who the CLI acts as
    env = {**os.environ, "DAS_HOME": str(das_home), "LOGNAME": "bob", "USER": "bob"}
    env.pop("DAS_ENGINE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "das", "approve", mine.id], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and f"{me} authored" in out.stderr
    p = make(q)  # by alice
    typed = subprocess.run(
        [sys.executable, "-m", "das", "approve", p.id, "--reviewer", "bob"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert typed.returncode == 2 and "--reviewer" in typed.stderr  # a typed name is not an identity
    ok = subprocess.run(
        [sys.executable, "-m", "das", "approve", p.id, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "deployed"
    shown = subprocess.run(
        [sys.executable, "-m", "das", "queue", "show", p.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "history:" in shown.stdout and f"{me:<12} approve [os]" in shown.stdout


def test_sigkill_during_approve_never_loses_the_proposal(das_home):
    """Kill `das approve` at random moments (seeded); each proposal ends approved-and-recorded
    (approved or deployed, with an approve entry) or still proposed with no approve entry."""
    rng = random.Random(7)
    q = Queue()
    env = {**os.environ, "DAS_HOME": str(das_home)}
    env.pop("DAS_ENGINE_URL", None)
    outcomes = set()
    # one kill surely before the commit, one surely after, the rest anywhere in between
    delays = [0.05, 4.0] + [rng.uniform(0.2, 2.0) for _ in range(8)]
    for delay in delays:
        p = make(q)
        proc = subprocess.Popen(
            [sys.executable, "-m", "das", "approve", p.id],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = Queue().get(p.id)
        approved = [h for h in after.history if h.action == "approve"]
        if after.status == "proposed":
            assert approved == []
        else:
            assert after.status in ("approved", "deployed") and len(approved) == 1
        outcomes.add(after.status)
    assert "proposed" in outcomes and outcomes & {"approved", "deployed"}, outcomes


def test_approved_tde_wrappers_join_the_registry(monkeypatch, das_home):
    from das.authoring.wrappers import wrapper_for
    from das.registry import load_registry

    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    q = Queue()
    p = Proposal(
        id=new_proposal_id(),
        key="demo",
        version="1.0.0",
        artifact=XML.format(key="demo"),
        author="alice",
        validation=ValidationReport(file="demo.bpmn"),
        tde_wrappers=[wrapper_for("score_lead")],
    )
    q.file(p)
    assert "score_lead" not in load_registry()
    q.approve(p.id, who("bob"))
    deployed = deploy_and_record(q, p.id)
    assert "TDE wrappers registered: score_lead" in deployed.history[-1].comment
    entry = load_registry()["score_lead"]
    assert entry.executor.kind == "probabilistic" and "approved with" in entry.description


@pytest.mark.parametrize("reviewer", ["Alice", " alice ", "ali\u200bce", "ＡＬＩＣＥ"])
def test_author_cannot_approve_under_a_variant_of_their_name(reviewer):
    q = Queue()
    p = make(q)  # authored by alice
    with pytest.raises(ApprovalRefused, match="authored"):
        q.approve(p.id, who(reviewer))


@pytest.mark.parametrize("reviewer", ["DAS", "das\u200b", " Das ", "ｄａｓ"])
def test_das_identity_variants_are_refused(reviewer):
    q = Queue()
    p = make(q)
    with pytest.raises(ApprovalRefused, match="DAS identity"):
        q.approve(p.id, who(reviewer))


def test_two_approvals_must_come_from_two_people():
    q = Queue()
    p = make(q, key="invoice_hi")
    import das.authoring.queue as queue_mod

    queue_mod.approval_rules.cache_clear()
    rules = queue_mod.approval_rules()
    rules["high_impact_keys"] = [*rules["high_impact_keys"], "invoice_hi"]
    assert q.approve(p.id, who("bob")).status == "proposed"
    with pytest.raises(ApprovalRefused, match="already approved"):
        q.approve(p.id, who("Bob"))
    assert q.approve(p.id, who("carol")).status == "approved"
    queue_mod.approval_rules.cache_clear()


def test_approval_revalidates_the_artifact_not_the_stored_flag():
    q = Queue()
    broken = Proposal(
        id=new_proposal_id(),
        key="demo",
        version="1.0.0",
        author="alice",
        artifact=XML.format(key="demo").replace('targetRef="end"', 'targetRef="nowhere"', 1),
        validation=ValidationReport(file="demo.bpmn"),
    )  # a stored report that lies
    q.file(broken)
    with pytest.raises(ApprovalRefused, match="does not validate now"):
        q.approve(broken.id, who("bob"))
    assert q.get(broken.id).status == "proposed"


def test_typed_name_is_not_accepted_as_an_actor():
    q = Queue()
    p = make(q)
    with pytest.raises(TypeError, match="Principal"):
        q.approve(p.id, "bob")
    with pytest.raises(TypeError, match="Principal"):
        q.reject(p.id, "bob", "no")
    assert q.get(p.id).status == "proposed"


def test_authors_cannot_approve_or_reject():
    from das.identity import Forbidden

    q = Queue()
    p = make(q)
    with pytest.raises(Forbidden, match="role author"):
        q.approve(p.id, who("erin", "author"))
    with pytest.raises(Forbidden, match="role author"):
        q.reject(p.id, who("erin", "author"), "no")
    assert q.approve(p.id, who("erin", "admin")).status == "approved"


def test_approval_binds_to_the_artifact_hash_and_rebase_resets_the_count():
    q = Queue()
    p = make(q, key="peo_example")  # high-impact: two approvals
    assert q.approve(p.id, who("bob")).status == "proposed"
    assert q.approvals(q.get(p.id)) == ["bob"]
    other = XML.format(key="peo_example").replace('name="Review"', 'name="Review again"')
    rebased = q.replace_artifact(p.id, who("alice", "author"), {"artifact": other}, "rebased onto 1.0.0")
    assert rebased.history[-1].action == "rebased" and "approvals reset" in rebased.history[-1].comment
    assert rebased.history[-1].artifact_sha256 == rebased.artifact_sha256() != p.artifact_sha256()
    assert q.approvals(rebased) == []
    # one more approval is not enough: bob's concerned the old text
    assert q.approve(p.id, who("carol")).status == "proposed"
    assert q.approve(p.id, who("bob")).status == "approved"


def test_deploy_recounts_the_history_and_ignores_the_status_column(das_home, monkeypatch):
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    q = Queue()
    p = make(q)
    q.store.db.execute("UPDATE proposals SET status = 'approved' WHERE id = ?", (p.id,))  # a forged status
    with pytest.raises(ApprovalRefused, match="0 valid approval"):
        deploy_and_record(q, p.id)
    assert not (das_home / "registry").exists()
    assert q.get(p.id).status == "approved" and q.current_version("demo") is None


def test_redeploy_of_a_proposed_proposal_writes_nothing(das_home, monkeypatch):
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    q = Queue()
    p = make(q)
    env = {**os.environ, "DAS_HOME": str(das_home)}
    env.pop("DAS_ENGINE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "das", "queue", "redeploy", p.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode != 0 and "only approved proposals deploy" in out.stderr
    assert not (das_home / "registry").exists() and q.get(p.id).status == "proposed"


def test_two_approved_changes_of_one_base_never_overwrite_each_other(das_home, monkeypatch):
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    q = Queue()
    q.seed_version("demo", "1.0.0", XML.format(key="demo"))
    first = make(q, base="1.0.0", version="1.1.0")
    second = make(q, base="1.0.0", version="1.1.0")
    q.approve(first.id, who("bob"))
    q.approve(second.id, who("bob"))  # both approved before either deployed (--no-deploy, a crash)
    assert deploy_and_record(q, first.id).status == "deployed"
    with pytest.raises(ApprovalRefused, match="demo@1.1.0 is already taken by"):
        deploy_and_record(q, second.id)
    row = q.store.db.execute(
        "SELECT proposal_id FROM process_versions WHERE key='demo' AND version='1.1.0'"
    ).fetchone()
    assert row[0] == first.id


def test_approvals_of_a_revoked_reviewer_stop_counting():
    from das.identity import Users

    q = Queue()
    p = make(q, key="peo_example")  # two approvals needed
    q.approve(p.id, who("bob"))
    Users().revoke("bob")
    assert q.approve(p.id, who("carol")).status == "proposed"
    assert q.approvals(q.get(p.id)) == ["carol"]


def test_only_the_author_or_a_reviewer_rebases():
    from das.identity import Forbidden

    q = Queue()
    p = make(q)
    with pytest.raises(Forbidden, match="only their own"):
        q.replace_artifact(p.id, who("mallory", "author"), {"rationale": "x"}, "rebased")
    assert q.replace_artifact(p.id, who("alice", "author"), {"rationale": "x"}, "rebased").rationale == "x"
