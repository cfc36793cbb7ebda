"""``das user …`` (manage DAS users and their tokens) and ``das login`` / ``das logout``."""

from __future__ import annotations

import dataclasses
import sys

import click

from das.identity import Users
from das.output import emit, progress
from das.remote import ApiClient, credentials_path, save_credentials

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json keys are stable.",
)


@click.group()
def user() -> None:
    """DAS users: who may draft (author) and approve (reviewer, admin) over the API.

    Run on the machine that holds the store (it acts on $DAS_HOME/das.db directly).
    """


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["author", "reviewer", "admin"]),
    required=True,
    help="author: draft; reviewer: also approve and reject; admin: everything.",
)
@FORMAT
def user_add(name: str, role: str, fmt: str) -> None:
    """Add a user and print their personal API token ONCE (only a hash is stored).

    \b
    Example:
      das user add bob --role reviewer --format json   # {"user", "role", "token"}
    """
    added, token = Users().add(name, role)
    emit(
        {"user": added.name, "role": added.role, "token": token},
        fmt,
        lambda d: f"added {d['user']} ({d['role']}); their token (shown once, keep it secret):\n{d['token']}",
    )


@user.command("list")
@FORMAT
def user_list(fmt: str) -> None:
    """List users, their roles and whether they are revoked (never tokens)."""
    rows = [dataclasses.asdict(u) for u in Users().list()]
    emit(
        rows,
        fmt,
        lambda data: (
            "\n".join(
                [f"{'USER':<24} {'ROLE':<9} {'CREATED':<25} REVOKED"]
                + [
                    f"{r['name']:<24} {r['role']:<9} {r['created_at']:<25} {r['revoked_at'] or '-'}"
                    for r in data
                ]
            )
            if data
            else "no users; add one with `das user add NAME --role reviewer`"
        ),
    )


@user.command("revoke")
@click.argument("name")
@FORMAT
def user_revoke(name: str, fmt: str) -> None:
    """Revoke a user's token at once (running servers refuse it on the next request)."""
    revoked = Users().revoke(name)
    emit(dataclasses.asdict(revoked), fmt, lambda d: f"revoked {d['name']} at {d['revoked_at']}")


@click.command()
@click.argument("url")
@click.option("--token-stdin", is_flag=True, help="Read the token from stdin instead of prompting.")
@FORMAT
def login(url: str, token_stdin: bool, fmt: str) -> None:
    """Use the DAS API at URL for draft, queue, approve and reject, as your token's user.

    The token (from `das user add`) is checked against URL/api/me and saved in
    $DAS_HOME/credentials.json (mode 0600). DAS_API_URL and DAS_TOKEN override it.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError(f"{url!r} is not an http(s) URL of a DAS API server")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        progress(f"warning: {url} is plain HTTP: your token crosses the network unencrypted; use https")
    token = sys.stdin.readline().strip() if token_stdin else click.prompt("Token", hide_input=True).strip()
    me = ApiClient(url, token).me()
    path = save_credentials(url, token)
    progress(f"credentials saved in {path}")
    emit(
        {"url": url.rstrip("/"), **me}, fmt, lambda d: f"logged in to {d['url']} as {d['user']} ({d['role']})"
    )


@click.command()
def logout() -> None:
    """Forget the saved API credentials; commands act on the local store again."""
    path = credentials_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    progress("credentials removed" if existed else "not logged in")
