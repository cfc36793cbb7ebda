"""The CLI's way to a shared queue: ``DAS_API_URL`` + ``DAS_TOKEN`` (or ``das login``).

With it, ``das draft``, ``das queue …``, ``das approve`` and ``das reject`` act through the
HTTP API as the token's user, the way ``gh`` or ``kubectl`` work, so a team shares one queue
with proven identities. HTTP errors come back as the same domain errors the local path raises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from das.config import das_home
from das.errors import DasError, InvalidInput, UpstreamError, UsageError


class RemoteRefused(DasError):
    """The server refused the action (rules, roles); its message says why."""

    exit_code = 1


def credentials_path() -> Path:
    return das_home() / "credentials.json"


def save_credentials(url: str, token: str) -> Path:
    path = credentials_path()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url.rstrip("/"), "token": token}, fh)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def remote_settings() -> tuple[str, str] | None:
    """(url, token) when the CLI should act through an API server, else None (local store)."""
    url, token = os.environ.get("DAS_API_URL"), os.environ.get("DAS_TOKEN")
    if not url:
        path = credentials_path()
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_text())
            url, token = saved["url"], token or saved["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is damaged; run `das login` again") from exc
    if not token:
        raise UsageError("DAS_API_URL is set but no token: set DAS_TOKEN or run `das login URL`")
    return str(url), str(token)


class ApiClient:
    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"DAS API at {self.url} is unreachable: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:200]}
        if response.status_code < 400:
            return data
        message = f"{self.url}: {data.get('error') if isinstance(data, dict) else data}"
        status = response.status_code
        if status in (401, 400, 413, 415, 421):
            raise UsageError(message)
        if status == 404:
            raise UsageError(message)
        if status == 422:
            raise InvalidInput(message)
        if status in (403, 409):
            raise RemoteRefused(message)
        raise UpstreamError(message)

    def me(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/me"))

    def list(self, status: str | None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/proposals", params={"status": status} if status else None))

    def get(self, proposal_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/proposals/{proposal_id}"))

    def draft(self, prompt: str, key: str | None, base: str | None) -> dict[str, Any]:
        body = {"prompt": prompt, **({"key": key} if key else {}), **({"base": base} if base else {})}
        return dict(self._call("POST", "/api/drafts", body))

    def propose(self, bpmn: str, key: str | None, base: str | None, name: str) -> dict[str, Any]:
        body = {
            "bpmn": bpmn,
            "name": name,
            **({"key": key} if key else {}),
            **({"base": base} if base else {}),
        }
        return dict(self._call("POST", "/api/proposals", body))

    def act(self, proposal_id: str, action: str, comment: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {**({"comment": comment} if comment is not None else {}), **extra}
        return dict(self._call("POST", f"/api/proposals/{proposal_id}/{action}", body))


def remote() -> ApiClient | None:
    settings = remote_settings()
    return ApiClient(*settings) if settings else None


__all__ = ["ApiClient", "RemoteRefused", "credentials_path", "remote", "remote_settings", "save_credentials"]
