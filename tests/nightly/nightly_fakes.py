"""Synthetic engine history in the shapes the Camunda 7 REST API returns, and a fake client."""

from __future__ import annotations

from typing import Any

KEY = "nightly_demo"
XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="http://procos.io/test">
  <bpmn:process id="{KEY}" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge" />
    <bpmn:serviceTask id="charge" name="Charge card" camunda:type="external" camunda:topic="charge" />
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="gw" />
    <bpmn:exclusiveGateway id="gw" default="f_ok" />
    <bpmn:sequenceFlow id="f_ok" sourceRef="gw" targetRef="review" />
    <bpmn:sequenceFlow id="f_big" sourceRef="gw" targetRef="audit"><bpmn:conditionExpression>${{amount &gt; 1000}}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:userTask id="review" name="Review" />
    <bpmn:userTask id="audit" name="Audit" />
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="done" />
    <bpmn:sequenceFlow id="f4" sourceRef="audit" targetRef="done" />
    <bpmn:endEvent id="done" />
  </bpmn:process>
</bpmn:definitions>"""
DEF = {"id": f"{KEY}:1:abc", "key": KEY, "version": 1, "versionTag": None}


def incident(
    i: int, activity: str = "charge", kind: str = "failedExternalTask", task: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"inc-{i}",
        "configuration": task or f"task-{i}",
        "processDefinitionKey": KEY,
        "processInstanceId": f"pi-{i}",
        "activityId": activity,
        "incidentType": kind,
        "incidentMessage": "card service down",
        "createTime": f"2026-11-21T0{i % 10}:00:00.000+0000",
        "open": True,
        "resolved": False,
        "deleted": False,
    }


def log(
    i: int,
    task: str,
    *,
    failure: bool = False,
    success: bool = False,
    retries: int | None = None,
    activity: str = "charge",
) -> dict[str, Any]:
    return {
        "id": f"log-{i}",
        "externalTaskId": task,
        "activityId": activity,
        "processInstanceId": f"pi-{task}",
        "creationLog": not (failure or success),
        "failureLog": failure,
        "successLog": success,
        "retries": retries,
        "errorMessage": "timeout" if failure else None,
        "timestamp": f"2026-11-21T01:{i % 60:02d}:00.000+0000",
    }


def activity(pi: str, act: str, ms: int | None, kind: str = "serviceTask", n: int = 0) -> dict[str, Any]:
    return {
        "id": f"ai-{pi}-{act}-{n}",
        "activityId": act,
        "activityType": kind,
        "processInstanceId": pi,
        "processDefinitionId": DEF["id"],
        "durationInMillis": ms,
    }


def normal_instance(pi: str, review_ms: int = 1000) -> list[dict[str, Any]]:
    return [
        activity(pi, "start", 0, "startEvent"),
        activity(pi, "charge", 200),
        activity(pi, "gw", 0, "exclusiveGateway"),
        activity(pi, "review", review_ms, "userTask"),
        activity(pi, "done", 0, "noneEndEvent"),
    ]


class FakeClient:
    """Answers the history queries ``mine`` makes; paging is honoured."""

    def __init__(self, *, incidents=(), task_log=(), activities=(), completed=(), xml: str = XML) -> None:
        self.rows = {
            "inc": list(incidents),
            "log": list(task_log),
            "act": list(activities),
            "pi": list(completed),
        }
        self.xml = xml

    def _page(self, rows, firstResult=0, maxResults=1000, **_):
        return rows[firstResult : firstResult + maxResults]

    def process_definitions(self, key=None, latest=True, **_):
        return [DEF] if key in (None, KEY) else []

    def process_definition_xml(self, *, key=None, id=None):
        return self.xml

    def history_incidents(self, **p):
        return self._page(self.rows["inc"], **p)

    def history_external_task_log(self, **p):
        return self._page(self.rows["log"], **p)

    def history_activity_instances(self, **p):
        return self._page(self.rows["act"], **p)

    def history_process_instances(self, **p):
        return self._page(self.rows["pi"], **p)
