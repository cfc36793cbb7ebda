"""Attacks on the transport: foreign Host headers (DNS rebinding), oversized bodies, proxies."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
from live_api import LiveApi


def test_dns_rebinding_page_reads_the_queue_through_a_foreign_host(live: LiveApi, tokens) -> None:
    """Tried: requests whose Host names a foreign site, with a valid token and on the page."""
    live.file()
    with live.client(tokens["bob"]) as bob:
        for path in ("/api/proposals", "/", "/login"):
            r = bob.get(path, headers={"Host": "evil.example"})
            assert r.status_code == 421 and "evil.example" in r.json()["error"]
        assert bob.get("/api/proposals", headers={"Host": "evil.example:8765"}).status_code == 421
        assert bob.get("/api/proposals", headers={"Host": "localhost"}).status_code == 200


def test_body_over_the_cap_with_and_without_a_declared_length(live: LiveApi, tokens) -> None:
    """Tried: a 300 kB JSON body with Content-Length, then streamed (chunked) without one."""
    big = b'{"prompt": "' + b"a" * 300_000 + b'"}'
    with live.client(tokens["alice"]) as alice:
        declared = alice.post("/api/drafts", content=big, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413 and "larger than" in declared.json()["error"]
        chunked = alice.post(
            "/api/drafts",
            content=iter([big[i : i + 8192] for i in range(0, len(big), 8192)]),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
    assert live.queue.list() == []


def test_malformed_json_and_wrong_types_never_give_500(live: LiveApi, tokens) -> None:
    """Tried: broken JSON, a JSON array, wrong field types, a form post to the JSON API."""
    p = live.file()
    with live.client(tokens["bob"]) as bob:
        for content, ctype in (
            (b"{not json", "application/json"),
            (b"[1]", "application/json"),
            (b'{"comment": 5}', "application/json"),
            (b"comment=ok", "application/x-www-form-urlencoded"),
        ):
            r = bob.post(f"/api/proposals/{p.id}/approve", content=content, headers={"Content-Type": ctype})
            assert 400 <= r.status_code < 500 and "error" in r.json(), (content, r.status_code, r.text)
    assert live.queue.get(p.id).status == "proposed"


def _proxied(das_home: Path, secret: str) -> LiveApi:
    return LiveApi(
        das_home,
        "--trust-proxy-header",
        "X-Remote-User",
        "--proxy-secret-env",
        "DAS_TEST_PROXY_SECRET",
        env={"DAS_TEST_PROXY_SECRET": secret},
    )


def test_proxy_user_header_without_the_shared_secret(das_home: Path) -> None:
    """Tried: behind --trust-proxy-header, send X-Remote-User without / with a wrong secret, and
    with a valid token besides (no fallback), then with the real secret."""
    secret = secrets.token_urlsafe(24)
    live = _proxied(das_home, secret)
    try:
        bob = live.token("bob", "reviewer")
        p = live.file()
        with live.client() as anon:
            assert (
                anon.post(
                    f"/api/proposals/{p.id}/approve", json={}, headers={"X-Remote-User": "bob"}
                ).status_code
                == 401
            )
            assert (
                anon.get("/api/me", headers={"X-Remote-User": "bob", "X-Proxy-Secret": "guess"}).status_code
                == 401
            )
            assert anon.get("/api/me", headers={"X-Proxy-Secret": secret}).status_code == 401
            mixed = anon.get("/api/me", headers={"X-Remote-User": "alice", "Authorization": f"Bearer {bob}"})
            assert mixed.status_code == 401
            assert (
                anon.get("/api/me", headers={"X-Remote-User": "nobody", "X-Proxy-Secret": secret}).status_code
                == 401
            )
            ok = anon.get("/api/me", headers={"X-Remote-User": "Bob", "X-Proxy-Secret": secret})
            assert ok.json() == {"user": "bob", "role": "reviewer", "proof": "proxy"}
        assert live.queue.get(p.id).status == "proposed"
    finally:
        assert "Traceback" not in live.stop()


def test_proxy_mode_refuses_to_start_without_a_secret(das_home: Path) -> None:
    """Tried: start the server trusting the header but with no (or a short) shared secret."""
    import subprocess
    import sys

    for extra, env in (([], {}), (["--proxy-secret-env", "S"], {"S": "short"})):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "das",
                "api",
                "serve",
                "--port",
                "0",
                "--trust-proxy-header",
                "X-Remote-User",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**__import__("os").environ, "DAS_HOME": str(das_home), **env},
        )
        assert out.returncode == 2 and "secret" in out.stderr


def test_session_form_post_without_the_csrf_token(live: LiveApi, tokens) -> None:
    """Tried: a logged-in reviewer's browser posts approve/reject forms (and a JSON approve on the
    cookie) without the session's CSRF token, as a cross-site page would."""
    p = live.file()
    with live.client() as browser:
        login = browser.post("/login", data={"username": "bob", "token": tokens["bob"], "next": "/"})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.post(f"/proposals/{p.id}/approve", data={"comment": "ok"}).status_code == 403
        assert (
            browser.post(f"/proposals/{p.id}/approve", data={"comment": "ok", "csrf": "x"}).status_code == 403
        )
        assert browser.post(f"/api/proposals/{p.id}/approve", json={}).status_code == 403
        assert live.queue.get(p.id).status == "proposed"
        page = browser.get(f"/proposals/{p.id}").text
        token = re.search(r"name='csrf' value='([^']+)'", page).group(1)
        done = browser.post(f"/proposals/{p.id}/approve", data={"comment": "ok", "csrf": token})
        assert done.status_code == 303
    after = live.queue.get(p.id)
    assert after.status == "deployed" and [h.actor for h in after.history if h.action == "approve"] == ["bob"]
    assert after.history[1].proof == "session"


