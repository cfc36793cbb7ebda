"""Who is acting: proven principals, DAS users and their personal API tokens.

A name typed into a form or an option is not an identity. A ``Principal`` is only made here,
from evidence: a personal token checked against its hash in the store, a session that such a
token opened, an SSO proxy header that arrived together with the proxy's shared secret, or the
operating-system account running the local CLI (which holds the store file anyway).

Tokens look like ``das_<id>_<secret>``: the id finds the row, the secret is checked against an
scrypt hash (a password hash made for this, in the standard library), so a stolen database
does not yield usable tokens. Verified tokens are cached in memory by their sha256, and every
request still re-reads the user row, so ``das user revoke`` takes effect at once.

Every user has an immutable ``principal_id``, random and never reused: a name revoked and added
back is a new principal, so nothing recorded for the old one (an approval) counts for the new.
A ``Principal`` carries that id and the credential it was proven with (``token:<id>``,
``session:<token id>``, ``proxy:<header>``, ``os-uid:<uid>``), and the approval history records
both. Revoking a user voids their approvals on everything not yet deployed, in the same
transaction (``das.store.voids``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Literal, cast

from das.errors import DasError, UsageError
from das.names import identity
from das.store import Store, open_store
from das.store.voids import void_approvals

Role = Literal["author", "reviewer", "admin"]
Proof = Literal["token", "session", "proxy", "os", "system"]
ROLES: tuple[Role, ...] = ("author", "reviewer", "admin")
RESERVED_NAMES = frozenset({"das", "kernel", "system", "root-das"})
_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,63}$")
_TOKEN = re.compile(r"^das_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class NotAuthenticated(DasError):
    """No valid proof of identity came with the request."""

    exit_code = 2


class Forbidden(DasError):
    """The proven user's role does not allow the action."""

    exit_code = 1


@dataclass(frozen=True)
class Principal:
    """A proven actor: ``name`` is the canonical user name, ``proof`` says how it was proven,
    ``principal_id`` which user record (never reused), ``credential`` which credential."""

    name: str
    role: Role
    proof: Proof
    principal_id: str = ""
    credential: str = ""

    def can(self, action: Literal["draft", "review", "admin"]) -> bool:
        if action == "draft":
            return True
        if action == "review":
            return self.role in ("reviewer", "admin")
        return self.role == "admin"

    def require(self, action: Literal["draft", "review", "admin"]) -> None:
        if not self.can(action):
            raise Forbidden(
                f"{self.name} has role {self.role}; {action} needs "
                + ("reviewer or admin" if action == "review" else "admin")
            )


def os_principal() -> Principal:
    """The local CLI acts as the OS account: whoever runs it owns the store file anyway.

    The name comes from the effective uid (``pwd``), not from ``$USER``/``$LOGNAME``, which
    anyone can set.
    """
    try:
        raw = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError as exc:
        raise UsageError(
            f"uid {os.geteuid()} has no account name; the local CLI cannot tell who you are"
        ) from exc
    name = identity(raw)
    if not _USER_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise UsageError(
            f"the OS account {raw!r} cannot act in DAS (reserved or not a usable name); "
            "use the API with a personal token"
        )
    return Principal(name, "admin", "os", f"os:{name}", f"os-uid:{os.geteuid()}")


def system_principal() -> Principal:
    """DAS itself (nightly proposals, the kernel); the approval rules never let it approve."""
    return Principal("das", "author", "system", "system:das", "system")


def new_principal_id() -> str:
    """A user record's id: 128 random bits, so a re-added name never gets an old one."""
    return "u-" + secrets.token_hex(16)


def check_user_name(name: str) -> str:
    canonical = identity(name)
    if not _USER_NAME.fullmatch(canonical):
        raise UsageError(f"user name {name!r} must be 1-64 characters: lower-case letters, digits, '._@+-'")
    if canonical in RESERVED_NAMES:
        raise UsageError(f"user name {canonical!r} is reserved for DAS itself")
    return canonical


