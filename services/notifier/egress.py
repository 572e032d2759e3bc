"""Where a webhook may point: never inside. The notifier sits inside the cluster next to
PostgreSQL, the broker and the other services' admin APIs; a webhook URL set to one of
them would make the notifier a proxy and its attempt log a port scanner.

The host is resolved and every address it resolves to must be public (loopback,
private, link-local with the cloud metadata address, unique-local, CGNAT, multicast and
reserved ranges are refused), unless it lies in a network the operator allowed
(`WEBHOOK_ALLOWED_NETWORKS`, e.g. the regency's own WAN). The check runs when a URL is
configured (a clear 422) and again before every attempt, and the attempt connects to
the very address that was checked, with the URL's host name kept for the Host header
and for TLS (SNI and certificate): a DNS answer that changes between check and
connect (rebinding) cannot move the connection inside.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
RESOLVE_TIMEOUT_SECONDS = 5.0


class Refused(Exception):
    """The URL may not be used; the message says why without any internal detail."""


class Unresolved(Exception):
    """The host name did not resolve now (may later: retry)."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`10.20.0.0/16, 192.168.5.7` → networks; a bad entry raises ValueError naming it."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


@dataclass(frozen=True)
class Pinned:
    """A request target bound to one checked address."""

    url: httpx.URL  # the checked address in place of the host name
    host_header: str
    sni_hostname: str | None


@dataclass(frozen=True)
class EgressPolicy:
    require_https: bool
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    def address_problem(self, address: IPAddress) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return None
        if not address.is_global or address.is_multicast or address.is_reserved:
            return "its host is an internal address (loopback, private, link-local or reserved)"
        return None

    def url_problem(self, url: httpx.URL) -> str | None:
        if url.scheme not in ("http", "https"):
            return "must be an http(s) URL"
        if self.require_https and url.scheme != "https":
            return "must be an https URL"
        if not url.host:
            return "has no host"
        if url.userinfo:
            return "must not carry a user name or password"
        return None

    async def addresses(self, url: httpx.URL) -> list[IPAddress]:
        literal = _literal(url.host)
        if literal is not None:
            return [literal]
        try:
            found = await asyncio.wait_for(
                self.resolver(url.host, url.port or _default_port(url)), RESOLVE_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise Unresolved(f"the host name did not resolve ({type(exc).__name__})") from None
        unique = list(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in found))
        if not unique:
            raise Unresolved("the host name resolved to no address")
        return unique

    async def check_configured(self, raw: str) -> str | None:
        """Why `raw` may not be configured as a webhook, or None. A name that does not
        resolve yet is accepted here (the agency may publish it later); every attempt
        checks again."""
        url = httpx.URL(raw)
        problem = self.url_problem(url)
        if problem:
            return problem
        try:
            return _first(self.address_problem(a) for a in await self.addresses(url))
        except Unresolved:
            return None

    async def pin(self, raw: str) -> Pinned:
        """The checked target of one attempt. Raises Refused (never deliverable) or
        Unresolved (try again later)."""
        url = httpx.URL(raw)
        problem = self.url_problem(url)
        if problem:
            raise Refused(f"webhook URL refused: it {problem}")
        addresses = await self.addresses(url)
        problem = _first(self.address_problem(a) for a in addresses)
        if problem:
            raise Refused(f"webhook URL refused: {problem}")
        host_header = url.netloc.decode("ascii")
        literal = _literal(url.host) is not None
        return Pinned(
            url=url.copy_with(host=str(addresses[0])),
            host_header=host_header,
            sni_hostname=None if literal or url.scheme != "https" else url.host,
        )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _first(problems: Iterable[str | None]) -> str | None:
    return next((p for p in problems if p), None)
