"""Where a CRM call may go: https to a public address, never our own network (SSRF).

A connection's base URL is typed by an admin and a Salesforce `instance_url` comes from the CRM,
so neither is trusted. Two checks:

- `base_url_problem` when a URL is saved or received: https, a host, no credentials in it, and not
  an address (or `localhost`) outside the public internet;
- `GuardedAdapter` when a request is sent: the address the socket actually connected to (after
  DNS, so a name that resolves or re-resolves to 169.254.169.254 is caught too) must be public.

Loopback, and plain http to loopback, are allowed only when `settings.CRM_ALLOW_LOOPBACK` is on:
the sandbox CRMs of the demo, the tests and the benchmarks listen there. Private, link-local,
shared and reserved addresses (cloud metadata among them) are never allowed.
"""

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """A CRM request would have reached an address outside the public internet; it was not sent."""


def loopback_allowed() -> bool:
    return bool(getattr(settings, "CRM_ALLOW_LOOPBACK", False))


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _plain(address: IPAddress) -> IPAddress:
    """An IPv6 address that carries an IPv4 one (mapped, NAT64, 6to4) judged as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_problem(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why a CRM request must not go to this address, or None when it may."""
    address = _plain(address)
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address (cloud metadata services live there)"
    if address.is_private:
        return f"{address} is a private address"
    if not address.is_global or address.is_multicast:
        return f"{address} is not a public internet address"
    return None


def base_url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """Why this CRM base URL is refused, or None. Names are not resolved here (see GuardedAdapter)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("https", "http") or not host:
        return "Enter an https:// URL with a host name, e.g. https://acme.zendesk.com."
    if parts.username is not None or parts.password is not None:
        return "Leave credentials out of the URL; enter them in their own fields."
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    is_loopback = host.lower().rstrip(".") in LOCALHOST_NAMES or (literal is not None and _plain(literal).is_loopback)
    if is_loopback and not allow_loopback:
        return "Loopback addresses are not allowed for a CRM (the sandbox CRMs need CRM_ALLOW_LOOPBACK on)."
    if literal is not None and (problem := address_problem(literal, allow_loopback=allow_loopback)):
        return f"The CRM must be on the public internet: {problem}."
    if parts.scheme != "https" and not is_loopback:
        return "The CRM's URL must start with https:// (credentials are sent to it)."
    return None


def is_web_url(url: str) -> bool:
    """An http(s) URL with a host: the only kind of URL from a CRM that may become a link.

    Anything else (`javascript:`, `data:`, a relative path) would run or resolve in our admin.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and not any(c in url for c in "\r\n\t")


def validate_base_url(value: str) -> None:
    """Model-field validator: the admin form, `add_crm_connection` and every service save pass here."""
    if problem := base_url_problem(value, allow_loopback=loopback_allowed()):
        raise ValidationError(problem, code="unsafe_url")


def _check_peer(sock: socket.socket) -> None:
    peer = sock.getpeername()[0]
    problem = address_problem(ipaddress.ip_address(peer.split("%", 1)[0]), allow_loopback=loopback_allowed())
    if problem:
        sock.close()
        raise BlockedAddress(f"not sent: {problem}")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    # Checked before the TLS handshake: not a byte of the request reaches a refused address.
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connections refuse non-public peers, without retries or proxies.

    A proxy from the environment would make the proxy the peer and hide where the request goes,
    so CRM calls never use one.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["proxies"] = {}
        return super().send(request, *args, **kwargs)
