"""The embedded local models (``local/qwen2.5-coder-1.5b``, ``local/smollm2`` ...) on the CPU.

Where the weights come from and how they are checked is ``das.llm.modelstore``.
llama-cpp-python runs them; it must be built without native CPU flags (see README) or decode
segfaults on some hosts. SmolLM2-135M only stays on track with constrained decoding, so it
gets llama.cpp's grammar sampler; the Qwen models follow a schema given in the prompt.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from das.errors import UpstreamError, UsageError
from das.llm import llamalog, modelstore
from das.llm.strict_schema import GRAMMAR_MAX_STRING as GRAMMAR_MAX_STRING
from das.llm.strict_schema import grammar_schema

_lock = threading.Lock()
_loaded: dict[str, Any] = {}
GRAMMAR_MODELS = {"smollm2"}  # a 135M model only stays on track under a grammar


def gguf_path(name: str) -> Path:
    """The model file, checked: part-wheel models by size and sha256 (``das.llm.modelstore``)."""
    try:
        return modelstore.verify(name)
    except UsageError as exc:
        raise UpstreamError(exc.message) from None


def uses_grammar(name: str) -> bool:
    """Whether JSON output is constrained by llama.cpp's grammar sampler.

    Over Qwen's 152k-token vocabulary the grammar costs ~20 ms per token on 2 cores (measured
    7.3 s vs 2.8 s for the same extraction), so those models get the schema in the prompt and
    the gateway parses, validates and repairs instead.
    """
    return name in GRAMMAR_MODELS


def _load(name: str) -> Any:
    if name not in _loaded:
        try:
            import llama_cpp
            from llama_cpp import Llama
        except ImportError as exc:
            raise UpstreamError(
                "local models need llama-cpp-python (see README: built with -DGGML_NATIVE=OFF)"
            ) from exc
        path = gguf_path(name)
        llamalog.route(llama_cpp)  # never let the library dup2 fds 1 and 2 away from the process
        _loaded[name] = Llama(
            model_path=str(path), n_ctx=modelstore.spec(name).n_ctx, n_threads=2, verbose=False, seed=0
        )
    return _loaded[name]


EXIT_WAIT_S = 120.0  # how long exit waits for a load or generation still running in another thread


@atexit.register
def _close() -> None:
    """Free models before interpreter teardown (llama-cpp's __del__ fails late in shutdown).

    A run that timed out while a model was still loading returns before the load ends; tearing
    the interpreter down under a thread that is inside llama.cpp kills the process (SIGSEGV)
    and loses its exit code, so exit waits for that thread first (bounded)."""
    acquired = _lock.acquire(timeout=EXIT_WAIT_S)
    try:
        for llm in _loaded.values():
            try:
                llm.close()
            except Exception:
                pass
        _loaded.clear()
    finally:
        if acquired:
            _lock.release()


REPEAT_PENALTY = 1.1  # llama.cpp default; 1.3 broke JSON structure (garbage names), measured


def generate(
    name: str,
    messages: list[dict[str, Any]],
    schema: dict[str, Any] | None,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run one chat completion; returns text and token counts. One call at a time per process."""
    with _lock:
        llm = _load(name)
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "repeat_penalty": REPEAT_PENALTY,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if schema is not None and uses_grammar(name):
            kwargs["response_format"] = {"type": "json_object", "schema": grammar_schema(schema)}
        clean = [
            {
                "role": m["role"] if m["role"] in ("system", "user", "assistant") else "user",
                "content": m.get("content") or "",
            }
            for m in messages
        ]
        out = llm.create_chat_completion(messages=clean, **kwargs)
    usage = out.get("usage") or {}
    return {
        "text": out["choices"][0]["message"].get("content") or "",
        "tool_calls": [],
        "input_tokens": int(usage.get("prompt_tokens", 0)),
        "output_tokens": int(usage.get("completion_tokens", 0)),
        "cost_usd": 0.0,
    }
