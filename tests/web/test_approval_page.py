"""The approval page in a real headless Chromium (Debian's package) against `das api serve`.

A reviewer signs in, filters the queue, opens an edit proposal and sees the diagram drawn by
the bundled bpmn-js: one shape per flow node, the added task marked "added", the base version
on a toggle. Every request the browser makes stays on 127.0.0.1, no page has a serious axe-core
violation, and the CSP (no inline script) holds. Screenshots go to ``build/test-artifacts``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_api import LiveApi
from needs import missing

from das.bpmn.compile import compile_to_xml
from das.bpmn.parse import parse

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "das" / "api" / "static" / "vendor"
ARTIFACTS = REPO / "build" / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
V1 = {
    "key": "triage",
    "name": "Ticket triage",
    "steps": [{"type": "user", "name": "Read ticket"}, {"type": "user", "name": "Assign team"}],
}
V2 = {
    "key": "triage",
    "name": "Ticket triage",
    "steps": [
        {"type": "user", "name": "Read ticket"},
        {"type": "user", "name": "Assign team"},
        {"type": "user", "name": "Notify customer"},
    ],
}


def _browser_or_skip() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    absent = [
        what
        for what, ok in (
            ("Debian's chromium", chromium),
            ("the bundled bpmn-js (das/api/static/vendor)", (VENDOR / "axe.min.js").is_file()),
        )
        if not ok
    ]
    if absent:
        missing(
            "DAS_REQUIRE_BROWSER", f"not installed: {', '.join(absent)} (scripts/install.sh installs them)"
        )
    return str(chromium)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _browser_or_skip()
    home = tmp_path_factory.mktemp("das_home")
    live = LiveApi(home)
    try:
        alice, bob = live.token("alice", "author"), live.token("bob", "reviewer")
        with live.client(alice) as a, live.client(bob) as b:
            first = a.post("/api/proposals", json={"bpmn": compile_to_xml(V1), "name": "triage.bpmn"})
            assert first.status_code == 201, first.text
            approved = b.post(f"/api/proposals/{first.json()['proposal_id']}/approve", json={})
            assert approved.json()["status"] == "deployed", approved.text
            second = a.post(
                "/api/proposals", json={"bpmn": compile_to_xml(V2), "name": "triage.bpmn", "base": "triage"}
            )
            assert second.status_code == 201, second.text
        edit = live.queue.get(second.json()["proposal_id"])
        assert (
            edit.base_version == "1.0.0"
            and edit.diff is not None
            and any(e.change == "added" for e in edit.diff.entries)
        )
        yield {"live": live, "chromium": chromium, "edit": edit, "tokens": {"alice": alice, "bob": bob}}
    finally:
        log = live.stop()
        assert "Traceback" not in log, log


@pytest.fixture()
def browser_page(site: dict[str, Any]) -> Iterator[tuple[Any, list[str], list[str]]]:
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=site["chromium"], headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            yield page, requests, problems
        finally:
            context.close()
            browser.close()


def _sign_in(page: Any, live: LiveApi, name: str, token: str) -> None:
    page.goto(live.url + "/login")
    page.fill("#username", name)
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(live.url + "/")


def _serious_axe_violations(page: Any) -> list[str]:
    page.add_script_tag(url="/static/vendor/axe.min.js")  # same origin: allowed by the CSP
    return page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '));
    }""")


