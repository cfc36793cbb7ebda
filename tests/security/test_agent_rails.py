"""Red team: reach a model around the gateway's rails, or leak a secret through the trace."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from agent_helpers import spec

from das.agents.tde_loop import run_tde
from das.llm.testmodel import register_script

PACKAGE = Path(__file__).resolve().parents[2] / "das"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", None) if isinstance(f, ast.Attribute) else None
            yield node, name, owner


def test_every_model_call_goes_through_the_gateway_with_a_policy():
    """Tried: find any module that calls litellm itself, or calls the gateway without a policy."""
    direct, unguarded, callers = [], [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node, name, owner in _calls(ast.parse(path.read_text())):
            if (
                name in ("completion", "acompletion", "text_completion", "responses")
                and owner == "litellm"
                and rel != "das/llm/gateway.py"
            ):
                direct.append(f"{rel}:{node.lineno}")
            if name == "complete" and owner == "gateway":
                callers.add(rel)
                if not any(k.arg == "policy" for k in node.keywords):
                    unguarded.append(f"{rel}:{node.lineno}")
    assert direct == [] and unguarded == []
    # the callers we know; a new one must be looked at (and added here) on purpose
    assert callers == {
        "das/agents/tde_loop.py",
        "das/agents/team.py",
        "das/authoring/drafter.py",
        "das/llm/check.py",  # das models check: a probe under the das_models_check policy
        "das/agents/curator.py",
    }, callers


def test_curator_sends_engine_history_redacted_to_an_external_model(monkeypatch):
    """Tried: the nightly curator with an external model and an incident message that carries
    a customer's e-mail address and card number."""
    from das.agents import curator
    from das.llm import gateway
    from das.llm.providers import ensure_registered

    seen: list[str] = []
    litellm = ensure_registered()

    class Stop(Exception):
        pass

    def capture(**kwargs):
        seen.extend(m["content"] for m in kwargs["messages"] if isinstance(m.get("content"), str))
        raise Stop()

    monkeypatch.setattr(litellm, "completion", capture)
    gateway.set_model_requests_allowed(True)
    try:
        with pytest.raises(Stop):
            curator.explain(
                "openai/gpt-4o-mini",
                key="k",
                version="1.0.0",
                finding={
                    "activity_id": "charge",
                    "kind": "incidents",
                    "refactor": "add_retry",
                    "evidence": {"message": "card 4111 1111 1111 1111 of jane.doe@example.com"},
                },
                ops=[],
                value={},
                summary="s",
            )
    finally:
        gateway.set_model_requests_allowed(None)
    text = "\n".join(seen)
    assert "jane.doe@example.com" not in text and "4111 1111" not in text and "[REDACTED:email:" in text


def test_curator_pii_class_refuses_external_models(tmp_path, monkeypatch):
    """Tried: the operator marks the curator's data pii; the curator with an external model
    must not call it at all."""
    from das.agents import curator
    from das.guardrails import _defaults

    project = Path(__file__).resolve().parents[2]
    root = tmp_path / "guardrails"
    root.mkdir()
    for f in (project / "guardrails").glob("*.yaml"):
        (root / f.name).write_text(f.read_text())
    types = root / "task_types.yaml"
    assert "  data_class: confidential\n" in types.read_text()
    types.write_text(types.read_text().replace("  data_class: confidential\n", "  data_class: pii\n"))
    for folder in ("prompts", "processes"):
        (tmp_path / folder).symlink_to(project / folder)
    monkeypatch.setenv("DAS_RESOURCES", str(tmp_path))
    _defaults.cache_clear()
    try:
        res = curator.explain(
            "openai/gpt-4o-mini",
            key="k",
            version="1.0.0",
            finding={"activity_id": "a", "kind": "incidents", "refactor": "add_retry"},
            ops=[],
            value={},
            summary="s",
        )
    finally:
        _defaults.cache_clear()
    assert res.note is None and "only local models" in res.trace[0]["error"]


@pytest.mark.parametrize("form", ["raw", "json", "url", "url_plus", "base64"])
def test_agent_leaks_a_secret_into_its_outputs_in_an_encoded_form(monkeypatch, form):
    """Tried: the model writes an API key from the environment into its outputs raw,
    JSON-escaped, URL-encoded or base64, hoping one spelling escapes the mask."""
    secret = 'sk-live-"quoted"/value+and=more'
    monkeypatch.setenv("PAYMENT_API_KEY", secret)
    spelled = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "url": quote(secret, safe=""),
        "url_plus": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
    }[form]
    value = secret if form in ("raw", "json") else spelled
    model = register_script(
        f"leak-{form}",
        [{"tool_calls": [{"name": "finish", "arguments": {"outputs": {"note": f"token={value}"}}}]}],
    )
    result = run_tde(spec("never_declared_anywhere", key=f"leak-{form}"), model=model)
    stored = json.dumps(result.model_dump(mode="json"))
    assert spelled not in stored and secret not in stored and "[SECRET]" in stored
