"""Where ``http_request`` may go: checked on the resolved address, and connected to that address.

A host name is only a name: ``localhost``, ``127.1``, ``0x7f000001`` and a DNS name that
resolves to 10.0.0.5 all reach the machine's private side. So the host is resolved once,
every address it resolves to is checked, and the request connects to the checked address
(the name goes only into ``Host`` and TLS SNI), so a second, different DNS answer
(rebinding) is never used. Loopback, private, link-local (169.254.169.254: cloud metadata),
multicast, unspecified and reserved addresses are refused unless the operator's policy names
that exact endpoint in ``allowed_endpoints`` (scheme, host, port and path prefix).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from das.contracts import Policy
from das.errors import ModelRetry, PolicyDenied

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A request the policy allows: connect to ``address``, send ``host`` as Host/SNI."""

    url: str  # the URL as the model wrote it
    connect_url: str  # the same URL with the checked address in place of the host name
    host: str
    address: str
    port: int
    scheme: str


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why an address is not a public one, or None for a public address. IPv6 forms that
    carry an IPv4 address (mapped, 6to4, Teredo) are judged by that address too."""
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None:
                reason = forbidden_reason(embedded)
                if reason:
                    return f"{reason} (embedded {embedded})"
        if ip.is_site_local:
            return "site-local"
    for name in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "not-global"
    return None


_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c)", re.I)


def normalise_path(path: str) -> str:
    """The path the server will see: dot segments removed (RFC 3986 5.2.4); percent-encoded
    dots and slashes, backslashes and empty input are refused, so no prefix check can be
    passed by a path that means something else after decoding."""
    if _ENCODED_SEPARATOR.search(path) or "\\" in path:
        raise PolicyDenied(
            f"http_request path {path[:200]!r} has encoded dots or slashes; write the plain path",
            rule="egress_path",
        )
    out: list[str] = []
    for segment in (path or "/").split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    normal = "/" + "/".join(out)
    if (path.endswith("/.") or path.endswith("/..")) and not normal.endswith("/"):
        normal += "/"
    return normal


def _endpoint_matches(endpoint: str, scheme: str, host: str, port: int, path: str) -> bool:
    e = urlsplit(endpoint)
    if e.scheme.lower() != scheme or (e.hostname or "").lower() != host:
        return False
    if (e.port or DEFAULT_PORTS.get(e.scheme.lower())) != port:
        return False
    prefix = e.path or "/"
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ModelRetry(f"cannot resolve host {host!r}: {exc}") from exc
    out: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


def check(policy: Policy, url: str, method: str) -> Target:
    """The target for ``url`` if the policy allows it; ``PolicyDenied`` naming the rule otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ModelRetry(f"url {url!r} must be http(s) with a host")
    if parts.username or parts.password:
        raise PolicyDenied("http_request URLs may not carry credentials (user:password@)", rule="egress")
    host = parts.hostname.lower().rstrip(".")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ModelRetry(f"url {url!r} has an invalid port") from exc
    if method not in policy.allowed_methods:
        raise PolicyDenied(
            f"http_request method {method} is not allowed by policy (allowed_methods: "
            f"{', '.join(policy.allowed_methods) or 'none'})",
            rule="allowed_methods",
        )
    path = normalise_path(parts.path or "/")
    listed = any(_endpoint_matches(e, scheme, host, port, path) for e in policy.allowed_endpoints)
    if not listed and host not in [h.lower() for h in policy.allowed_hosts]:
        raise PolicyDenied(
            f"http_request to host {host!r} is not allowed by policy (allowed_hosts: "
            f"{', '.join(policy.allowed_hosts) or 'none'})",
            rule="allowed_hosts",
        )
    addresses = _resolve(host, port)
    if not addresses:
        raise ModelRetry(f"host {host!r} has no address")
    if not listed:
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason:
                raise PolicyDenied(
                    f"http_request to {host} refused: it resolves to {ip} ({reason}); only an exact "
                    "allowed_endpoints entry in the operator's policy file may reach such an address",
                    rule="egress_private",
                )
    address = str(addresses[0])
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    connect_url = urlunsplit((scheme, netloc, path, parts.query, ""))
    return Target(url, connect_url, host, address, port, scheme)


def canonical_url(url: str) -> str:
    """One spelling per request target: lower-case scheme and host, no trailing dot, explicit
    port, dot segments removed, no empty query. Used for at-most-once keys, not for checks."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        path = normalise_path(parts.path or "/")
    except (ValueError, PolicyDenied):
        return url
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


__all__ = ["Target", "canonical_url", "check", "forbidden_reason", "normalise_path"]
