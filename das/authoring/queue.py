"""The approval queue: proposals in SQLite, their append-only history, and the approval rules.

All rules live here, so the CLI and the HTTP API enforce the same ones:
* actors are proven ``Principal``s (das/identity.py), never typed names; only reviewers and
  admins approve or reject;
* the DAS's own identity never approves, and nobody approves a proposal they authored;
* only a ``proposed`` proposal can be approved or rejected;
* a proposal whose base is no longer the key's current version must be rebased first;
* keys configured as high-impact need two distinct approvals;
* an approval binds to the sha256 of the artifact it saw: a rebase starts the count again;
* an approval binds to the approver's principal id (never reused) and records the credential
  used: a revoked user's approvals stop counting, and a user added back under the same name
  is a new principal whose predecessor's approvals never count for them;
* executable content outside the operator's allow-list (scripts, Java classes, expressions,
  connectors: ``das.bpmn.executable``) is approved only with an explicit acknowledgement,
  recorded in the history row;
* ``deployable`` re-derives "approved" from the history rows before any side effect, so no
  status column, crash or bug can deploy what the rules did not approve.
Every state change and its history entry are one transaction: a crash leaves the proposal
either as it was or fully changed, never in between.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

import yaml

from das.authoring import versions
from das.bpmn.executable import describe, executable_content, mark_new
from das.bpmn.parse import parse
from das.bpmn.safexml import BpmnParseError
from das.bpmn.validate import validate
from das.config import resource_dir
from das.contracts import ExecutableItem, HistoryEntry, Proposal, ProposalDiff
from das.errors import DasError, UsageError
from das.identity import Forbidden, Principal
from das.names import identity, task_type_problem
from das.store import Store, open_store


class ApprovalRefused(DasError):
    """An approval or rejection the rules do not allow; the message says which rule."""

    exit_code = 1


class ProposalNotFound(UsageError):
    pass


@lru_cache(maxsize=1)
def approval_rules() -> dict[str, Any]:
    path = resource_dir("guardrails") / "approval.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    return {"das_identity": "das", "high_impact_keys": [], **(data or {})}


def new_proposal_id() -> str:
    return "p-" + uuid.uuid4().hex[:10]


class Queue:
    def __init__(self, store: Store | None = None) -> None:
        self.store = store or open_store()

    # -- reading ------------------------------------------------------------------------------
    def get(self, proposal_id: str) -> Proposal:
        row = self.store.db.execute("SELECT * FROM proposals WHERE id = ?", (proposal_id,)).fetchone()
        if row is None:
            raise ProposalNotFound(f"no proposal {proposal_id!r}; see `das queue list`")
        body = json.loads(row["body_json"])
        body.update(status=row["status"], base_version=row["base_version"], version=row["version"])
        body["history"] = [
            dict(h)
            for h in self.store.db.execute(
                "SELECT at, actor, action, comment, artifact_sha256, proof, principal_id, credential, acknowledged"
                " FROM proposal_history WHERE proposal_id = ? ORDER BY id",
                (proposal_id,),
            )
        ]
        proposal = Proposal.model_validate(body)
        if (
            proposal.kind == "process"
        ):  # what the engine would run, read from the artifact itself, never stored
            diff = proposal.diff or ProposalDiff(text="no diff recorded")
            diff.executable = self.executable(proposal)
            proposal.diff = diff
        return proposal

    def executable(self, proposal: Proposal) -> builtins.list[ExecutableItem]:
        """Every executable element of the proposal's artifact (``flagged``: outside the
        allow-list), each marked ``new`` unless its base version had it."""
        items = _executable_of(proposal.artifact)
        base = self.artifact_of(proposal.key, proposal.base_version) if proposal.base_version else None
        return mark_new(items, _executable_of(base)) if base else items

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, key, kind, base_version, version, status, author, origin, created_at FROM proposals"
        rows = self.store.db.execute(
            sql + (" WHERE status = ?" if status else "") + " ORDER BY created_at, rowid",
            (status,) if status else (),
        )
        return [dict(r) for r in rows]

    def current_version(self, key: str) -> str | None:
        rows = self.store.db.execute("SELECT version FROM process_versions WHERE key = ?", (key,)).fetchall()
        return versions.latest([r[0] for r in rows])

    def artifact_of(self, key: str, version: str) -> str | None:
        row = self.store.db.execute(
            "SELECT artifact FROM process_versions WHERE key = ? AND version = ?", (key, version)
        ).fetchone()
        return row[0] if row else None

    def approvals(self, proposal: Proposal) -> builtins.list[str]:
        """Distinct people whose approval counts now: of the current artifact, not the author,
        not the DAS identity, given after the last artifact change, by a principal that is still
        an active reviewer (matched by principal id, never by name)."""
        current = proposal.artifact_sha256()
        barred = {identity(proposal.author), identity(str(approval_rules()["das_identity"]))}
        reviewers = {
            r["principal_id"]: (r["name"], r["created_at"])
            for r in self.store.db.execute(
                "SELECT principal_id, name, created_at FROM users WHERE revoked_at IS NULL AND role IN ('reviewer', 'admin')"
            )
        }
        by_name = {name: (pid, created) for pid, (name, created) in reviewers.items()}
        counted: set[str] = set()
        for h in proposal.history:
            if h.action == "rebased":
                counted.clear()
            elif h.action == "approve" and h.artifact_sha256 == current and identity(h.actor) not in barred:
                name = identity(h.actor)
                if h.proof == "os":  # an OS account's approval was proven by the store's file permissions
                    counted.add(name)
                elif h.principal_id:
                    if reviewers.get(h.principal_id, ("", ""))[0] == name:
                        counted.add(name)
                elif name in by_name and by_name[name][1] <= h.at:
                    # recorded before principal ids: only if this user record existed at the time
                    # (a name added back later is another principal)
                    counted.add(name)
        return sorted(counted)

    @staticmethod
    def approvals_needed(proposal: Proposal) -> int:
        return 2 if proposal.key in approval_rules()["high_impact_keys"] else 1

    def deployable(self, proposal_id: str) -> Proposal:
        """The proposal, if the history proves it may deploy now; ``ApprovalRefused`` otherwise.

        Called before any side effect of a deployment (CLI, API, kernel start-up): the status
        column is not trusted, the approvals are counted again from the append-only history.
        """
        proposal = self.get(proposal_id)
        if proposal.status not in ("approved", "deploy_failed"):
            raise ApprovalRefused(
                f"proposal {proposal_id} is {proposal.status}; only approved proposals deploy"
            )
        got, needed = self.approvals(proposal), self.approvals_needed(proposal)
        if len(got) < needed:
            raise ApprovalRefused(
                f"proposal {proposal_id} has {len(got)} valid approval(s) of its current artifact, {needed} needed; "
                "it cannot deploy"
            )
        current = self.current_version(proposal.key)
        owner = self.store.db.execute(
            "SELECT proposal_id FROM process_versions WHERE key = ? AND version = ?",
            (proposal.key, proposal.version),
        ).fetchone()
        if owner is not None and owner[0] != proposal.id:
            raise ApprovalRefused(
                f"{proposal.key}@{proposal.version} is already taken by "
                f"{owner[0] or 'an existing deployment'}; rebase {proposal_id} first"
            )
        if proposal.base_version != current and owner is None:
            raise ApprovalRefused(
                f"proposal {proposal_id} is based on {proposal.key}@{proposal.base_version or '(new)'}"
                f" but the current version is {current}; rebase it first"
            )
        return proposal

    def pending_deploys(self) -> builtins.list[Proposal]:
        rows = self.store.db.execute("SELECT id FROM proposals WHERE status IN ('approved', 'deploy_failed')")
        return [self.get(r[0]) for r in rows]

    # -- writing ------------------------------------------------------------------------------
    def file(self, proposal: Proposal, proof: str | None = None, author: Principal | None = None) -> Proposal:
        body = proposal.model_dump(mode="json", exclude={"history"})
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO proposals (id, key, kind, base_version, version, status, author, origin, body_json)"
                " VALUES (?, ?, ?, ?, ?, 'proposed', ?, ?, ?)",
                (
                    proposal.id,
                    proposal.key,
                    proposal.kind,
                    proposal.base_version,
                    proposal.version,
                    identity(proposal.author),
                    proposal.origin,
                    json.dumps(body),
                ),
            )
            self._history(
                db,
                proposal,
                proposal.author,
                "filed",
                f"{proposal.key} {proposal.base_version or '(new)'} -> {proposal.version}",
                proof,
                author,
            )
        return self.get(proposal.id)

    def approve(
        self, proposal_id: str, reviewer: Principal, comment: str | None = None, ack_executable: bool = False
    ) -> Proposal:
        """Approve as ``reviewer``; ``ack_executable``: the reviewer read the flagged executable
        content (required when there is any; recorded in the history row)."""
        _require_principal(reviewer)
        with self.store.transaction() as db:
            proposal = self.get(proposal_id)
            self._approve_checks(proposal, reviewer)
            _revalidate(proposal)
            approver = self._bound(db, reviewer)
            acknowledged = _acknowledgement(proposal, _executable_of(proposal.artifact), ack_executable)
            already = self.approvals(proposal)
            self._history(
                db, proposal, reviewer.name, "approve", comment, reviewer.proof, approver, acknowledged
            )
            if len(already) + 1 >= self.approvals_needed(proposal):
                self._set_status(db, proposal_id, "approved")
        return self.get(proposal_id)

    @staticmethod
    def _bound(db: Any, who: Principal) -> Principal:
        """``who`` with the principal id of their user record; refused unless that record is an
        active user of the same name (an OS account is proven by the store's file permissions)."""
        if who.proof == "os":
            return who
        row = db.execute(
            "SELECT principal_id FROM users WHERE name = ? AND revoked_at IS NULL", (identity(who.name),)
        ).fetchone()
        if row is None or (who.principal_id and row[0] != who.principal_id):
            raise ApprovalRefused(
                f"{who.name} is not an active DAS user (revoked, or added again since this "
                "credential was issued); sign in again"
            )
        return who if who.principal_id else replace(who, principal_id=row[0])

    def _approve_checks(self, proposal: Proposal, reviewer: Principal) -> None:
        """Every rule an approval must pass, in the order a reviewer should read them."""
        proposal_id = proposal.id
        self._check_reviewable(proposal, reviewer, "approve")
        current = self.current_version(proposal.key)
        if proposal.base_version != current:
            raise ApprovalRefused(
                f"proposal {proposal_id} is based on {proposal.key}@{proposal.base_version or '(new)'} but the "
                f"current version is {current or '(none)'}; rebase and re-validate it first "
                f"(`das queue rebase {proposal_id}`)"
            )
        if not proposal.validation.valid:
            raise ApprovalRefused(f"proposal {proposal_id} did not pass validation; it cannot be approved")
        for wrapper in proposal.tde_wrappers:
            problem = task_type_problem(str(wrapper.get("task_type", "")))
            if problem:
                raise ApprovalRefused(f"proposal {proposal_id}'s TDE wrapper: {problem}")
        needed = self.approvals_needed(proposal)
        if identity(reviewer.name) in self.approvals(proposal):
            raise ApprovalRefused(
                f"{reviewer.name} already approved {proposal_id}; {needed} distinct approvals needed"
            )

    def why_not(self, proposal: Proposal, who: Principal) -> dict[str, str | None]:
        """Why each review action is refused for ``who`` now (None: allowed), for the page's
        buttons. The same checks ``approve`` and ``reject`` make; nothing is written."""
        out: dict[str, str | None] = {}
        checks: dict[str, Callable[[], None]] = {
            "approve": lambda: self._approve_checks(proposal, who),
            "reject": lambda: self._check_reviewable(proposal, who, "reject"),
        }
        for action, check in checks.items():
            try:
                check()
                out[action] = None
            except (ApprovalRefused, Forbidden) as exc:
                out[action] = exc.message
        return out

    def reject(self, proposal_id: str, reviewer: Principal, comment: str) -> Proposal:
        _require_principal(reviewer)
        if not (comment or "").strip():
            raise UsageError("a comment is required when rejecting: say why")
        with self.store.transaction() as db:
            proposal = self.get(proposal_id)
            self._check_reviewable(proposal, reviewer, "reject")
            self._history(db, proposal, reviewer.name, "reject", comment, reviewer.proof, reviewer)
            self._set_status(db, proposal_id, "rejected")
        return self.get(proposal_id)

    def record_deploy(
        self, proposal_id: str, ok: bool, message: str, target: str, deployment_id: str | None = None
    ) -> Proposal:
        with self.store.transaction() as db:
            proposal = self.deployable(proposal_id)
            if ok:  # deployable() refused any row owned by another proposal: this never overwrites one
                db.execute(
                    "DELETE FROM process_versions WHERE key = ? AND version = ? AND proposal_id = ?",
                    (proposal.key, proposal.version, proposal_id),
                )
                db.execute(
                    "INSERT INTO process_versions (key, version, proposal_id, target, artifact,"
                    " engine_deployment_id) VALUES (?, ?, ?, ?, ?, ?)",
                    (proposal.key, proposal.version, proposal_id, target, proposal.artifact, deployment_id),
                )
            self._set_status(db, proposal_id, "deployed" if ok else "deploy_failed")
            self._history(
                db,
                proposal,
                "kernel",
                "deployed" if ok else "deploy_failed",
                f"{target}: {message}",
                "system",
            )
        return self.get(proposal_id)

    def replace_artifact(
        self, proposal_id: str, actor: Principal, changes: dict[str, Any], note: str
    ) -> Proposal:
        """Rebase: a new base, version, artifact and reports. Approvals given so far concerned the
        old artifact, so they stop counting (the history row says so)."""
        _require_principal(actor)
        with self.store.transaction() as db:
            proposal = self.get(proposal_id)
            if proposal.status != "proposed":
                raise ApprovalRefused(
                    f"proposal {proposal_id} is {proposal.status}; only proposed ones can be rebased"
                )
            if identity(actor.name) != identity(proposal.author) and not actor.can("review"):
                raise Forbidden(
                    f"{actor.name} may rebase only their own proposals ({proposal_id} is by "
                    f"{proposal.author})"
                )
            updated = proposal.model_copy(update=changes)
            body = updated.model_dump(mode="json", exclude={"history"})
            db.execute(
                "UPDATE proposals SET base_version = ?, version = ?, body_json = ?,"
                " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                (updated.base_version, updated.version, json.dumps(body), proposal_id),
            )
            reset = self.approvals(proposal)
            if reset:
                note += f"; approvals reset (they concerned the old artifact): {', '.join(reset)}"
            self._history(db, updated, actor.name, "rebased", note, actor.proof, actor)
        return self.get(proposal_id)

    def seed_version(self, key: str, version: str, artifact: str, target: str = "seed") -> None:
        """Record an existing version (e.g. a process already in processes/) as a base."""
        versions.parse(version)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO process_versions (key, version, target, artifact) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key, version) DO NOTHING",
                (key, version, target, artifact),
            )

    # -- helpers ------------------------------------------------------------------------------
    def _check_reviewable(self, proposal: Proposal, reviewer: Principal, action: str) -> None:
        name = identity(reviewer.name)
        if name == identity(str(approval_rules()["das_identity"])) or reviewer.proof == "system":
            raise ApprovalRefused(
                f"the DAS identity {reviewer.name!r} cannot {action} proposals; a human must"
            )
        if not reviewer.can("review"):
            raise Forbidden(
                f"{reviewer.name} has role {reviewer.role}; only reviewers and admins can {action}"
            )
        if name == identity(proposal.author):
            raise ApprovalRefused(
                f"{reviewer.name} authored {proposal.id} and cannot {action} it; ask another reviewer"
            )
        if proposal.status != "proposed":
            raise ApprovalRefused(
                f"proposal {proposal.id} is {proposal.status}; only proposed ones can be {action}d"
            )

    @staticmethod
    def _history(
        db: Any,
        proposal: Proposal,
        actor: str,
        action: str,
        comment: str | None,
        proof: str | None,
        who: Principal | None = None,
        acknowledged: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO proposal_history (proposal_id, actor, action, comment, artifact_sha256, proof,"
            " principal_id, credential, acknowledged) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                proposal.id,
                actor,
                action,
                comment,
                proposal.artifact_sha256(),
                proof,
                (who.principal_id or None) if who else None,
                (who.credential or None) if who else None,
                acknowledged,
            ),
        )

    @staticmethod
    def _set_status(db: Any, proposal_id: str, status: str) -> None:
        db.execute(
            "UPDATE proposals SET status = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
            (status, proposal_id),
        )


