"""Which hosts an API key may be sent to: only the ones the operator bound it to.

A key variable is a secret in the operator's environment. Whoever can name a server for a
model (``api_base`` in models.yaml) could otherwise have any variable sent there as a bearer
token. So a key goes only to:

* the hosts ``models.yaml`` binds it to, in its ``keys:`` section
  (``MY_LLM_KEY: [llm.internal.example]``);
* for a provider's standard variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, …) also the
  provider's own hosted API and the host of the operator's base-URL variable for it
  (``OPENAI_API_BASE`` / ``OPENAI_BASE_URL``, ``ANTHROPIC_API_BASE``, ``OLLAMA_API_BASE``, …).

``check`` runs where the capability record is built, so the gateway's first step (the
data-class check) refuses an unbound key before any byte of the request is sent.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from das.errors import InvalidInput, PolicyDenied

# the variable litellm reads for a provider when DAS passes no key
PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "hosted_vllm": "HOSTED_VLLM_API_KEY",
    "ollama": "OLLAMA_API_KEY",
    "ollama_chat": "OLLAMA_API_KEY",
}
# where a standard variable goes without any base URL: the provider's hosted API
DEFAULT_HOSTS = {
    "OPENAI_API_KEY": ("api.openai.com",),
    "ANTHROPIC_API_KEY": ("api.anthropic.com",),
    "OLLAMA_API_KEY": ("localhost",),
}  # ollama's default server is this host's
# the operator's environment naming a server for a standard variable's provider
ENV_BASES = {
    "OPENAI_API_KEY": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "ANTHROPIC_API_KEY": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "HOSTED_VLLM_API_KEY": ("HOSTED_VLLM_API_BASE",),
    "OLLAMA_API_KEY": ("OLLAMA_API_BASE",),
}
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HOST = re.compile(r"^[a-z0-9._:\[\]-]{1,253}$")

Bindings = dict[str, list[str]]


def host_of(url: str | None) -> str:
    """The lower-case host name of a base URL ('' for none or a unix socket)."""
    try:
        return (urlsplit(url or "").hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def parse(raw: object, source: str) -> Bindings:
    """The ``keys:`` section: variable -> list of host names; anything else is an error."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(
            f"{source}: keys must map an environment variable to a list of hosts "
            "(e.g. keys: {MY_LLM_KEY: [llm.internal.example]})"
        )
    out: Bindings = {}
    for var, hosts in raw.items():
        if not isinstance(var, str) or not _VARIABLE.match(var):
            raise InvalidInput(f"{source}: keys: {var!r} is not an environment variable name")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise InvalidInput(f"{source}: keys: {var} must be a list of host names")
        cleaned = [h.strip().lower().rstrip(".") for h in hosts]
        bad = [h for h in cleaned if not _HOST.match(h) or "/" in h]
        if bad:
            raise InvalidInput(
                f"{source}: keys: {var}: {bad[0]!r} is not a host name (no scheme, port or path)"
            )
        out[var] = cleaned
    return out


def bound_hosts(variable: str, bindings: Bindings) -> list[str]:
    """Every host ``variable`` may be sent to."""
    hosts = [*bindings.get(variable, []), *DEFAULT_HOSTS.get(variable, ())]
    hosts += [host_of(os.environ[name]) for name in ENV_BASES.get(variable, ()) if os.environ.get(name)]
    return sorted({h for h in hosts if h})


def check(
    model: str, provider: str, api_key_env: str | None, api_base: str | None, bindings: Bindings, where: str
) -> None:
    """Refuse (``PolicyDenied`` naming variable and host) a call that would send a key to a
    host it is not bound to. ``api_base`` None means litellm's own default for the provider,
    where only that provider's own key goes."""
    if api_base is None:
        return
    host = host_of(api_base)
    variable = api_key_env or PROVIDER_KEYS.get(provider)
    if variable is None:
        raise PolicyDenied(
            f"model {model}: {where} gives it the server {host or api_base!r}, but which key "
            f"litellm would send for provider {provider!r} is unknown; name it with api_key_env "
            "and bind it to that host under keys:",
            rule="key_binding",
        )
    if not os.environ.get(variable):
        return  # nothing to send (the gateway reports a missing api_key_env itself)
    allowed = bound_hosts(variable, bindings)
    if host not in allowed:
        raise PolicyDenied(
            f"model {model}: the key in {variable} may go only to "
            f"{', '.join(allowed) or 'no host'}, not to {host or api_base!r} (from {where}); "
            f"bind it in models.yaml (keys: {{{variable}: [{host or 'HOST'}]}}) if that server "
            "should have it",
            rule="key_binding",
        )


__all__ = ["Bindings", "bound_hosts", "check", "host_of", "parse"]
