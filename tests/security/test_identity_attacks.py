"""Attacks on who an action is attributed to: typed names, missing or forged tokens, proxies."""

from __future__ import annotations

import pytest
from live_api import LiveApi

API_ROUTES = [
    ("GET", "/api/me"),
    ("GET", "/api/proposals"),
    ("GET", "/api/proposals/p-0000000000"),
    ("POST", "/api/drafts"),
    ("POST", "/api/proposals"),
    ("POST", "/api/proposals/p-0000000000/approve"),
    ("POST", "/api/proposals/p-0000000000/reject"),
    ("POST", "/api/proposals/p-0000000000/rebase"),
    ("POST", "/api/proposals/p-0000000000/redeploy"),
]


def test_every_api_route_without_a_token_is_401(live: LiveApi) -> None:
    """Tried: call each route with no credentials (and the OpenAPI document lists no other /api route)."""
    documented = {
        (m.upper(), p)
        for p, ops in live.client().get("/openapi.json").json()["paths"].items()
        if p.startswith("/api/")
        for m in ops
    }
    assert {(m, p.replace("p-0000000000", "{proposal_id}")) for m, p in API_ROUTES} == documented
    with live.client() as anon:
        for method, path in API_ROUTES:
            r = anon.request(method, path, json={"prompt": "x", "comment": "y"})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and "error" in r.json()


def test_author_approves_own_proposal_by_naming_another_reviewer_in_the_body(live: LiveApi, tokens) -> None:
    """Tried: alice (the author) posts {"reviewer": "bob"}; then the same without the field."""
    p = live.file(author="alice")
    with live.client(tokens["alice"]) as alice:
        named = alice.post(f"/api/proposals/{p.id}/approve", json={"reviewer": "bob", "comment": "ok"})
        assert named.status_code == 400 and "remove reviewer" in named.json()["error"]
        plain = alice.post(f"/api/proposals/{p.id}/approve", json={})
        assert plain.status_code in (403, 409)
    assert live.queue.get(p.id).status == "proposed"
    assert [h.action for h in live.queue.get(p.id).history] == ["filed"]


def test_reviewer_approves_own_draft(live: LiveApi, tokens) -> None:
    """Tried: bob drafts through the API and then approves his own proposal."""
    with live.client(tokens["bob"]) as bob:
        drafted = bob.post("/api/drafts", json={"prompt": "Check the order, then ship it", "key": "orders"})
        assert drafted.status_code == 201, drafted.text
        pid = drafted.json()["proposal_id"]
        assert live.queue.get(pid).author == "bob"
        own = bob.post(f"/api/proposals/{pid}/approve", json={})
        assert own.status_code == 409 and "bob authored" in own.json()["error"]
    assert live.queue.get(pid).status == "proposed"


def test_draft_body_names_a_different_author(live: LiveApi, tokens) -> None:
    """Tried: alice drafts with {"author": "carol"} so that she herself could approve later."""
    with live.client(tokens["alice"]) as alice:
        r = alice.post("/api/drafts", json={"prompt": "Pay the invoice", "author": "carol"})
    assert r.status_code == 400 and "author" in r.json()["error"]
    assert live.queue.list() == []


def test_author_role_approves_someone_elses_proposal(live: LiveApi, tokens) -> None:
    """Tried: alice (role author) approves and rejects a proposal by someone else."""
    p = live.file(author="dave")
    with live.client(tokens["alice"]) as alice:
        assert alice.post(f"/api/proposals/{p.id}/approve", json={}).status_code == 403
        assert alice.post(f"/api/proposals/{p.id}/reject", json={"comment": "no"}).status_code == 403
        assert alice.post(f"/api/proposals/{p.id}/redeploy", json={}).status_code == 403
    assert live.queue.get(p.id).status == "proposed"


def test_reject_without_a_reason_or_with_a_blank_one(live: LiveApi, tokens) -> None:
    """Tried: reject with no comment, an empty and a whitespace comment."""
    p = live.file()
    with live.client(tokens["bob"]) as bob:
        assert bob.post(f"/api/proposals/{p.id}/reject", json={}).status_code == 422
        assert bob.post(f"/api/proposals/{p.id}/reject", json={"comment": ""}).status_code == 422
        assert bob.post(f"/api/proposals/{p.id}/reject", json={"comment": "   "}).status_code == 400
        ok = bob.post(f"/api/proposals/{p.id}/reject", json={"comment": "not needed"})
    assert ok.status_code == 200 and ok.json()["status"] == "rejected"
    assert live.queue.get(p.id).history[-1].actor == "bob"


def test_forged_token_with_a_real_token_id(live: LiveApi, tokens) -> None:
    """Tried: keep bob's token id, change the secret; a malformed token; a Basic header."""
    prefix = "_".join(tokens["bob"].split("_", 2)[:2])
    with live.client() as anon:
        for header in (
            f"Bearer {prefix}_{'A' * 43}",
            "Bearer das_nothing",
            "Bearer",
            f"Basic {tokens['bob']}",
        ):
            assert anon.get("/api/me", headers={"Authorization": header}).status_code == 401


def test_revoked_token_is_refused_at_once(live: LiveApi, tokens) -> None:
    """Tried: keep using bob's token after `das user revoke bob` on a running server."""
    from das.identity import Users
    from das.store import open_store

    with live.client(tokens["bob"]) as bob:
        assert bob.get("/api/me").json() == {"user": "bob", "role": "reviewer", "proof": "token"}
        Users(open_store(live.home / "das.db")).revoke("bob")
        assert bob.get("/api/me").status_code == 401


def test_token_is_not_stored_in_the_database(live: LiveApi, tokens) -> None:
    """Tried: read the store file for the token (a stolen backup must not yield credentials)."""
    raw = b"".join(p.read_bytes() for p in live.home.glob("das.db*"))
    for token in tokens.values():
        assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw


@pytest.mark.parametrize("name", ["das", "DAS", "ｄａｓ", "das\u200b", "Alice", "ali\u200bce"])
def test_register_the_das_identity_or_a_lookalike_of_a_user(live: LiveApi, tokens, name: str) -> None:
    """Tried: `das user add` with DAS's own name or a variant of an existing user's name."""
    from das.errors import UsageError

    with pytest.raises(UsageError, match="reserved|exists"):
        live.token(name, "reviewer")
