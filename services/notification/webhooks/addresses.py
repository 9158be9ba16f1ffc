"""Which webhook endpoints we may call: refuse anything that resolves to our own networks (SSRF).

    target = resolve_endpoint("https://hooks.example.com/in", allow_private=False)
    target.ip   # the checked address: the request connects to it, not to a second lookup

Checked when a delivery is attempted, every time (an address that changes after it was set, DNS
rebinding, is caught), and every address the name resolves to must be public.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class RefusedEndpoint(ValueError):
    """Never to be called as it stands: wrong scheme, no host, or a non-public address."""


class UnresolvableEndpoint(OSError):
    """The name does not resolve right now (may be temporary)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    ip: str


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a well-formed http(s) URL, else RefusedEndpoint."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RefusedEndpoint(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedEndpoint("only http and https endpoints are allowed")
    if not parts.hostname:
        raise RefusedEndpoint("the URL has no host")
    if parts.username or parts.password:
        raise RefusedEndpoint("credentials in the URL are not allowed (sign with the webhook secret instead)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def is_public(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return address.is_global and not address.is_multicast


def resolve_endpoint(url: str, *, allow_private: bool) -> Target:
    scheme, host, port, path = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableEndpoint(f"{host} does not resolve: {exc}") from None
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not ips:
        raise UnresolvableEndpoint(f"{host} has no address")
    if not allow_private:
        refused = [ip for ip in ips if not is_public(ip)]
        if refused:
            raise RefusedEndpoint(
                f"{host} resolves to {', '.join(refused)}: loopback, private, link-local and other "
                "non-public addresses are refused"
            )
    return Target(url, scheme, host, port, path, ips[0])