def _require_principal(actor: object) -> None:
    """A typed name is not an identity: callers must pass a proven ``Principal``."""
    if not isinstance(actor, Principal):
        raise TypeError(f"expected a proven Principal, got {type(actor).__name__}")


def _executable_of(xml: str | None) -> builtins.list[ExecutableItem]:
    if not xml:
        return []
    try:
        return executable_content(parse(xml.encode(), name="proposal.bpmn"))
    except BpmnParseError:
        return []  # an unreadable artifact never validates, so it is never approved


def _acknowledgement(proposal: Proposal, items: builtins.list[ExecutableItem], ack: bool) -> str | None:
    """What the approval acknowledges; ``ApprovalRefused`` when flagged content is not acknowledged."""
    flagged = [i for i in items if i.flagged]
    if not flagged:
        return None
    listed = "; ".join(describe(i, 60) for i in flagged[:5]) + (
        f"; and {len(flagged) - 5} more" if len(flagged) > 5 else ""
    )
    if not ack:
        raise ApprovalRefused(
            f"proposal {proposal.id} runs {len(flagged)} executable element(s) outside the allow-list: {listed}. "
            "Read them (das queue show, or the approval page), then approve with an explicit acknowledgement: "
            '`das approve ID --ack-executable`, the page\'s checkbox, or "ack_executable": true'
        )
    digest = hashlib.sha256(json.dumps([i.model_dump(mode="json") for i in flagged], sort_keys=True).encode())
    return f"{len(flagged)} executable element(s) [{digest.hexdigest()[:12]}]: {listed}"


def _revalidate(proposal: Proposal) -> None:
    """Approval never trusts the stored report: the artifact itself is validated again."""
    if proposal.kind != "process":
        return

    report = validate(proposal.artifact.encode(), known_processes=None, name=f"{proposal.key}.bpmn")
    errors = [
        f"{f.rule} on {f.element or 'process'}: {f.message}" for f in report.findings if f.severity == "error"
    ]
    if errors:
        raise ApprovalRefused(f"proposal {proposal.id}'s BPMN does not validate now: {'; '.join(errors[:3])}")


__all__ = [
    "ApprovalRefused",
    "HistoryEntry",
    "identity",
    "ProposalNotFound",
    "Queue",
    "approval_rules",
    "new_proposal_id",
]
