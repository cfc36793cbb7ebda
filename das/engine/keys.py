"""Who owns an idempotency key on the engine path: facts from the engine, never variables.

Process variables are written by any process author or upstream system, so a key in a
taskSpec (or a ``tdeResult``) is only data. Its namespace is what the engine says about the
task's process instance:

* inside a called instance (the TDE template under a call activity): the root instance, the
  calling (super) instance and the call activity's instance that started it. Every pass of
  the template's own retry loop shares it; another call activity, another multi-instance
  iteration or another process instance has another one.
* a task not inside a called instance: the root instance and its own instance (the instance
  stands for its own caller, so a top-level template's retry loop keeps its key too).

The facts of an instance never change, so they are cached per process instance.

The default key of a task without one is its activity instance (unique per pass and per
multi-instance iteration), except on the pass after DAS answered ``tdeStatus retry`` for the
same activity (not a multi-instance iteration): that pass continues the retried task under the
same key. DAS remembers it in ``tdeRetryKey``, a variable; forging it only picks a key inside
one's own namespace, which a spec may do anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from das.camunda.client import EngineClient, ExternalTask
from das.errors import UpstreamError
from das.store.keys import as_key

RETRY_KEY_VAR = "tdeRetryKey"
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class EngineScope:
    """The engine facts that decide a task's key namespace."""

    root: str
    instance: str
    caller: str | None = None  # the super process instance, for a called instance
    call_activity_instance: str | None = None  # the call activity's instance in the caller

    @property
    def namespace(self) -> str:
        if self.caller:
            return called_namespace(self.root, self.caller, self.call_activity_instance or "")
        return f"engine:{self.root}/{self.instance}/{self.instance}"


def called_namespace(root: str, caller: str, call_activity_instance: str) -> str:
    """The namespace of everything inside the instance that call activity instance started."""
    return f"engine:{root}/{caller}/{call_activity_instance}"


def default_idempotency_key(
    task: ExternalTask, multi_instance: Callable[[ExternalTask], bool] | None = None
) -> str:
    """The key of a task whose spec names none (see the module docstring).

    ``multi_instance``: whether the task is a multi-instance iteration (asked only when a retry
    is being continued; parallel iterations never share a key)."""
    chained = task.variables.get(RETRY_KEY_VAR)
    if (
        isinstance(chained, dict)
        and chained.get("activity") == task.activity_id
        and isinstance(chained.get("key"), str)
        and not (multi_instance and multi_instance(task))
    ):
        return as_key(chained["key"])
    return as_key(task.activity_instance_id or f"{task.activity_id}:{task.id}")


def retry_chain(task: ExternalTask, key: str | None) -> dict[str, Any]:
    """What to remember when DAS answers ``retry``: the next pass of this activity continues
    under ``key``."""
    return {"activity": task.activity_id, "key": key}


class EngineFacts:
    """Looks up (and caches) the scope of process instances over the engine's REST API.

    The three ``_rows`` methods are the only engine calls (a test gives them the engine's
    answers); everything else is derived from them."""

    def __init__(self, client: EngineClient | None = None) -> None:
        self._client = client
        self._scopes: dict[str, EngineScope] = {}
        self._multi: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    # -- the engine's answers ---------------------------------------------------------------
    def _engine(self) -> EngineClient:
        if self._client is None:
            self._client = (
                EngineClient()
            )  # the engine DAS_ENGINE_URL names (a handler called outside a worker)
        return self._client

    def _instance_row(self, pid: str) -> dict[str, Any]:
        """``GET /history/process-instance/{id}``."""
        return self._engine().history_process_instance(pid)

    def _call_activity_rows(self, pid: str) -> list[dict[str, Any]]:
        """The call activity instances of an instance (each names the instance it called)."""
        return (
            self._engine().history_activity_instances(
                processInstanceId=pid, activityType="callActivity", maxResults=5000
            )
            or []
        )

    def _activity_instance_row(self, activity_instance_id: str) -> dict[str, Any]:
        """``GET /history/activity-instance/{id}``."""
        return self._engine().history_activity_instance(activity_instance_id)

    # -- derived ----------------------------------------------------------------------------
    def scope(self, process_instance_id: str) -> EngineScope:
        """The scope of an instance; ``UpstreamError`` if the engine cannot say."""
        with self._lock:
            cached = self._scopes.get(process_instance_id)
        if cached is not None:
            return cached
        scope = self._lookup(process_instance_id)
        with self._lock:
            if len(self._scopes) > _CACHE_MAX:
                self._scopes.clear()
            self._scopes[process_instance_id] = scope
        return scope

    def _lookup(self, pid: str) -> EngineScope:
        if not pid:
            raise UpstreamError("the external task names no process instance")
        row = self._instance_row(pid)
        if row.get("id") != pid:
            raise UpstreamError(f"the engine has no process instance {pid!r}")
        root = str(row.get("rootProcessInstanceId") or pid)
        caller = row.get("superProcessInstanceId")
        if not caller:
            return EngineScope(root=root, instance=pid)
        started = [
            str(a["id"])
            for a in self._call_activity_rows(str(caller))
            if a.get("calledProcessInstanceId") == pid
        ]
        if len(started) != 1:
            raise UpstreamError(
                f"the engine names {len(started)} call activity instances that started {pid!r}"
            )
        return EngineScope(root=root, instance=pid, caller=str(caller), call_activity_instance=started[0])

    def multi_instance(self, task: ExternalTask) -> bool:
        """Whether the task's activity runs inside a multi-instance body (a fact of the
        deployed definition: cached per definition and activity)."""
        cache_key = (task.process_definition_id or task.process_instance_id, task.activity_id)
        with self._lock:
            known = self._multi.get(cache_key)
        if known is not None:
            return known
        current, found = task.activity_instance_id, False
        for _ in range(32):  # activity instance -> parent scopes, up to the process instance
            if not current or current == task.process_instance_id:
                break
            if "#multiInstanceBody" in current:
                found = True
                break
            current = self._activity_instance_row(current).get("parentActivityInstanceId")
        with self._lock:
            self._multi[cache_key] = found
        return found

    def compensation_namespaces(self, task: ExternalTask) -> list[str]:
        """Namespaces a compensation task may reach: its own, and those of the instances its own
        process instance called (a compensation handler on a call activity undoes the child's work)."""
        scope = self.scope(task.process_instance_id)
        children = [
            called_namespace(scope.root, task.process_instance_id, str(a["id"]))
            for a in self._call_activity_rows(task.process_instance_id)
            if a.get("calledProcessInstanceId")
        ]
        return [scope.namespace, *children]


__all__ = [
    "EngineFacts",
    "EngineScope",
    "RETRY_KEY_VAR",
    "called_namespace",
    "default_idempotency_key",
    "retry_chain",
]