def test_reviewer_sees_the_edit_drawn_with_the_added_task_marked(
    site: dict[str, Any], browser_page: Any
) -> None:
    page, requests, problems = browser_page
    live, edit = site["live"], site["edit"]
    _sign_in(page, live, "bob", site["tokens"]["bob"])
    assert page.locator(".who b").inner_text() == "bob"

    # the queue: filters narrow it, badges show the checks
    page.goto(live.url + "/?origin=file&key=triage&status=proposed")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1 and edit.id in rows.first.inner_text()
    assert "approvals 0/1" in rows.first.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
    assert _serious_axe_violations(page) == []
    page.goto(live.url + "/?status=rejected")
    assert page.locator("table.queue tbody tr").count() == 0

    # one proposal: the diagram
    page.goto(f"{live.url}/proposals/{edit.id}")
    page.wait_for_selector("body[data-diagram='ready']", timeout=30_000)
    flow_nodes = set(parse(edit.artifact.encode(), name="edit.bpmn").nodes)
    drawn = page.eval_on_selector_all(
        "#canvas g.djs-element.djs-shape", "els => els.map(e => e.getAttribute('data-element-id'))"
    )
    assert sorted(i for i in drawn if i in flow_nodes) == sorted(flow_nodes)  # one shape per flow node
    added = [e.id for e in edit.diff.entries if e.change == "added" and e.kind == "node"]
    assert len(added) == 1
    shape = page.locator(f"#canvas g.djs-element[data-element-id='{added[0]}']")
    assert "das-added" in (shape.get_attribute("class") or "")
    badge = page.locator(f".djs-overlays[data-container-id='{added[0]}'] .das-overlay span.added")
    assert badge.is_visible() and badge.inner_text() == "added"
    unchanged = next(n for n in flow_nodes if n not in added)
    assert "das-added" not in (
        page.locator(f"#canvas g.djs-element[data-element-id='{unchanged}']").get_attribute("class") or ""
    )
    page.screenshot(path=str(ARTIFACTS / "proposal.png"), full_page=True)
    assert _serious_axe_violations(page) == []

    # the base version on a toggle: one shape fewer, nothing marked added
    page.click("#toggle-base")
    page.wait_for_selector("body[data-view='base']")
    base_drawn = page.eval_on_selector_all(
        "#canvas g.djs-element.djs-shape", "els => els.map(e => e.getAttribute('data-element-id'))"
    )
    assert added[0] not in base_drawn and page.locator("#canvas .das-added").count() == 0

    # downloads
    bpmn = page.request.get(f"{live.url}/proposals/{edit.id}/artifact.bpmn")
    assert bpmn.ok and bpmn.text() == edit.artifact
    assert "attachment" in bpmn.headers["content-disposition"]
    diff = page.request.get(f"{live.url}/proposals/{edit.id}/diff.json")
    assert diff.ok and diff.json()["entries"] == edit.diff.model_dump(mode="json")["entries"]

    # approve in the page: the kernel deploys it
    page.fill("#c-approve", "looks right")
    page.click("button:has-text('Approve')")
    page.wait_for_url(f"{live.url}/proposals/{edit.id}")
    assert live.queue.get(edit.id).status == "deployed"
    assert "approve" in page.locator("table").last.inner_text()

    assert all(url.startswith(live.url + "/") for url in requests), [
        u for u in requests if not u.startswith(live.url)
    ]
    assert len(requests) > 5  # the page, its CSS, the viewer bundle, proposal.js, fonts ...
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


def test_an_author_gets_no_review_buttons_and_is_told_why(site: dict[str, Any], browser_page: Any) -> None:
    page, requests, problems = browser_page
    live = site["live"]
    _sign_in(page, live, "alice", site["tokens"]["alice"])
    page.goto(f"{live.url}/proposals/{site['edit'].id}")
    page.wait_for_selector("body[data-diagram='ready']", timeout=30_000)
    assert page.locator("button:has-text('Approve')").count() == 0
    assert "only reviewers and admins approve" in page.locator("main").inner_text()
    page.goto(live.url + "/login")
    assert _serious_axe_violations(page) == []
    assert all(url.startswith(live.url + "/") for url in requests)


def test_pages_need_a_session_and_the_csp_forbids_inline_script(site: dict[str, Any]) -> None:
    import httpx

    live = site["live"]
    anonymous = httpx.get(f"{live.url}/proposals/{site['edit'].id}", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401)
    download = httpx.get(f"{live.url}/proposals/{site['edit'].id}/artifact.bpmn", follow_redirects=False)
    assert download.status_code in (302, 303, 401) and "definitions" not in download.text
    with live.client(site["tokens"]["bob"]) as bob:
        page = bob.get(f"/proposals/{site['edit'].id}")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert "<script>" not in page.text  # only src= scripts and the JSON data block
