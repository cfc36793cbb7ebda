"""The HTTP API and the approval page: FastAPI over the same ``Queue`` rules as the CLI.

Every route needs a proven caller (``das/api/auth.py``); the acting user is the caller, and a
``reviewer``/``author`` field in a body is refused rather than read. ``Guard`` checks the
``Host`` header and caps bodies before any route runs. Errors are JSON ``{"error": ...}``
(pages: an HTML "Refused" page), never a traceback. ``/openapi.json`` describes every route.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from das import __version__
from das.api.auth import SESSION_COOKIE, Authenticator, AuthSettings, CsrfMismatch, Sessions
from das.api.guard import Guard, host_name, proxy_networks
from das.authoring.deploy import deploy_and_record
from das.authoring.drafter import draft_proposal, rebase_proposal
from das.authoring.propose import propose_xml
from das.authoring.queue import ApprovalRefused, ProposalNotFound, Queue
from das.bpmn import bounded
from das.contracts import Proposal
from das.errors import DasError, InvalidInput, UsageError
from das.identity import Forbidden, NotAuthenticated, Principal, Users
from das.names import identity
from das.views import html as pages
from das.views import proposal_page as proposal_view

log = logging.getLogger("das.api")
IDENTITY_FIELDS = {"reviewer", "author", "actor", "user", "approver"}
ProposalId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9-]{1,40}$", description="Proposal id, e.g. p-0123456789")
]
Status = Literal["proposed", "approved", "rejected", "deployed", "deploy_failed"]


BEARER = HTTPBearer(auto_error=False, description="A personal token from `das user add`.")


def caller(request: Request, _: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Principal:
    """The proven caller of a route (401 otherwise); the bearer scheme is declared in OpenAPI."""
    authn: Authenticator = request.app.state.authn
    return authn.principal(request)


Caller = Annotated[Principal, Depends(caller)]


class ErrorBody(BaseModel):
    error: str


class Me(BaseModel):
    user: str
    role: str
    proof: str


class ProposalSummary(BaseModel):
    id: str
    key: str
    kind: str
    base_version: str | None
    version: str
    status: str
    author: str
    origin: str
    created_at: str


class StatusOut(BaseModel):
    proposal_id: str
    key: str
    version: str
    status: str
    approvals: list[str]
    approvals_needed: int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DraftIn(_Strict):
    prompt: str = Field(
        min_length=1, max_length=4000, description="What the process (or the change) should do."
    )
    key: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Key of a new process.")
    base: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}(@\d{1,4}\.\d{1,4}\.\d{1,4})?$",
        description="KEY or KEY@VERSION to change (edits, not a rewrite).",
    )


class ProposeIn(_Strict):
    bpmn: str = Field(min_length=1, max_length=200_000, description="BPMN 2.0 XML written by a person.")
    name: str = Field("proposal.bpmn", max_length=200, pattern=r"^[^/\\]{1,200}$")
    key: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    base: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}(@\d{1,4}\.\d{1,4}\.\d{1,4})?$")


class ApproveIn(_Strict):
    comment: str | None = Field(None, max_length=2000)
    ack_executable: bool = Field(
        False,
        description="I read the proposal's flagged executable content (scripts, "
        "classes, expressions, connectors) and accept it; required "
        "when it has any",
    )


class EmptyIn(_Strict):
    """No fields: the caller and the proposal id say everything."""


class RejectIn(_Strict):
    comment: str = Field(min_length=1, max_length=2000, description="Why (required).")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "bad request"),
        (401, "not authenticated"),
        (403, "role or CSRF check refused"),
        (404, "not found"),
        (409, "the approval rules refuse it"),
        (413, "body too large"),
        (415, "API writes must be JSON"),
        (421, "host not served"),
        (429, "every simulation slot is busy: retry shortly"),
        (502, "upstream failure"),
    )
}


def status_for(exc: DasError) -> int:
    if isinstance(exc, CsrfMismatch | Forbidden):
        return 403
    if isinstance(exc, NotAuthenticated):
        return 401
    if isinstance(exc, ProposalNotFound):
        return 404
    if isinstance(exc, ApprovalRefused):
        return 409
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, bounded.SimulationBusy):
        return 429
    return 502 if exc.exit_code == 5 else 422


def trusted_proxies_from_env() -> list[str]:
    """``DAS_TRUSTED_PROXIES``: comma-separated addresses or networks of the TLS proxies whose
    ``X-Forwarded-Proto`` is believed (empty: nobody's)."""
    raw = os.environ.get("DAS_TRUSTED_PROXIES", "")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    try:
        proxy_networks(values)
    except ValueError as exc:
        raise UsageError(f"DAS_TRUSTED_PROXIES: {exc}") from exc
    return values


def create_app(
    allowed_hosts: list[str],
    *,
    max_body: int = 256_000,
    auth: AuthSettings | None = None,
    users: Users | None = None,
    trusted_proxies: list[str] | None = None,
) -> Any:
    """The ASGI app: FastAPI routes wrapped in the host/body ``Guard``. ``trusted_proxies``
    (default ``DAS_TRUSTED_PROXIES``): the peers whose ``X-Forwarded-Proto`` counts."""
    app = FastAPI(
        title="ProcOS DAS API",
        version=__version__,
        description=__doc__,
        responses=ERRORS,
        docs_url=None,
        redoc_url=None,
    )
    sessions = Sessions()
    authn = Authenticator(users or Users(), auth or AuthSettings(), sessions)
    app.state.authn = authn
    allowed = {host_name(h) for h in allowed_hosts}

    @app.exception_handler(DasError)
    async def das_error(request: Request, exc: DasError) -> Response:
        status = status_for(exc)
        if not request.url.path.startswith("/api/") and request.url.path not in ("/openapi.json",):
            if status == 401 and request.method == "GET":
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            return HTMLResponse(
                pages.refused(exc.message, "/"),
                status_code=status,
                headers={"Content-Security-Policy": pages.CSP},
            )
        headers = (
            {"WWW-Authenticate": "Bearer"}
            if status == 401
            else {"Retry-After": "5"}
            if status == 429
            else None
        )
        return JSONResponse({"error": exc.message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        named = sorted(
            {
                str(e["loc"][-1])
                for e in errors
                if e.get("type") == "extra_forbidden"
                and e.get("loc")
                and str(e["loc"][-1]) in IDENTITY_FIELDS
            }
        )
        if named:
            return JSONResponse(
                {
                    "error": f"the acting user is the one your credentials prove; remove "
                    f"{', '.join(named)} from the body"
                },
                status_code=400,
            )
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors[:5]]
        detail = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in errors[:20]
        ]  # never echo the input: it may be bytes, huge or hostile
        return JSONResponse(
            {"error": "invalid request: " + "; ".join(parts), "detail": detail}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500
        )

    # -- JSON API -------------------------------------------------------------------------
    @app.get("/api/me", response_model=Me, tags=["identity"])
    def me(who: Caller) -> Me:
        """Who the credentials prove you are."""
        return Me(user=who.name, role=who.role, proof=who.proof)

    @app.get("/api/proposals", response_model=list[ProposalSummary], tags=["queue"])
    def list_proposals(who: Caller, status: Status | None = Query(None)) -> list[dict[str, Any]]:
        """The approval queue, oldest first; ``status`` filters."""
        return Queue().list(status)

    @app.get("/api/proposals/{proposal_id}", response_model=Proposal, tags=["queue"])
    def get_proposal(proposal_id: ProposalId, who: Caller) -> Proposal:
        """One proposal: artifact, reports, diff, wrappers and history."""
        return Queue().get(proposal_id)

    @app.post("/api/drafts", response_model=StatusOut, status_code=201, tags=["authoring"])
    def post_draft(body: DraftIn, who: Caller) -> StatusOut:
        """Draft a process (or a change of ``base``) and file it; the caller is the author."""

        who.require("draft")
        queue = Queue()
        proposal = draft_proposal(body.prompt, key=body.key, base=body.base, author=who, queue=queue)
        return _status(queue, proposal)

    @app.post("/api/proposals", response_model=StatusOut, status_code=201, tags=["authoring"])
    def post_proposal(body: ProposeIn, who: Caller) -> StatusOut:
        """File a BPMN the caller wrote (e.g. in Camunda Modeler); the caller is the author."""

        queue = Queue()
        with bounded.slot(wait_s=0):  # all simulation slots busy: 429 now, never a queue of stalled requests
            proposal = propose_xml(
                body.bpmn.encode(), author=who, key=body.key, base=body.base, queue=queue, name=body.name
            )
        return _status(queue, proposal)

    @app.post("/api/proposals/{proposal_id}/approve", response_model=StatusOut, tags=["review"])
    def post_approve(proposal_id: ProposalId, who: Caller, body: ApproveIn | None = Body(None)) -> StatusOut:
        """Approve as the caller (reviewer or admin); when approvals suffice, the kernel deploys.
        A proposal with flagged executable content needs ``ack_executable: true``."""
        return _status(
            *approve(proposal_id, who, body.comment if body else None, bool(body and body.ack_executable))
        )

    @app.post("/api/proposals/{proposal_id}/reject", response_model=StatusOut, tags=["review"])
    def post_reject(proposal_id: ProposalId, body: RejectIn, who: Caller) -> StatusOut:
        """Reject as the caller (reviewer or admin), saying why."""
        queue = Queue()
        return _status(queue, queue.reject(proposal_id, who, body.comment))

    @app.post("/api/proposals/{proposal_id}/rebase", response_model=StatusOut, tags=["authoring"])
    def post_rebase(proposal_id: ProposalId, who: Caller, body: EmptyIn | None = Body(None)) -> StatusOut:
        """Re-apply a stale proposal's edits on the current version; approvals start again."""

        queue = Queue()
        return _status(queue, rebase_proposal(queue, proposal_id, who))

    @app.post("/api/proposals/{proposal_id}/redeploy", response_model=StatusOut, tags=["review"])
    def post_redeploy(proposal_id: ProposalId, who: Caller, body: EmptyIn | None = Body(None)) -> StatusOut:
        """Deploy an approved or deploy_failed proposal again (reviewer or admin); safe to repeat."""

        who.require("review")
        queue = Queue()
        return _status(queue, deploy_and_record(queue, proposal_id))

    # -- pages ----------------------------------------------------------------------------
    def page(html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": pages.CSP})

    @app.get("/login", response_class=HTMLResponse, tags=["pages"])
    def login_page(next: str = Query("/", max_length=200)) -> HTMLResponse:  # noqa: A002
        """The sign-in form (user name and personal token)."""
        return page(pages.login(next_url=_local(next)))

    @app.post(
        "/login",
        response_class=HTMLResponse,
        tags=["pages"],
        openapi_extra=_form(["username", "token"], ["next"]),
    )
    async def login_post(request: Request) -> Response:
        """Check the token; on success set the session cookie and go to ``next``."""
        form = await _form_body(request)
        origin = request.headers.get("origin")
        if origin is not None and host_name(urlsplit(origin).netloc) not in allowed:
            raise CsrfMismatch("sign-in from another site is refused")
        try:
            token = form.get("token", "")
            who = authn.users.authenticate(token, "session")
        except NotAuthenticated:
            who = None
        if who is None or who.name != _canon(form.get("username", "")):
            return page(pages.login("Unknown user or wrong token.", _local(form.get("next", "/"))), 401)
        sid, _ = sessions.open(who.name, authn.users.token_id(token))
        response = RedirectResponse(_local(form.get("next", "/")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
            max_age=8 * 3600,
        )
        return response

    @app.post("/logout", tags=["pages"], openapi_extra=_form(["csrf"], []))
    async def logout(request: Request) -> Response:
        """End the session (needs the page's CSRF token)."""
        request.state.form_csrf = (await _form_body(request)).get("csrf", "")
        authn.principal(request)
        sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse, tags=["pages"])
    def queue_page(
        request: Request,
        status: Status | Literal[""] | None = Query(None),
        key: str | None = Query(None, max_length=64),
        author: str | None = Query(None, max_length=64),
        origin: Literal["chat", "nightly", "file", ""] | None = Query(None),
    ) -> Response:
        """The approval queue, newest first, with filters and each proposal's badges."""
        who = authn.principal(request)
        filters = {
            "status": status or None,
            "key": key or None,
            "author": author or None,
            "origin": origin or None,
        }
        rows = proposal_view.queue_rows(
            Queue(),
            status=filters["status"],
            key=filters["key"],
            author=filters["author"],
            origin=filters["origin"],
        )
        return page(pages.queue(rows, who, authn.csrf_for(request, who), filters))

    @app.get("/proposals/{proposal_id}", response_class=HTMLResponse, tags=["pages"])
    def proposal_page(proposal_id: ProposalId, request: Request) -> Response:
        """One proposal: the diagram with its changes, findings and coverage, and the review forms."""
        who = authn.principal(request)
        queue = Queue()
        return page(pages.proposal(queue.get(proposal_id), who, authn.csrf_for(request, who), queue))

    @app.get("/proposals/{proposal_id}/artifact.bpmn", tags=["pages"], response_class=Response)
    def proposal_artifact(proposal_id: ProposalId, request: Request) -> Response:
        """The proposal's BPMN as a download (opens in Camunda Modeler)."""
        authn.principal(request)
        p = Queue().get(proposal_id)
        ext = "bpmn" if p.kind == "process" else "json"
        return Response(
            p.artifact,
            media_type="application/xml" if ext == "bpmn" else "application/json",
            headers={
                "Content-Disposition": attachment(f"{p.key}-{p.version}.{ext}"),
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get("/proposals/{proposal_id}/diff.json", tags=["pages"])
    def proposal_diff(proposal_id: ProposalId, request: Request) -> Response:
        """The semantic diff against the base version, as JSON (a download)."""
        authn.principal(request)
        p = Queue().get(proposal_id)
        body = p.diff.model_dump(mode="json") if p.diff is not None else None
        return JSONResponse(
            body, headers={"Content-Disposition": attachment(f"{p.key}-{p.version}.diff.json")}
        )

    app.mount("/static", StaticFiles(directory=str(FsPath(__file__).parent / "static")), name="static")

    @app.post(
        "/proposals/{proposal_id}/{action}",
        tags=["pages"],
        openapi_extra=_form(["csrf"], ["comment", "ack_executable"]),
    )
    async def proposal_form(
        proposal_id: ProposalId, action: Literal["approve", "reject"], request: Request
    ) -> Response:
        """The page's approve/reject forms: same rules as the API, plus the session's CSRF token."""
        form = await _form_body(request)
        request.state.form_csrf = form.get("csrf", "")
        who = authn.principal(request)
        from starlette.concurrency import run_in_threadpool

        if action == "approve":
            await run_in_threadpool(
                approve, proposal_id, who, form.get("comment") or None, form.get("ack_executable") == "yes"
            )
        else:
            await run_in_threadpool(lambda: Queue().reject(proposal_id, who, form.get("comment", "")))
        return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)

    settings = auth or AuthSettings()
    identity_headers = [h for h in (settings.proxy_header, settings.proxy_secret_header) if h]
    return Guard(
        app,
        allowed_hosts,
        max_body,
        single_headers=identity_headers,
        session_cookie=SESSION_COOKIE,
        trusted_proxies=trusted_proxies_from_env() if trusted_proxies is None else trusted_proxies,
    )


def attachment(filename: str) -> str:
    """RFC 6266 ``Content-Disposition``: an ASCII ``filename`` fallback and the exact name as
    ``filename*=UTF-8''…``, so any key downloads (a header must be Latin-1: never a 500)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def approve(
    proposal_id: str, who: Principal, comment: str | None, ack_executable: bool = False
) -> tuple[Queue, Proposal]:
    """Approve (the API and the page's form), then deploy when approvals suffice."""
    queue = Queue()
    proposal = queue.approve(proposal_id, who, comment, ack_executable)
    if proposal.status == "approved":
        proposal = deploy_and_record(queue, proposal.id)
    return queue, proposal


def _status(queue: Queue, proposal: Proposal) -> StatusOut:
    return StatusOut(
        proposal_id=proposal.id,
        key=proposal.key,
        version=proposal.version,
        status=proposal.status,
        approvals=queue.approvals(proposal),
        approvals_needed=queue.approvals_needed(proposal),
    )


def _canon(name: str) -> str:

    return identity(name)


def _local(url: str) -> str:
    """Only same-site paths as redirect targets (no ``//evil.example``, no scheme)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


async def _form_body(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise UsageError("send the form as application/x-www-form-urlencoded")
    raw = (await request.body()).decode("utf-8", errors="replace")
    try:
        return {k: v[0] for k, v in parse_qs(raw, max_num_fields=20).items()}
    except ValueError as exc:
        raise UsageError(f"the form cannot be read: {exc}") from exc


def _form(required: list[str], optional: list[str]) -> dict[str, Any]:
    props = {name: {"type": "string", "maxLength": 2000} for name in required + optional}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": props, "required": required}
                }
            },
        }
    }


__all__ = ["attachment", "create_app", "status_for", "trusted_proxies_from_env"]
