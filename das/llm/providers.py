"""Registers DAS's two offline models as litellm custom providers (``test/``, ``local/``).

Both go through ``litellm.completion`` exactly like ``openai/...`` does, so retries, usage
accounting and response parsing are the same code path in tests and production.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from das.llm import localmodel, testmodel

OFFLINE_PROVIDERS = ("test", "local")


def _build_handler():  # imported lazily: litellm is slow to import
    import litellm
    from litellm import CustomLLM
    from litellm.types.utils import ChatCompletionMessageToolCall, Function

    def fill(model_response: Any, reply: dict[str, Any], model: str) -> Any:
        message = model_response.choices[0].message
        message.content = reply["text"]
        if reply["tool_calls"]:
            message.tool_calls = [
                ChatCompletionMessageToolCall(
                    id=f"call_{uuid.uuid4().hex[:12]}",
                    type="function",
                    function=Function(name=c["name"], arguments=json.dumps(c.get("arguments", {}))),
                )
                for c in reply["tool_calls"]
            ]
            model_response.choices[0].finish_reason = "tool_calls"
        model_response.model = model
        model_response.usage = litellm.Usage(
            prompt_tokens=reply["input_tokens"],
            completion_tokens=reply["output_tokens"],
            total_tokens=reply["input_tokens"] + reply["output_tokens"],
        )
        model_response._hidden_params["das_cost_usd"] = reply["cost_usd"]
        return model_response

    def scripted_error(kind: str, model: str, message: str) -> Exception:
        e = litellm.exceptions
        args: dict[str, Any] = {"message": message, "llm_provider": "test", "model": model}
        return {
            "timeout": lambda: e.Timeout(**args),
            "rate_limit": lambda: e.RateLimitError(**args),
            "server_error": lambda: e.InternalServerError(**args),
            "auth": lambda: e.AuthenticationError(**args),
            "bad_request": lambda: e.BadRequestError(**args),
        }.get(kind, lambda: e.InternalServerError(**args))()

    class TestProvider(CustomLLM):
        def completion(
            self,
            model: str,
            messages: list,
            api_base: str,
            custom_prompt_dict: dict,
            model_response: Any,
            print_verbose: Any,
            encoding: Any,
            api_key: Any,
            logging_obj: Any,
            optional_params: dict,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            name = model.split("/", 1)[-1]
            script = testmodel.load_script(name)
            step = testmodel.pick_step(script, messages)
            fmt = optional_params.get("response_format") or {}
            fmt = fmt if isinstance(fmt, dict) else {}
            sent = testmodel.sent_mode(fmt)
            if sent in script.get("refuses", []):  # plays a server without this structured-output mode
                raise litellm.exceptions.BadRequestError(
                    message=f"scripted: response_format.type {fmt.get('type')!r} is not supported "
                    "(Input should be 'text' or 'json_object')",
                    llm_provider="test",
                    model=model,
                )
            if optional_params.get("tools") and script.get("refuses_tools"):
                raise litellm.exceptions.BadRequestError(
                    message="scripted: this server does not support tools / tool_choice",
                    llm_provider="test",
                    model=model,
                )
            try:
                timeout = kwargs.get("timeout")
                reply = testmodel.play(
                    step,
                    optional_params.get("tools"),
                    testmodel.sent_schema(fmt),
                    float(timeout) if isinstance(timeout, int | float) else None,
                )
            except testmodel.ScriptedError as exc:
                raise scripted_error(exc.kind, model, exc.message) from None
            return fill(model_response, reply, f"test/{name}")

    class LocalProvider(CustomLLM):
        def completion(
            self,
            model: str,
            messages: list,
            api_base: str,
            custom_prompt_dict: dict,
            model_response: Any,
            print_verbose: Any,
            encoding: Any,
            api_key: Any,
            logging_obj: Any,
            optional_params: dict,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            name = model.split("/", 1)[-1]
            fmt = optional_params.get("response_format") or {}
            schema = fmt.get("schema") if isinstance(fmt, dict) else None
            try:
                temperature = optional_params.get("temperature")
                seed = optional_params.get("seed")
                reply = localmodel.generate(
                    name,
                    messages,
                    schema,
                    int(optional_params.get("max_tokens") or 256),
                    temperature=float(temperature) if temperature is not None else 0.0,
                    seed=int(seed) if seed is not None else None,
                )
            except (ValueError, RuntimeError) as exc:  # bad grammar or context overflow: not transient
                raise litellm.exceptions.BadRequestError(
                    message=f"local model {name}: {str(exc).splitlines()[0][:300]}",
                    llm_provider="local",
                    model=model,
                ) from None
            return fill(model_response, reply, f"local/{name}")

    return litellm, TestProvider(), LocalProvider()


@functools.cache
def ensure_registered() -> Any:
    """Import litellm (offline cost map) and register the offline providers, once per process."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    litellm, test_handler, local_handler = _build_handler()
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    providers = [p for p in litellm.custom_provider_map if p["provider"] not in OFFLINE_PROVIDERS]
    litellm.custom_provider_map = providers + [
        {"provider": "test", "custom_handler": test_handler},
        {"provider": "local", "custom_handler": local_handler},
    ]
    return litellm
