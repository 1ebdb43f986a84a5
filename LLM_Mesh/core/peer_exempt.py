"""Which peers a node does not count against its per-peer connection cap (pure).

A node lets one peer (an IPv4 address, an IPv6 /64: ``slow_clients.peer_key``) hold at most
``node_peer_cap`` connections. Its own gateway is one peer to it, however many replicas it
runs: replicas behind one IPv4 address (NAT, several on one machine) or in one IPv6 /64 (a
cloud subnet) shared that cap, and a busy node reset their connections (found 2026-12-03).
So a node does not count:

- loopback (the operator's tools, a reverse proxy on the machine);
- its registries' own addresses: the hosts of its ``registry_url`` list, resolved at start,
  every few minutes and at each registration (``node/registry_peers.py``), matched exactly
  (the address, not its /64: a registry's neighbours are counted as before);
- ``trusted_peers``: addresses or CIDR blocks the operator names (a registry behind a load
  balancer calls from its replicas' egress addresses, which its URL does not resolve to).

Why not "a peer whose requests carry the gateway's signature": the cap is decided when the
connection is accepted, before a byte of any request, so a signature cannot be seen then.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "PeerExemption",
    "canonical_address",
    "parse_trusted_peers",
    "registry_hosts",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def canonical_address(host: str | None) -> str | None:
    """``host`` as one spelling of its address (zone dropped, an IPv4-mapped IPv6 address as
    its IPv4); ``None`` when it is no address."""
    if not host:
        return None
    try:
        addr = ipaddress.ip_address(host.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def parse_trusted_peers(spec: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """``"ADDR,CIDR,..."`` (or a list) → the networks (an address: its own /32 or /128);
    ``ValueError`` naming a part that is neither."""
    if spec is None:
        return ()
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    nets: list[IPNetwork] = []
    for part in (str(p).strip() for p in parts):
        if not part:
            continue
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(
                f"trusted_peers: {part!r} is neither an address nor a CIDR block"
            ) from None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:a.b.c.d/1xx: the IPv4 block it names
                net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
        nets.append(net)
    return tuple(nets)


def registry_hosts(urls: Iterable[str]) -> tuple[str, ...]:
    """The host names (or address literals) of ``urls``, each once, in order."""
    seen: dict[str, None] = {}
    for url in urls:
        try:
            host = urlsplit(url.strip()).hostname
        except ValueError:
            continue
        if host:
            seen.setdefault(host, None)
    return tuple(seen)


class PeerExemption:
    """The node's rule: :meth:`__call__` says whether a peer address is not counted.

    ``registry_addrs`` is replaced as the registries' names are resolved again
    (:meth:`set_registry_addrs`); the rest is fixed at start."""

    def __init__(
        self,
        trusted: Iterable[IPNetwork] = (),
        registry_addrs: Iterable[str] = (),
        *,
        loopback: bool = True,
    ) -> None:
        self.trusted = tuple(trusted)
        self.loopback = loopback
        self.registry_addrs: frozenset[str] = frozenset()
        self.set_registry_addrs(registry_addrs)

    def set_registry_addrs(self, addrs: Iterable[str]) -> bool:
        """Exempt exactly these addresses (the registries' as last resolved); True when
        that changed anything."""
        new = frozenset(a for a in (canonical_address(x) for x in addrs) if a is not None)
        changed = new != self.registry_addrs
        self.registry_addrs = new
        return changed

    def __call__(self, host: str | None) -> bool:
        canon = canonical_address(host)
        if canon is None:
            return False
        addr = ipaddress.ip_address(canon)
        if self.loopback and addr.is_loopback:
            return True
        if canon in self.registry_addrs:
            return True
        return any(addr.version == net.version and addr in net for net in self.trusted)
