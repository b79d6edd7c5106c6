"""Where a webhook may be sent: ``http``/``https`` to a public address only (no SSRF).

A URL is checked when it is set (a literal address, or the addresses its name resolves to now)
and again at each delivery, after resolution, on the very address the worker then connects to:
a name that resolves to a private address later (DNS rebinding) is refused too.
``WEBHOOK_ALLOWED_NETWORKS`` exempts networks, for receivers on a private network and for tests.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from threads.errors import ThreadError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


def refused(message: str) -> ThreadError:
    return ThreadError("webhook_url_invalid", message, "url")


def parse_url(url: object) -> SplitResult:
    """The URL's parts, or ``webhook_url_invalid`` unless it is an absolute http(s) URL."""
    if not isinstance(url, str) or not url:
        raise ThreadError("invalid_parameters", "'url' must be a non-empty string.", "url")
    if len(url) > MAX_URL_LENGTH:
        raise refused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise refused("The URL is not valid.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused("The URL must be an absolute http:// or https:// URL.")
    if any(ord(char) < 33 for char in url):
        raise refused("The URL may not contain spaces or control characters.")
    return parts


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.WEBHOOK_ALLOWED_NETWORKS]


def is_public(address: IPAddress) -> bool:
    """Not loopback, private, link-local, multicast, reserved or otherwise non-global: also
    through the IPv4 address inside an IPv4-mapped or 6to4 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None and not is_public(inner):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def check_address(address: IPAddress) -> None:
    if not is_public(address) and not any(address in network for network in allowed_networks()):
        raise refused(f"The URL points at a non-public address ({address}).")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host name stands for (a literal address stands for itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: object) -> str:
    """The URL, or ``webhook_url_invalid``. A name that does not resolve now is accepted: the
    receiver may not exist yet, and each delivery checks again."""
    parts = parse_url(url)
    try:
        addresses = resolve(parts.hostname, parts.port or 443)
    except (OSError, UnicodeError):
        return url
    for address in addresses:
        check_address(address)
    return url


def delivery_address(parts: SplitResult) -> IPAddress:
    """At delivery: the address to connect to, after checking every address the name has now.
    Raises ``webhook_url_invalid`` for a refused address and ``OSError`` when it does not resolve."""
    addresses = resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    for address in addresses:
        check_address(address)
    return addresses[0]
