"""A thin, typed httpx client for the Camunda 7 REST API (Camunda 7 CE, Operaton, CIB seven).

Thin on purpose: DAS needs the whole REST surface it uses (deployments, history, incidents,
messages) in one place, its own error types (``das.errors``), explicit control over long
polling, lock extension and retries, and no hidden threads. See docs/engine.md for why this
is not built on ``camunda-external-task-client-python3``.

Errors: connection failures, timeouts and 5xx raise ``EngineUnavailable`` (a
``TransientUpstreamError``); 4xx raise ``EngineError`` (an ``UpstreamError``) whose message
carries the engine's own ``type: message``. Credentials never appear in messages or logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from das.camunda.variables import from_variables, to_variables
from das.config import engine_url
from das.errors import TransientUpstreamError, UpstreamError

DAS_DEPLOYMENT_SOURCE = "das"


class EngineError(UpstreamError):
    """The engine answered 4xx: the request was wrong or the state did not allow it."""

    def __init__(self, message: str, status: int = 0, type: str = "", **details: Any) -> None:
        super().__init__(message, status=status, type=type, **details)
        self.status = status
        self.type = type


class EngineUnavailable(TransientUpstreamError):
    """The engine is unreachable, timed out, or answered 5xx: worth retrying later."""

    def __init__(self, message: str, status: int = 0, type: str = "", **details: Any) -> None:
        super().__init__(message, status=status, type=type, **details)
        self.status = status
        self.type = type


@dataclass
class Topic:
    """One topic subscription of a fetchAndLock request."""

    name: str
    lock_duration_ms: int = 60_000
    variables: list[str] | None = None  # None = all variables
    local_variables: bool = False
    process_definition_keys: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"topicName": self.name, "lockDuration": self.lock_duration_ms}
        if self.variables is not None:
            body["variables"] = self.variables
        if self.local_variables:
            body["localVariables"] = True
        if self.process_definition_keys:
            body["processDefinitionKeyIn"] = self.process_definition_keys
        body.update(self.extra)
        return body


@dataclass
class ExternalTask:
    """A locked external task, with its variables already turned into Python values."""

    id: str
    topic: str
    worker_id: str
    retries: int | None
    process_instance_id: str
    activity_id: str
    activity_instance_id: str | None
    business_key: str | None
    priority: int
    lock_expiration: str | None
    variables: dict[str, Any]
    raw: dict[str, Any]
    execution_id: str | None = None
    process_definition_id: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExternalTask:
        return cls(
            id=data["id"],
            topic=data.get("topicName", ""),
            worker_id=data.get("workerId", ""),
            retries=data.get("retries"),
            process_instance_id=data.get("processInstanceId", ""),
            activity_id=data.get("activityId", ""),
            activity_instance_id=data.get("activityInstanceId"),
            business_key=data.get("businessKey"),
            priority=data.get("priority") or 0,
            lock_expiration=data.get("lockExpirationTime"),
            variables=from_variables(data.get("variables")),
            raw=data,
            execution_id=data.get("executionId"),
            process_definition_id=data.get("processDefinitionId"),
        )


def _auth_from_env() -> tuple[httpx.Auth | None, dict[str, str]]:
    token = os.environ.get("DAS_ENGINE_TOKEN")
    if token:
        return None, {"Authorization": f"Bearer {token}"}
    user = os.environ.get("DAS_ENGINE_USER")
    if user:
        return httpx.BasicAuth(user, os.environ.get("DAS_ENGINE_PASSWORD", "")), {}
    return None, {}


class EngineClient:
    """Camunda 7 REST API calls DAS makes. One instance is thread-safe (httpx.Client is)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
    ) -> None:
        self.base_url = (base_url or engine_url()).rstrip("/")
        auth: httpx.Auth | None
        if token:
            auth, headers = None, {"Authorization": f"Bearer {token}"}
        elif user:
            auth, headers = httpx.BasicAuth(user, password or ""), {}
        else:
            auth, headers = _auth_from_env()
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            headers={"Accept": "application/json", **headers},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def __repr__(self) -> str:  # never show credentials
        return f"EngineClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raw: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One REST call; returns parsed JSON (None for 204), or text when ``raw``."""
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.request(
                method,
                path,
                json=json,
                params=clean,
                files=files,
                data=data,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise EngineUnavailable(f"engine timed out: {method} {path} at {self.base_url}") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(
                f"engine unreachable at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            _raise_for(resp, method, path)
        if resp.status_code == 204 or not resp.content:
            return None
        if raw:
            return resp.text
        try:
            return resp.json()
        except ValueError:
            return resp.text

    # -- engine, deployments, definitions ---------------------------------------------------

    def engines(self) -> list[dict[str, Any]]:
        return self.request("GET", "/engine")

    def version(self) -> str:
        return (self.request("GET", "/version") or {}).get("version", "")

    def is_ready(self) -> bool:
        """True when both /engine and /deployment answer (the kernel's readiness test)."""
        try:
            self.request("GET", "/engine", timeout=5)
            self.request("GET", "/deployment", params={"maxResults": 1}, timeout=5)
            return True
        except UpstreamError:
            return False

    def deploy(
        self,
        name: str,
        resources: Mapping[str, bytes | str],
        *,
        changed_only: bool = True,
        source: str = DAS_DEPLOYMENT_SOURCE,
        tenant_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a deployment; with ``changed_only`` unchanged resources are not redeployed.

        ``deployment-name`` and ``deployment-source`` identify DAS's deployments.
        """
        data: dict[str, Any] = {
            "deployment-name": name,
            "deployment-source": source,
            "enable-duplicate-filtering": "true" if changed_only else "false",
            "deploy-changed-only": "true" if changed_only else "false",
        }
        if tenant_id:
            data["tenant-id"] = tenant_id
        files = []
        for fname, content in resources.items():
            body = content.encode() if isinstance(content, str) else content
            files.append((fname, (fname, body, "application/octet-stream")))
        return self.request("POST", "/deployment/create", data=data, files=files, timeout=120)

    def deployments(self, name: str | None = None, source: str | None = None) -> list[dict[str, Any]]:
        return self.request(
            "GET",
            "/deployment",
            params={"name": name, "source": source, "sortBy": "deploymentTime", "sortOrder": "desc"},
        )

    def delete_deployment(self, deployment_id: str, cascade: bool = True) -> None:
        self.request("DELETE", f"/deployment/{deployment_id}", params={"cascade": cascade})

    def process_definitions(self, key: str | None = None, latest: bool = True, **params: Any) -> list[dict]:
        return self.request(
            "GET", "/process-definition", params={"key": key, "latestVersion": latest or None, **params}
        )

    def process_definition_xml(self, *, key: str | None = None, id: str | None = None) -> str:
        """BPMN XML of the latest definition with ``key``, or of definition ``id``."""
        if bool(key) == bool(id):
            raise ValueError("give exactly one of key or id")
        path = f"/process-definition/key/{key}/xml" if key else f"/process-definition/{id}/xml"
        return (self.request("GET", path) or {}).get("bpmn20Xml", "")

    # -- instances and messages -------------------------------------------------------------

    def start_process(
        self,
        key: str,
        variables: Mapping[str, Any] | None = None,
        *,
        business_key: str | None = None,
        with_variables: bool = False,
    ) -> dict[str, Any]:
        """Start the latest version of ``key``; ``variables`` are plain Python values."""
        body: dict[str, Any] = {"variables": to_variables(dict(variables or {}))}
        if business_key:
            body["businessKey"] = business_key
        if with_variables:
            body["withVariablesInReturn"] = True
        return self.request("POST", f"/process-definition/key/{key}/start", json=body)

    def process_instances(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/process-instance", params=params)

    def process_instance_variables(self, instance_id: str) -> dict[str, Any]:
        return from_variables(self.request("GET", f"/process-instance/{instance_id}/variables"))

    def delete_process_instance(self, instance_id: str) -> None:
        self.request("DELETE", f"/process-instance/{instance_id}", params={"skipCustomListeners": True})

    def correlate_message(
        self,
        name: str,
        *,
        business_key: str | None = None,
        correlation_keys: Mapping[str, Any] | None = None,
        process_instance_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        all: bool = False,
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"messageName": name, "all": all, "resultEnabled": True}
        if business_key:
            body["businessKey"] = business_key
        if correlation_keys:
            body["correlationKeys"] = to_variables(dict(correlation_keys))
        if process_instance_id:
            body["processInstanceId"] = process_instance_id
        if variables:
            body["processVariables"] = to_variables(dict(variables))
        return self.request("POST", "/message", json=body) or []

    # -- external tasks ---------------------------------------------------------------------

    def fetch_and_lock(
        self,
        worker_id: str,
        topics: Iterable[Topic | str],
        *,
        max_tasks: int = 10,
        async_response_timeout_ms: int | None = None,
        use_priority: bool = True,
        lock_duration_ms: int = 60_000,
    ) -> list[ExternalTask]:
        """Lock up to ``max_tasks``; with ``async_response_timeout_ms`` the call long-polls."""
        body: dict[str, Any] = {
            "workerId": worker_id,
            "maxTasks": max_tasks,
            "usePriority": use_priority,
            "topics": [(t if isinstance(t, Topic) else Topic(t, lock_duration_ms)).to_json() for t in topics],
        }
        timeout = self.timeout
        if async_response_timeout_ms:
            body["asyncResponseTimeout"] = async_response_timeout_ms
            timeout = self.timeout + async_response_timeout_ms / 1000
        data = self.request("POST", "/external-task/fetchAndLock", json=body, timeout=timeout) or []
        return [ExternalTask.from_json(d) for d in data]

    def complete(
        self,
        task_id: str,
        worker_id: str,
        variables: Mapping[str, Any] | None = None,
        local_variables: Mapping[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {"workerId": worker_id, "variables": to_variables(dict(variables or {}))}
        if local_variables:
            body["localVariables"] = to_variables(dict(local_variables))
        self.request("POST", f"/external-task/{task_id}/complete", json=body)

    def handle_failure(
        self,
        task_id: str,
        worker_id: str,
        error_message: str,
        *,
        error_details: str | None = None,
        retries: int = 0,
        retry_timeout_ms: int = 0,
    ) -> None:
        """Report a technical failure; at ``retries`` 0 the engine raises an incident."""
        body: dict[str, Any] = {
            "workerId": worker_id,
            "errorMessage": error_message[:3900],  # the engine column is 4000 chars
            "retries": max(0, retries),
            "retryTimeout": max(0, retry_timeout_ms),
        }
        if error_details:
            body["errorDetails"] = error_details
        self.request("POST", f"/external-task/{task_id}/failure", json=body)

    def handle_bpmn_error(
        self,
        task_id: str,
        worker_id: str,
        error_code: str,
        error_message: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        """Throw a BPMN error at the task; a boundary event with this code catches it."""
        body: dict[str, Any] = {"workerId": worker_id, "errorCode": error_code}
        if error_message:
            body["errorMessage"] = error_message[:3900]
        if variables:
            body["variables"] = to_variables(dict(variables))
        self.request("POST", f"/external-task/{task_id}/bpmnError", json=body)

    def extend_lock(self, task_id: str, worker_id: str, new_duration_ms: int) -> None:
        self.request(
            "POST",
            f"/external-task/{task_id}/extendLock",
            json={"workerId": worker_id, "newDuration": new_duration_ms},
        )

    def unlock(self, task_id: str) -> None:
        self.request("POST", f"/external-task/{task_id}/unlock")

    def external_task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/external-task/{task_id}")

    def external_tasks(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/external-task", params=params)

    def set_external_task_retries(self, task_id: str, retries: int) -> None:
        self.request("PUT", f"/external-task/{task_id}/retries", json={"retries": retries})

    # -- incidents and history --------------------------------------------------------------

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/incident", params=params)

    def history_process_instances(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/history/process-instance", params=params)

    def history_process_instance(self, instance_id: str) -> dict[str, Any]:
        """One historic process instance (rootProcessInstanceId, superProcessInstanceId, ...)."""
        return self.request("GET", f"/history/process-instance/{_segment(instance_id)}") or {}

    def history_variables(self, **params: Any) -> list[dict[str, Any]]:
        """Historic variable instances; Json values are parsed into Python values."""
        rows = (
            self.request("GET", "/history/variable-instance", params={"deserializeValues": False, **params})
            or []
        )
        for row in rows:
            row["parsedValue"] = from_variables({"v": row})["v"]
        return rows

    def history_activity_instances(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/history/activity-instance", params=params)

    def history_activity_instance(self, activity_instance_id: str) -> dict[str, Any]:
        """One historic activity instance (parentActivityInstanceId, calledProcessInstanceId, ...)."""
        return self.request("GET", f"/history/activity-instance/{_segment(activity_instance_id)}") or {}

    def history_incidents(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/history/incident", params=params)

    def history_external_task_log(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/history/external-task-log", params=params)

    def history_external_task_error_details(self, log_id: str) -> str:
        return (
            self.request(
                "GET",
                f"/history/external-task-log/{log_id}/error-details",
                raw=True,
                headers={"Accept": "text/plain"},
            )
            or ""
        )


def _segment(value: str) -> str:
    """An id as one URL path segment (an id from a task or a variable never adds a path)."""
    return quote(str(value), safe="")


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def _raise_for(resp: httpx.Response, method: str, path: str) -> None:
    kind, message = "", resp.text[:500]
    try:
        body = resp.json()
        if isinstance(body, dict):
            kind = body.get("type", "") or ""
            message = body.get("message", message) or message
    except ValueError:
        pass
    if resp.status_code == 401 and not message.strip():
        message = (
            "authentication required or refused (set DAS_ENGINE_USER/DAS_ENGINE_PASSWORD or DAS_ENGINE_TOKEN)"
        )
    text = f"engine {method} {path} -> {resp.status_code} {kind}: {message}".replace(" : ", ": ")
    if resp.status_code >= 500:
        raise EngineUnavailable(text, status=resp.status_code, type=kind)
    raise EngineError(text, status=resp.status_code, type=kind)
