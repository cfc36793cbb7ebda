"""Approvals bound to principal ids across the schema change (migration m006), on both store
backends: rows written before principal ids existed still load and count only for the user
record that existed when they were written."""

from __future__ import annotations

import json

import pytest

import das.store.db as store_db
from das.authoring.queue import Queue
from das.bpmn.compile import compile_to_xml
from das.contracts import Proposal, ValidationReport
from das.identity import Users
from das.store.db import Store
from das.store.migrations import MIGRATIONS


def _old_store(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at schema 5 holding bob (reviewer) and his approval of p-legacy, as written then."""
    with monkeypatch.context() as m:
        m.setattr(store_db, "MIGRATIONS", MIGRATIONS[:5])
        old = Store(location)
        xml = compile_to_xml(
            {"key": "invoice", "name": "invoice", "steps": [{"type": "user", "name": "Review"}]}
        )
        p = Proposal(
            id="p-legacy",
            key="invoice",
            version="1.0.0",
            artifact=xml,
            author="alice",
            validation=ValidationReport(file="invoice.bpmn"),
        )
        with old.transaction() as db:
            db.execute(
                "INSERT INTO users (name, role, token_id, token_hash, created_at) VALUES"
                " ('bob', 'reviewer', '0123456789ab', 'x', '2020-01-01T00:00:00.000Z')"
            )
            db.execute(
                "INSERT INTO proposals (id, key, kind, base_version, version, status, author, origin, body_json)"
                " VALUES ('p-legacy', 'invoice', 'process', NULL, '1.0.0', 'proposed', 'alice', 'chat', ?)",
                (json.dumps(p.model_dump(mode="json", exclude={"history"})),),
            )
            for actor, action, proof in (("alice", "filed", "token"), ("bob", "approve", "token")):
                db.execute(
                    "INSERT INTO proposal_history (proposal_id, at, actor, action, artifact_sha256, proof)"
                    " VALUES ('p-legacy', '2021-01-01T00:00:00.000Z', ?, ?, ?, ?)",
                    (actor, action, p.artifact_sha256(), proof),
                )


def test_rows_without_principal_ids_load_and_count_only_for_their_user(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_store(store_location, monkeypatch)
    store = Store(store_location)  # migrates to the current schema
    assert [n for _, n in store.migrations()][-1] == "m006_principal_ids_and_acknowledgements"
    users, queue = Users(store), Queue(store)
    bob = users.get("bob")
    assert bob.principal_id.startswith("u-") and len(bob.principal_id) == 34
    legacy = queue.get("p-legacy")
    assert [h.principal_id for h in legacy.history] == [None, None]
    assert queue.approvals(legacy) == ["bob"]  # bob's record existed when he approved
    users.revoke("bob")
    users.add("bob", "reviewer")
    assert users.get("bob").principal_id != bob.principal_id
    after = queue.get("p-legacy")
    assert queue.approvals(after) == []  # the bob added back is another principal
    voided = [h for h in after.history if h.action == "approval_voided"]
    assert len(voided) == 1 and voided[0].principal_id == bob.principal_id
