"""The same suite on two paths: the in-process provider (``local/smollm2``) and a real
OpenAI-compatible server (llama-cpp-python's, serving the same model) reached as
``openai/smollm2`` through ``OPENAI_API_BASE``, so the two paths cannot drift apart.

The server only takes ``response_format`` ``json_object`` (+ ``schema``) and answers text to
``tools`` unless one function is forced: DAS must learn that from its refusal, not be told.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from needs import NO_LLAMA_CPP, needs_module

from das.agents.tde_loop import run_tde
from das.agents.team import select_task
from das.authoring.drafter import draft_document
from das.contracts import Policy, TaskSpec
from das.llm import gateway

pytestmark = pytest.mark.local_model

REPO = Path(__file__).resolve().parents[2]
HELLO = TaskSpec.model_validate(json.loads((REPO / "examples" / "hello_spec.json").read_text()))


@pytest.fixture(params=["in-process", "server"])
def model(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "in-process":
        needs_module("llama_cpp", "DAS_REQUIRE_LOCAL_MODEL", NO_LLAMA_CPP)
        return "local/smollm2"
    server = request.getfixturevalue("model_server")
    monkeypatch.setenv("OPENAI_API_BASE", server.base)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return "openai/smollm2"


def test_a_tde_with_an_output_schema_succeeds_with_valid_outputs(model: str) -> None:
    result = run_tde(HELLO, model=model)
    assert result.status == "succeeded", result.message
    jsonschema.validate(result.outputs, HELLO.output_schema)
    assert result.model == model and result.usage.model_calls >= 1 and result.usage.output_tokens > 0


def test_a_draft_with_the_authoring_schema_compiles_validates_and_simulates(model: str) -> None:
    cand, attempts = draft_document(
        "Invoice approval: check the invoice, a manager approves it, then pay it",
        "invoice_approval",
        model,
        max_repairs=3,
    )
    assert cand.ok, [a.get("problems") for a in attempts]
    assert cand.validation.valid is True
    sim = cand.simulation
    assert sim is not None and sim.completed == sim.runs > 0 and not sim.stuck


def test_team_selection_returns_one_of_the_offered_candidates(model: str) -> None:
    candidates = [
        {"task_type": "send_invoice", "description": "send the invoice to the customer"},
        {"task_type": "archive_ticket", "description": "archive a closed support ticket"},
    ]
    decision = select_task(
        candidates, {"goal": "the customer must receive the invoice"}, models=[model], members=1
    )
    assert decision.stop_reason == "completed"
    assert decision.votes and decision.votes[0].model == model
    assert decision.chosen_index in (0, 1, None)
    if decision.chosen_index is not None:
        assert decision.chosen == candidates[decision.chosen_index]


def test_tools_go_native_or_as_json_actions_and_only_allowed_tools_run(model: str) -> None:
    spec = TaskSpec(
        task_type="lookup_total",
        prompt="Use json_query to read inputs.order.total, then finish with it as total.",
        inputs={"order": {"total": 42}},
        output_schema={"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]},
        policy={"allowed_tools": ["json_query", "finish"], "max_iterations": 3},
    )
    result = run_tde(spec, model=model)
    assert result.stop_reason in ("completed", "max_iterations"), result.message
    acted = [s.tool for s in result.trace if s.phase == "act" and s.tool]
    if result.status == "succeeded":  # finish is recorded as the evaluation, not as an act step
        acted.append("finish")
        jsonschema.validate(result.outputs, spec.output_schema)
    assert acted and set(acted) <= {"json_query", "finish"}  # the grammar-bound action schema held
    assert not [s for s in result.trace if s.error and "not allowed" in s.error]
    # this server ignores tools unless one function is forced, so DAS uses JSON actions on it
    assert gateway.capabilities(model).tools is False


def test_the_server_teaches_its_structured_mode_once_and_it_is_remembered(
    model_server, monkeypatch, das_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", model_server.base)
    assert gateway.capabilities("openai/smollm2").structured == "json_schema"  # nobody knows yet
    first = run_tde(HELLO, model="openai/smollm2")
    assert first.status == "succeeded", first.message
    caps = gateway.capabilities("openai/smollm2")
    assert (caps.structured, caps.source["structured"]) == ("json_object_schema", "learned")
    assert caps.local and caps.authoring_form == "compact"
    learned = json.loads((das_home / "models_learned.json").read_text())
    lesson = learned[f"openai/smollm2 @ {model_server.base}"]  # per model and server
    assert lesson["structured"] == "json_object_schema" and "response_format" in lesson["reasons"][0]
    gateway.LEARNED.reload()  # as a new process would: it reads the file, no second refusal
    assert gateway.capabilities("openai/smollm2").structured == "json_object_schema"


def _das(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "das", *args], capture_output=True, text=True, timeout=300)


def test_das_models_check_prints_the_detected_mode(model_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", model_server.base)
    out = _das("models", "check", "--model", "openai/smollm2", "--format", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["structured_before"], report["structured"]) == ("json_schema", "json_object_schema")
    assert report["structured_ok"] is True and report["tools"] is False and report["tools_checked"] is True
    assert (
        out.stderr.count("does not take structured output (response_format json_schema)") == 1
    )  # logged once
    again = _das("models", "check", "--model", "openai/smollm2", "--no-tools")
    assert again.returncode == 0 and "structured:  json_object_schema" in again.stdout
    assert "does not take" not in again.stderr  # remembered: the server is not asked twice


def test_a_refusal_without_a_weaker_mode_is_one_line_naming_model_server_and_capability(
    model_server, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", model_server.base)
    models_yaml = tmp_path / "models.yaml"
    models_yaml.write_text("openai/smollm2: {structured: json_schema}\n")
    monkeypatch.setenv("DAS_MODELS_FILE", str(models_yaml))
    with pytest.raises(gateway.UpstreamError) as err:  # tools the server refuses in this shape
        gateway.complete(
            "openai/smollm2",
            [{"role": "user", "content": "hi"}],
            policy=Policy(),
            max_tokens=5,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            tool_choice="bogus",
        )
    message = err.value.message
    assert "openai/smollm2" in message and model_server.base in message and "\n" not in message


def test_the_cli_runs_a_tde_and_files_a_draft_through_the_server(
    model_server, monkeypatch, das_home: Path
) -> None:
    """The issue's must-show, as a user types it: OPENAI_API_BASE + openai/<name>."""
    monkeypatch.setenv("OPENAI_API_BASE", model_server.base)
    run = _das(
        "tde",
        "run",
        "--spec",
        str(REPO / "examples" / "hello_spec.json"),
        "--model",
        "openai/smollm2",
        "--format",
        "json",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "succeeded" and result["model"] == "openai/smollm2"
    jsonschema.validate(result["outputs"], HELLO.output_schema)
    draft = _das(
        "draft",
        "Invoice approval: check the invoice, a manager approves it, then pay it",
        "--key",
        "invoice_approval",
        "--model",
        "openai/smollm2",
        "--format",
        "json",
    )
    assert draft.returncode == 0, draft.stderr
    filed = json.loads(draft.stdout)
    assert filed["valid"] is True and filed["status"] == "proposed"
    from das.authoring.queue import Queue

    proposal = Queue().get(filed["proposal_id"])
    assert proposal.validation.valid and proposal.simulation is not None and proposal.simulation.passed
