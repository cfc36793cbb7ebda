"""Engine facts without an engine: the rows Camunda's history REST API answers, kept in dicts.

Shaped like the real answers (recorded from the engine: ids are ``activityId:uuid``, a
multi-instance iteration's parent is ``activityId#multiInstanceBody:uuid``, a called
instance's call activity row names it in ``calledProcessInstanceId``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from das.camunda.client import EngineError, ExternalTask
from das.engine.keys import EngineFacts


def new_id() -> str:
    return str(uuid.uuid4())


class FakeFacts(EngineFacts):
    def __init__(self) -> None:
        super().__init__(client=None)
        self.instances: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.parents: dict[str, str] = {}
        self.lookups = 0

    def start(self, caller: str | None = None, call_activity: str = "call_tde") -> tuple[str, str | None]:
        """A new process instance (called by ``caller``'s call activity when given); returns
        (instance id, the call activity instance id or None)."""
        pid = new_id()
        root = self.instances[caller]["rootProcessInstanceId"] if caller else pid
        self.instances[pid] = {"id": pid, "rootProcessInstanceId": root, "superProcessInstanceId": caller}
        if not caller:
            return pid, None
        call_ai = f"{call_activity}:{new_id()}"
        self.calls.setdefault(caller, []).append(
            {"id": call_ai, "activityId": call_activity, "calledProcessInstanceId": pid}
        )
        return pid, call_ai

    def _instance_row(self, pid: str) -> dict[str, Any]:
        self.lookups += 1
        if pid not in self.instances:
            raise EngineError(f"engine GET /history/process-instance/{pid} -> 404", status=404)
        return self.instances[pid]

    def _call_activity_rows(self, pid: str) -> list[dict[str, Any]]:
        return list(self.calls.get(pid, []))

    def _activity_instance_row(self, activity_instance_id: str) -> dict[str, Any]:
        return {
            "id": activity_instance_id,
            "parentActivityInstanceId": self.parents.get(activity_instance_id),
        }


def external_task(
    pid: str,
    activity_id: str = "probabilistic_tde",
    *,
    topic: str = "das-tde-probabilistic",
    activity_instance_id: str | None = None,
    parent: str | None = None,
    facts: FakeFacts | None = None,
    definition: str = "tde_task_template:1:x",
    **variables: Any,
) -> ExternalTask:
    """An ExternalTask built the way the engine client builds it (from fetchAndLock's JSON)."""
    ai = activity_instance_id or f"{activity_id}:{new_id()}"
    if facts is not None:
        facts.parents[ai] = parent or pid
    return ExternalTask.from_json(
        {
            "id": new_id(),
            "topicName": topic,
            "workerId": "w",
            "retries": None,
            "processInstanceId": pid,
            "activityId": activity_id,
            "activityInstanceId": ai,
            "executionId": new_id(),
            "processDefinitionId": definition,
            "businessKey": None,
            "priority": 0,
            "variables": {
                k: {"type": "Json", "value": json.dumps(v)}
                if isinstance(v, dict | list)
                else {"type": "Null", "value": None}
                if v is None
                else {"type": "String", "value": v}
                for k, v in variables.items()
            },
        }
    )