def test_login_with_a_wrong_token_or_another_users_token(live: LiveApi, tokens) -> None:
    """Tried: sign in as bob with alice's token, with garbage, and follow a `next` to another site."""
    with live.client() as browser:
        assert browser.post("/login", data={"username": "bob", "token": tokens["alice"]}).status_code == 401
        assert browser.post("/login", data={"username": "bob", "token": "x"}).status_code == 401
        assert browser.get("/").status_code == 303  # not signed in: to the login page
        r = browser.post(
            "/login", data={"username": "bob", "token": tokens["bob"], "next": "//evil.example/x"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_script_in_a_proposal_is_escaped_on_the_page(live: LiveApi, tokens) -> None:
    """Tried: a proposal whose rationale carries a <script> tag, viewed by a signed-in reviewer."""
    p = live.file(rationale="<script>alert(1)</script>")
    with live.client() as browser:
        browser.post("/login", data={"username": "bob", "token": tokens["bob"]})
        page = browser.get(f"/proposals/{p.id}")
    assert page.status_code == 200 and "&lt;script&gt;" in page.text and "<script>" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_unauthenticated_page_request_leaks_nothing(live: LiveApi) -> None:
    """Tried: open the queue page and a proposal page without signing in."""
    p = live.file(rationale="secret plan")
    for path in ("/", f"/proposals/{p.id}"):
        r = httpx.get(live.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login") and "secret" not in r.text


def test_session_survives_token_revocation_and_reissue(live: LiveApi, tokens) -> None:
    """Tried: keep a cookie opened with bob's leaked token after bob's token was revoked and a
    new one issued under the same name."""
    from das.identity import Users
    from das.store import open_store

    with live.client() as browser:
        assert browser.post("/login", data={"username": "bob", "token": tokens["bob"]}).status_code == 303
        assert browser.get("/api/me").json()["proof"] == "session"
        users = Users(open_store(live.home / "das.db"))
        users.revoke("bob")
        users.add("bob", "reviewer")
        r = browser.get("/api/me")
        assert r.status_code == 401 and "sign in again" in r.json()["error"]


def test_proxy_user_writes_without_a_csrf_token(das_home: Path) -> None:
    """Tried: behind the SSO proxy (whose cookie is ambient), a cross-site form posts approve,
    and a body-less no-cors fetch posts to the JSON API."""
    secret = secrets.token_urlsafe(24)
    live = _proxied(das_home, secret)
    try:
        live.token("bob", "reviewer")
        p = live.file()
        proxy = {"X-Remote-User": "bob", "X-Proxy-Secret": secret}
        with live.client() as browser:
            form = browser.post(f"/proposals/{p.id}/approve", data={"comment": "ok"}, headers=proxy)
            assert form.status_code == 403
            bare = browser.post(f"/api/proposals/{p.id}/approve", headers=proxy)
            assert bare.status_code == 415
            plain = browser.post(
                f"/api/proposals/{p.id}/approve",
                content=b"{}",
                headers={**proxy, "Content-Type": "text/plain"},
            )
            assert plain.status_code == 415
            assert live.queue.get(p.id).status == "proposed"
            page = browser.get(f"/proposals/{p.id}", headers=proxy).text
            token = re.search(r"name='csrf' value='([^']+)'", page).group(1)
            ok = browser.post(
                f"/proposals/{p.id}/approve", data={"comment": "ok", "csrf": token}, headers=proxy
            )
            assert ok.status_code == 303
        assert live.queue.get(p.id).status == "deployed"
    finally:
        assert "Traceback" not in live.stop()


def test_invalid_utf8_body_gives_a_client_error_not_a_500(live: LiveApi, tokens) -> None:
    """Tried: bytes that are not UTF-8, as JSON and as other content types, on every write."""
    p = live.file()
    with live.client(tokens["bob"]) as bob:
        for path in ("/api/drafts", f"/api/proposals/{p.id}/reject", f"/api/proposals/{p.id}/approve"):
            for ctype in ("application/json", "text/plain", "application/octet-stream"):
                r = bob.post(path, content=b"\xff\xfe\x00", headers={"Content-Type": ctype})
                assert 400 <= r.status_code < 500 and "error" in r.json(), (path, ctype, r.text)


def test_duplicate_or_malformed_host_headers(live: LiveApi, tokens) -> None:
    """Tried: two Host headers (foreign first), and a bracketed host with a foreign suffix."""
    import socket

    for hosts in ((b"evil.example", b"127.0.0.1"), (b"[127.0.0.1]evil.example",)):
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
            head = b"GET /api/me HTTP/1.1\r\n" + b"".join(b"Host: " + h + b"\r\n" for h in hosts)
            s.sendall(
                head + b"Authorization: Bearer " + tokens["bob"].encode() + b"\r\nConnection: close\r\n\r\n"
            )
            status = s.recv(200).split(b"\r\n")[0]
        assert status.split()[1] in (b"400", b"421"), (hosts, status)


def test_sign_in_from_another_site(live: LiveApi, tokens) -> None:
    """Tried: a foreign page posts the login form (login CSRF: the victim signed in as the attacker)."""
    with live.client() as browser:
        r = browser.post(
            "/login",
            data={"username": "bob", "token": tokens["bob"]},
            headers={"Origin": "http://evil.example"},
        )
    assert r.status_code == 403 and "das_session" not in r.headers.get("set-cookie", "")
