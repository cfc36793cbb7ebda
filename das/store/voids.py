"""Revoking a user voids their approvals of everything not yet deployed.

Why here, below both ``das.identity`` and the queue: the revocation and the history rows that
void the approvals are one transaction, whoever revokes (``das user revoke``, a test, a
script), and the store is the layer both sides share. Counting approvals stays in the queue,
which already ignores revoked principals; these rows make the effect visible in each
proposal's append-only history, and put an approved-but-not-deployed proposal back to
``proposed`` so it is reviewed again instead of deploying on a voided approval.
"""

from __future__ import annotations

from typing import Any

OPEN = ("proposed", "approved", "deploy_failed")


def void_approvals(db: Any, principal_id: str, name: str, reason: str) -> list[str]:
    """Append an ``approval_voided`` row to each open proposal ``principal_id`` (or, for rows
    recorded before principal ids existed, ``name`` proven by a DAS credential) approved;
    returns those proposals' ids. Runs inside the caller's transaction."""
    rows = db.execute(
        "SELECT DISTINCT h.proposal_id, p.status FROM proposal_history h JOIN proposals p ON p.id = h.proposal_id"
        " WHERE h.action = 'approve' AND p.status IN (?, ?, ?)"
        " AND (h.principal_id = ? OR (h.principal_id IS NULL AND h.actor = ? AND COALESCE(h.proof, '') <> 'os'))"
        " ORDER BY h.proposal_id",
        (*OPEN, principal_id, name),
    ).fetchall()
    voided = []
    for row in rows:
        proposal_id, status = row[0], row[1]
        last = db.execute(
            "SELECT artifact_sha256 FROM proposal_history WHERE proposal_id = ? ORDER BY id DESC",
            (proposal_id,),
        ).fetchone()
        back = status != "proposed"
        comment = f"{name}'s approval no longer counts: {reason}" + ("; back to proposed" if back else "")
        db.execute(
            "INSERT INTO proposal_history (proposal_id, actor, action, comment, artifact_sha256, proof,"
            " principal_id, credential) VALUES (?, 'das', 'approval_voided', ?, ?, 'system', ?, NULL)",
            (proposal_id, comment, last[0] if last else None, principal_id or None),
        )
        if back:
            db.execute(
                "UPDATE proposals SET status = 'proposed', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                " WHERE id = ?",
                (proposal_id,),
            )
        voided.append(proposal_id)
    return voided


__all__ = ["void_approvals"]
