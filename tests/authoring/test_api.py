"""The HTTP API and approval page enforce the same rules as the CLI (real server, real SQLite)."""

import threading

import httpx
import pytest

from das.api.server import make_server
from das.authoring.queue import Queue, new_proposal_id
from das.contracts import Proposal


@pytest.fixture(params=[False])
def api(monkeypatch, request):
    monkeypatch.delenv("DAS_ENGINE_URL", raising=False)
    server = make_server("127.0.0.1", 0, trust_proxy=request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def filed(author="alice", key="demo"):
    from das.bpmn.compile import compile_to_xml

    xml = compile_to_xml({"key": key, "name": key, "steps": [{"type": "user", "name": "Review"}]})
    return Queue().file(Proposal(id=new_proposal_id(), key=key, version="1.0.0", artifact=xml, author=author,
                                 validation={"valid": True}, rationale="<script>alert(1)</script>"))


def test_list_show_and_refusals(api):
    p = filed()
    assert [r["id"] for r in httpx.get(f"{api}/api/proposals").json()] == [p.id]
    assert httpx.get(f"{api}/api/proposals/{p.id}").json()["key"] == "demo"
    assert httpx.get(f"{api}/api/proposals/p-missing").status_code == 404
    refused = httpx.post(f"{api}/api/proposals/{p.id}/approve", json={"reviewer": "das"})
    assert refused.status_code == 409 and "DAS identity" in refused.json()["error"]
    self_approve = httpx.post(f"{api}/api/proposals/{p.id}/approve", json={"reviewer": "alice"})
    assert self_approve.status_code == 409 and "alice authored" in self_approve.json()["error"]
    # without --trust-proxy a client-sent X-Remote-User is ignored: the body's reviewer counts
    spoof = httpx.post(f"{api}/api/proposals/{p.id}/approve", json={"reviewer": "alice"},
                       headers={"X-Remote-User": "mallory"})
    assert spoof.status_code == 409 and "alice authored" in spoof.json()["error"]
    form_encoded = httpx.post(f"{api}/api/proposals/{p.id}/approve", data={"reviewer": "bob"})
    assert form_encoded.status_code == 400 and "application/json" in form_encoded.json()["error"]
    bad = httpx.post(f"{api}/api/proposals/{p.id}/approve", content=b"[1]", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400


def test_approve_deploys_and_page_escapes_html(api):
    p = filed()
    ok = httpx.post(f"{api}/api/proposals/{p.id}/approve", json={"reviewer": "bob", "comment": "fine"})
    assert ok.json() == {"proposal_id": p.id, "status": "deployed"}
    page = httpx.get(f"{api}/proposals/{p.id}").text
    assert "&lt;script&gt;" in page and "<script>" not in page


def test_html_form_reject_needs_the_page_csrf_token(api):
    import re

    p = filed()
    forged = httpx.post(f"{api}/proposals/{p.id}/reject", data={"reviewer": "bob", "comment": "no"})
    assert forged.status_code == 400 and "CSRF" in forged.text and Queue().get(p.id).status == "proposed"
    token = re.search(r"name='csrf' value='([^']+)'", httpx.get(f"{api}/proposals/{p.id}").text).group(1)
    r = httpx.post(f"{api}/proposals/{p.id}/reject", data={"reviewer": "bob", "comment": "no", "csrf": token},
                   follow_redirects=False)
    assert r.status_code == 303 and Queue().get(p.id).status == "rejected"


@pytest.mark.parametrize("api", [True], indirect=True)
def test_trusted_proxy_identity_wins(api):
    p = filed()
    r = httpx.post(f"{api}/api/proposals/{p.id}/approve", json={"reviewer": "bob"}, headers={"X-Remote-User": "alice"})
    assert r.status_code == 409 and "alice authored" in r.json()["error"]