def _hash(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def _verify(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.urlsafe_b64decode(digest))


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: str
    revoked_at: str | None
    principal_id: str = ""


_USER_COLUMNS = "name, role, created_at, revoked_at, principal_id"


def _user(row: Any) -> User:
    return User(
        row["name"], cast(Role, row["role"]), row["created_at"], row["revoked_at"], row["principal_id"] or ""
    )


class Users:
    """DAS users in the store; tokens are shown once and kept only as hashes."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or open_store()
        self._verified: dict[str, tuple[str, str]] = {}  # sha256(token) -> (user, stored hash)
        self._lock = threading.Lock()

    def add(self, name: str, role: str) -> tuple[User, str]:
        """Create (or re-enable a revoked) user; returns the user and the new token, shown once."""
        canonical = check_user_name(name)
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            row = db.execute("SELECT revoked_at FROM users WHERE name = ?", (canonical,)).fetchone()
            if row is not None and row["revoked_at"] is None:
                raise UsageError(
                    f"user {canonical} exists; revoke them first (`das user revoke {canonical}`) "
                    "to issue a new token"
                )
            db.execute("DELETE FROM users WHERE name = ?", (canonical,))
            db.execute(
                "INSERT INTO users (name, role, token_id, token_hash, principal_id) VALUES (?, ?, ?, ?, ?)",
                (canonical, role, token_id, _hash(secret), new_principal_id()),
            )
        self.store.audit(os_principal().name, "user.add", canonical, {"role": role})
        return self.get(canonical), f"das_{token_id}_{secret}"

    def get(self, name: str) -> User:
        row = self.store.db.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (identity(name),)
        ).fetchone()
        if row is None:
            raise UsageError(f"no user {name!r}; see `das user list`")
        return _user(row)

    def list(self) -> list[User]:
        rows = self.store.db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [_user(r) for r in rows]

    def revoke(self, name: str) -> User:
        """Revoke the token at once and void the user's approvals of anything not yet deployed
        (one transaction; each proposal's history says so)."""
        user = self.get(name)
        with self.store.transaction() as db:
            changed = db.execute(
                "UPDATE users SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), token_hash = ''"
                " WHERE name = ? AND revoked_at IS NULL",
                (user.name,),
            ).rowcount
            voided = (
                void_approvals(db, user.principal_id, user.name, "the user was revoked") if changed else []
            )
        self.store.audit(os_principal().name, "user.revoke", user.name, {"voided_approvals": voided})
        return self.get(user.name)

    def authenticate(self, token: str, proof: Proof = "token") -> Principal:
        """The user a personal token belongs to; ``NotAuthenticated`` for anything else."""
        match = _TOKEN.fullmatch(token or "")
        if not match:
            raise NotAuthenticated("invalid token")
        row = self.store.db.execute(
            "SELECT name, role, token_hash, principal_id FROM users"
            " WHERE token_id = ? AND revoked_at IS NULL",
            (match.group(1),),
        ).fetchone()
        if row is None:
            raise NotAuthenticated("invalid or revoked token")
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(fingerprint)
        if cached != (row["name"], row["token_hash"]):
            if not _verify(match.group(2), row["token_hash"]):
                raise NotAuthenticated("invalid or revoked token")
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[fingerprint] = (row["name"], row["token_hash"])
        return Principal(
            row["name"],
            cast(Role, row["role"]),
            proof,
            row["principal_id"] or "",
            f"{proof}:{match.group(1)}",
        )

    @staticmethod
    def token_id(token: str) -> str:
        """The public id part of a token (what a login session is bound to)."""
        match = _TOKEN.fullmatch(token or "")
        if not match:
            raise NotAuthenticated("invalid token")
        return match.group(1)

    def active(self, name: str, proof: Proof, token_id: str | None = None, credential: str = "") -> Principal:
        """A user proven by other means (the SSO proxy, or a session opened with ``token_id``):
        they must exist, not be revoked and, for a session, still hold that same token."""
        sql = "SELECT name, role, principal_id FROM users WHERE name = ? AND revoked_at IS NULL"
        args: tuple[str, ...] = (identity(name),)
        if token_id is not None:
            sql += " AND token_id = ?"
            args += (token_id,)
        row = self.store.db.execute(sql, args).fetchone()
        if row is None:
            raise NotAuthenticated(
                f"{identity(name)!r} is not an active DAS user; an admin adds them with `das user add`"
            )
        credential = credential or (f"{proof}:{token_id}" if token_id else proof)
        return Principal(row["name"], cast(Role, row["role"]), proof, row["principal_id"] or "", credential)


__all__ = [
    "Forbidden",
    "NotAuthenticated",
    "Principal",
    "Role",
    "ROLES",
    "User",
    "Users",
    "check_user_name",
    "new_principal_id",
    "os_principal",
    "system_principal",
]
