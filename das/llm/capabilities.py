"""What each model string can do: structured output mode, native tool calling, where it runs.

Servers differ: OpenAI takes ``json_schema`` (strict), llama.cpp's server only ``json_object``
with a ``schema``, some servers take bare ``json_object``, some nothing; some do native tool
calls, some ignore them. One small record per model says which, and the gateway uses the
strongest mode the record names, falling back cleanly to schema-in-prompt + parse + validate.

Where a record comes from:

1. the in-process providers (``test/`` scripts, ``local/`` embedded models) - ``builtin``;
2. the operator's ``models.yaml`` (``$DAS_MODELS_FILE`` or ``$DAS_HOME/models.yaml``) -
   ``declared``;
3. what a server proved: a request refused (a 400/422, or llama.cpp's 500 validation error,
   naming ``response_format``) and then answered one mode down is a lesson, per model *and*
   server, logged once and remembered in ``$DAS_HOME/models_learned.json`` - ``learned``; a
   lesson only ever moves a model down, and it wins over 1 and 2 because the server proved them
   wrong; a refusal of ``tools`` teaches "no native tools" unless the operator declared them;
4. litellm's model map (``supports_response_schema``, ``supports_function_calling``) -
   ``litellm``, for what 1-3 left open;
5. otherwise: try ``json_schema`` and learn from the answer, no native tools - ``default``.

Local (no data leaves the host, so ``pii`` may go there and no price is needed) is derived
from the server litellm will be given, never declared: ``test/``, ``local/``, or an explicit
``openai/``, ``hosted_vllm/`` or ``ollama/`` prefix whose base URL is a loopback address or a
unix socket. models.yaml may only say ``local: false``; ``local: true`` is an error. The gateway
passes that very base URL to litellm, so the address checked is the address used. A key
variable goes only to the hosts it is bound to (``das.llm.keybinding``): building the record of
a model whose server is not bound to the key that would be sent raises ``PolicyDenied``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from das.config import das_home
from das.contracts import describe_validation_error
from das.errors import InvalidInput
from das.llm import keybinding
from das.llm.providers import ensure_registered

log = logging.getLogger("das.llm")

StructuredMode = Literal["json_schema_strict", "json_schema", "json_object_schema", "json_object", "none"]
# strongest first; a refusal moves one step right
MODES: tuple[StructuredMode, ...] = (
    "json_schema_strict",
    "json_schema",
    "json_object_schema",
    "json_object",
    "none",
)
AuthoringForm = Literal["full", "compact", "outline"]
Source = Literal["builtin", "declared", "learned", "litellm", "default"]


class DeclaredModel(BaseModel):
    """One entry of ``models.yaml``: what the operator knows about a model string."""

    model_config = ConfigDict(extra="forbid")

    structured: StructuredMode | None = Field(
        None, description="the strongest structured-output mode it takes"
    )
    tools: bool | None = Field(None, description="native tool calling")
    api_base: str | None = Field(None, description="the server's OpenAI-compatible base URL (…/v1)")
    api_key_env: str | None = Field(None, description="environment variable holding its API key")
    local: Literal[False] | None = Field(
        None,
        description="only false: local is derived from the server's "
        "address (loopback or unix socket), never declared",
    )
    authoring_form: AuthoringForm | None = Field(None, description="what drafting asks it to write")
    input_per_mtok: float | None = Field(None, ge=0, description="USD per million input tokens")
    output_per_mtok: float | None = Field(None, ge=0, description="USD per million output tokens")


class ModelCapabilities(BaseModel):
    """The record the gateway acts on (``das models check`` prints it)."""

    model: str
    structured: StructuredMode
    tools: bool
    source: dict[str, Source] = Field(
        default_factory=dict, description="which source set structured and tools"
    )
    api_base: str | None = None
    local: bool = False
    authoring_form: AuthoringForm = "full"
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    learned: list[str] = Field(default_factory=list, description="what servers refused, in order")


def models_file() -> Path:
    return (
        Path(os.environ["DAS_MODELS_FILE"])
        if os.environ.get("DAS_MODELS_FILE")
        else das_home() / "models.yaml"
    )


KEYS_SECTION = "keys"  # models.yaml's key bindings, not a model string


def _models_data(path: Path) -> dict[Any, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of model strings to settings")
    return data


def load_key_bindings(path: Path | None = None) -> keybinding.Bindings:
    """models.yaml's ``keys:`` section: which hosts each key variable may be sent to."""
    path = path or models_file()
    return keybinding.parse(_models_data(path).get(KEYS_SECTION), f"{path}")


def load_declared(path: Path | None = None) -> dict[str, DeclaredModel]:
    """``models.yaml``: model string -> declaration; a bad file is an error naming the key."""
    path = path or models_file()
    data = _models_data(path)
    out: dict[str, DeclaredModel] = {}
    for name, entry in data.items():
        if name == KEYS_SECTION:
            continue
        if isinstance(entry, dict) and entry.get("local") is True:
            raise InvalidInput(
                f"{path} entry {name!r}: local: true is refused: whether a model is local is derived "
                "from its server's address (a loopback or unix-socket api_base), never declared; "
                "only local: false may be written"
            )
        try:
            out[str(name)] = DeclaredModel.model_validate(entry or {})
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc, f"{path} entry {name!r}")) from exc
    return out


