import pytest

from das.contracts import Policy, TaskSpec, Usage
from das.errors import GuardrailStop, InvalidInput, PolicyDenied
from das.guardrails import Limits, check_model_allowed, resolve_policy
from das.llm.redaction import redaction_for


def spec(**kw):
    return TaskSpec(task_type=kw.pop("task_type", "anything"), prompt="p", **kw)


def test_merge_order_default_then_file_then_task_type_then_spec(tmp_path):
    base = resolve_policy(spec())
    assert base.max_iterations == 8  # guardrails/default.yaml
    per_type = resolve_policy(spec(task_type="classify"))
    assert per_type.max_iterations == 3  # guardrails/task_types.yaml
    f = tmp_path / "ops.yaml"
    f.write_text("max_iterations: 5\nmax_cost_usd: 0.1\n")
    assert resolve_policy(spec(), policy_file=f).max_iterations == 5
    tightened = resolve_policy(spec(policy={"max_iterations": 2}), policy_file=f)
    assert (tightened.max_iterations, tightened.max_cost_usd) == (2, 0.1)


def test_spec_may_only_tighten():
    with pytest.raises(PolicyDenied, match="may only tighten max_iterations"):
        resolve_policy(spec(policy={"max_iterations": 99}))
    with pytest.raises(PolicyDenied, match="adds \\['write_file'\\]"):
        resolve_policy(spec(task_type="classify", policy={"allowed_tools": ["finish", "write_file"]}))
    with pytest.raises(PolicyDenied, match="data_class"):
        resolve_policy(spec(policy={"data_class": "public"}))
    assert resolve_policy(spec(policy={"data_class": "pii"})).data_class == "pii"


def test_unknown_policy_key_in_a_file_is_an_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("max_iterationz: 3\n")
    with pytest.raises(InvalidInput, match="unknown policy key.*max_iterationz"):
        resolve_policy(spec(), policy_file=f)


@pytest.mark.parametrize(
    ("check", "usage", "limit"),
    [
        ("check_before_iteration", Usage(iterations=3), "max_iterations"),
        ("check_tokens", Usage(input_tokens=90, output_tokens=20), "max_tokens"),
        ("check_cost", Usage(cost_usd=0.02), "max_cost_usd"),
        ("check_tool_call", Usage(tool_calls=2), "max_tool_calls"),
    ],
)
def test_each_check_raises_one_typed_error_naming_limit_and_value(check, usage, limit):
    policy = Policy(max_iterations=3, max_tokens=100, max_cost_usd=0.01, max_tool_calls=2)
    with pytest.raises(GuardrailStop) as info:
        getattr(Limits(policy, usage), check)()
    assert info.value.limit == limit
    assert info.value.stop_reason == limit
    assert limit in info.value.message


def test_checks_pass_below_the_limits():
    limits = Limits(Policy(max_iterations=3), Usage(iterations=2))
    limits.check_before_iteration()
    limits.check_tokens()
    limits.check_cost()
    limits.check_tool_call()


def test_pii_refuses_external_models_but_allows_local():
    pii = Policy(data_class="pii")
    with pytest.raises(PolicyDenied, match="only local models"):
        check_model_allowed(pii, "openai/gpt-4o-mini", is_local=False)
    check_model_allowed(pii, "local/smollm2", is_local=True)


def test_redaction_applies_only_to_external_providers_of_sensitive_classes():
    confidential = Policy(data_class="confidential")
    redaction = redaction_for(confidential, is_local=False)
    assert redaction is not None
    masked = redaction.text("mail jane.doe@example.com now")
    assert masked == f"mail [REDACTED:email:1:{redaction.nonce}] now"
    assert redaction.restore_text(masked) == "mail jane.doe@example.com now"
    assert redaction_for(confidential, is_local=True) is None
    assert redaction_for(Policy(data_class="public"), is_local=False) is None


def test_task_type_and_registry_cannot_lift_the_operator_ceiling(tmp_path):
    f = tmp_path / "ops.yaml"
    f.write_text("max_iterations: 2\nallowed_tools: [finish]\n")
    merged = resolve_policy(
        spec(task_type="summarize"),
        policy_file=f,
        registry_policy={"max_iterations": 50, "allowed_tools": ["finish", "write_file"]},
    )
    assert merged.max_iterations == 2 and merged.allowed_tools == ["finish"]


def test_only_the_operator_declares_model_prices(tmp_path):
    price = {"openai/x": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}}
    with pytest.raises(PolicyDenied, match="only the operator"):
        resolve_policy(spec(policy={"model_prices": price}))
    with pytest.raises(PolicyDenied, match="only the operator"):
        resolve_policy(spec(), registry_policy={"model_prices": price})
    f = tmp_path / "ops.yaml"
    f.write_text("model_prices: {openai/x: {input_per_mtok: 1.5, output_per_mtok: 2}}\n")
    assert resolve_policy(spec(), policy_file=f).model_prices["openai/x"].input_per_mtok == 1.5


def test_sources_name_the_layer_that_set_each_value(tmp_path):
    f = tmp_path / "ops.yaml"
    f.write_text("max_cost_usd: 0.1\n")
    sources: dict[str, str] = {}
    resolve_policy(spec(task_type="classify", policy={"max_tokens": 100}), policy_file=f, sources=sources)
    assert sources["max_cost_usd"] == f"operator file {f}"
    assert sources["max_iterations"] == "guardrails/task_types.yaml (classify)"
    assert sources["max_tokens"] == "the task spec's policy"
    assert sources["retries"] == "guardrails/default.yaml"