class LearnedCapabilities:
    """What servers refused, per model: in memory, and in ``$DAS_HOME/models_learned.json`` so
    the next process does not ask again. Thread-safe; each lesson is logged once."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._loaded: tuple[Path, dict[str, dict[str, Any]]] | None = None

    def path(self) -> Path:
        return self._path or das_home() / "models_learned.json"

    def _load(self) -> dict[str, dict[str, Any]]:
        path = self.path()
        if self._loaded is None or self._loaded[0] != path:  # DAS_HOME moved: another store
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                data = raw if isinstance(raw, dict) else {}
            except (OSError, ValueError):
                data = {}
            self._loaded = (path, data)
        return self._loaded[1]

    def get(self, model: str) -> dict[str, Any]:
        with self._lock:
            entry = self._load().get(model)
        if not isinstance(entry, dict):
            return {}
        out: dict[str, Any] = {}
        if entry.get("structured") in MODES:
            out["structured"] = entry["structured"]
        if isinstance(entry.get("tools"), bool):
            out["tools"] = entry["tools"]
        reasons = entry.get("reasons")
        out["reasons"] = [str(r) for r in reasons] if isinstance(reasons, list) else []
        return out

    def learn(
        self,
        model: str,
        *,
        structured: StructuredMode | None = None,
        tools: bool | None = None,
        reason: str = "",
        quiet: bool = False,
    ) -> None:
        with self._lock:
            self._loaded = None  # merge with what other processes wrote since
            data = self._load()
            raw = data.get(model)
            entry = dict(raw) if isinstance(raw, dict) else {}
            if (
                structured is not None
                and entry.get("structured") in MODES
                and MODES.index(structured) < MODES.index(entry["structured"])
            ):
                structured = None  # a lesson only moves a model down
            changes = {k: v for k, v in (("structured", structured), ("tools", tools)) if v is not None}
            if all(entry.get(k) == v for k, v in changes.items()):
                return
            entry.update(changes)
            old = entry.get("reasons")
            reasons: list[Any] = old if isinstance(old, list) else []
            entry["reasons"] = [*reasons, reason[:300]][-10:]
            data[model] = entry
            (log.info if quiet else log.warning)(
                "model %s: %s; from now on %s",
                model,
                reason[:300],
                ", ".join(f"{k}={v}" for k, v in changes.items()),
            )
            try:
                path = self.path()
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".models_learned.", suffix=".tmp")
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(data, indent=2, sort_keys=True))
                os.replace(tmp, path)
            except OSError as exc:  # a read-only home only costs a re-learn next time
                log.warning("could not remember model capabilities in %s: %s", self.path(), exc)

    def reload(self) -> None:
        """Drop what is held in memory; the next lookup reads the file (as a new process would)."""
        with self._lock:
            self._loaded = None

    def forget(self, model: str | None = None) -> None:
        """Forget lessons (one model's, or all) in memory and in the file."""
        with self._lock:
            data = self._load()
            if model is None:
                data.clear()
            else:
                data.pop(model, None)
            try:
                self.path().unlink(missing_ok=True) if not data else self.path().write_text(
                    json.dumps(data, indent=2, sort_keys=True), encoding="utf-8"
                )
            except OSError:
                pass


def is_loopback_url(url: str | None) -> bool:
    """True for http(s)://localhost / 127.x / ::1 and a unix socket (the operator's own host);
    a host name is never resolved, so DNS cannot make a server local."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme.lower() in ("unix", "http+unix", "https+unix"):
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


SERVER_PROVIDERS = ("openai", "hosted_vllm", "ollama", "ollama_chat")  # where DAS names the server itself


def server_of(model: str, decl: DeclaredModel | None = None) -> str | None:
    """The base URL the gateway gives litellm for ``model`` (None: litellm's own default). Only
    an explicit ``provider/`` prefix gets one: ``claude-...`` without a prefix is routed by litellm."""
    if "/" not in model or provider_of(model) not in SERVER_PROVIDERS:
        return decl.api_base if decl is not None and "/" in model else None
    return (decl.api_base if decl is not None and decl.api_base else None) or env_api_base(provider_of(model))


def env_api_base(provider: str) -> str | None:
    """The base URL litellm will use for ``provider`` from the environment (None: hosted default)."""
    names = {
        "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),  # litellm's own order
        "ollama": ("OLLAMA_API_BASE",),
        "ollama_chat": ("OLLAMA_API_BASE",),
        "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
        "hosted_vllm": ("HOSTED_VLLM_API_BASE",),
    }.get(provider, ())
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if provider in ("ollama", "ollama_chat"):
        return "http://localhost:11434"
    return None


def form_for(mode: StructuredMode) -> AuthoringForm:
    """What drafting asks for: a grammar-only server (llama.cpp) gets the compact form, a model
    without schema support writes the outline, a model with ``json_schema`` the full form."""
    if mode in ("json_schema_strict", "json_schema"):
        return "full"
    return "compact" if mode == "json_object_schema" else "outline"


def weaker(mode: StructuredMode) -> StructuredMode:
    return MODES[min(MODES.index(mode) + 1, len(MODES) - 1)]


def _litellm_view(model: str) -> tuple[StructuredMode | None, bool | None]:
    try:
        litellm = ensure_registered()
        schema = bool(litellm.supports_response_schema(model=model))
        tools = bool(litellm.supports_function_calling(model=model))
    except Exception:  # noqa: BLE001 - unknown to litellm: other sources decide
        return None, None
    structured: StructuredMode | None = None
    if schema:
        structured = "json_schema_strict" if provider_of(model) in ("openai", "azure") else "json_schema"
    return structured, (True if tools else None)


def _builtin(model: str) -> tuple[StructuredMode, bool] | None:
    provider, name = provider_of(model), model.split("/", 1)[-1]
    if provider == "test":
        from das.llm.testmodel import load_script  # only for its provider (llama.cpp loads here)

        script = load_script(name)
        played = {"grammar": "json_object_schema", "prompt": "none"}.get(
            script.get("structured", "grammar"), script.get("structured")
        )
        mode: StructuredMode = played if played in MODES else "json_object_schema"
        return mode, bool(script.get("native_tools", True))
    if provider == "local":
        from das.llm.localmodel import uses_grammar  # only for its provider (llama.cpp loads here)

        return ("json_object_schema" if uses_grammar(name) else "none"), False
    return None


def resolve(
    model: str,
    learned: LearnedCapabilities,
    declared: dict[str, DeclaredModel] | None = None,
    ask_litellm: bool = True,
    keys: keybinding.Bindings | None = None,
) -> ModelCapabilities:
    """The capability record of ``model`` from every source (see the module docstring).
    ``PolicyDenied`` when the key its call would carry is not bound to its server."""
    decl = (load_declared() if declared is None else declared).get(model, DeclaredModel())
    bindings = (load_key_bindings() if declared is None else {}) if keys is None else keys
    source: dict[str, Source] = {}
    builtin = _builtin(model)
    structured: StructuredMode | None = decl.structured
    tools: bool | None = decl.tools
    if builtin is not None:
        structured, tools = builtin
        source = {"structured": "builtin", "tools": "builtin"}
    else:
        if structured is not None:
            source["structured"] = "declared"
        if tools is not None:
            source["tools"] = "declared"
    api_base = server_of(model, decl)
    if provider_of(model) not in ("test", "local"):
        keybinding.check(
            model,
            provider_of(model),
            decl.api_key_env,
            api_base,
            bindings,
            "models.yaml" if decl.api_base else "the environment",
        )
    lesson = learned.get(lesson_key(model, api_base))
    if lesson.get("structured") in MODES:
        taught: StructuredMode = lesson["structured"]
        if structured is None or MODES.index(taught) > MODES.index(structured):
            structured, source["structured"] = taught, "learned"
    if lesson.get("tools") is False and tools is not False and source.get("tools") != "declared":
        tools, source["tools"] = False, "learned"
    elif lesson.get("tools") is True and tools is None:  # `das models check` saw a tool call come back
        tools, source["tools"] = True, "learned"
    if (structured is None or tools is None) and ask_litellm and builtin is None:
        lit_structured, lit_tools = _litellm_view(model)
        if structured is None and lit_structured is not None:
            structured, source["structured"] = lit_structured, "litellm"
        if tools is None and lit_tools is not None:
            tools, source["tools"] = lit_tools, "litellm"
    if structured is None:
        structured, source["structured"] = "json_schema", "default"
    if tools is None:
        tools, source["tools"] = False, "default"
    provider = provider_of(model)
    if provider in ("test", "local"):
        local = True
    else:  # the operator's own host: nothing leaves it (only where DAS names the server)
        local = "/" in model and provider in SERVER_PROVIDERS and is_loopback_url(api_base)
    if decl.local is False:
        local = False
    return ModelCapabilities(
        model=model,
        structured=structured,
        tools=tools,
        source=source,
        api_base=api_base,
        local=local,
        authoring_form=decl.authoring_form or form_for(structured),
        input_per_mtok=decl.input_per_mtok,
        output_per_mtok=decl.output_per_mtok,
        learned=list(lesson.get("reasons", [])),
    )


def lesson_key(model: str, api_base: str | None) -> str:
    """Lessons are per model *and* server: one server's refusal says nothing about another's."""
    return f"{model} @ {api_base}" if api_base else model


__all__ = [
    "DeclaredModel",
    "LearnedCapabilities",
    "MODES",
    "ModelCapabilities",
    "StructuredMode",
    "env_api_base",
    "form_for",
    "is_loopback_url",
    "lesson_key",
    "load_declared",
    "load_key_bindings",
    "models_file",
    "resolve",
    "server_of",
    "weaker",
]
