"""Whose ``X-Forwarded-For`` a registry replica believes: ``--trusted-proxies`` (pure).

The client address that anonymous limits, anonymous idempotency keys, the counts of wrong
credentials and ``/metrics`` (loopback: this machine) go by is the header's only from a
peer named here; from any other the header is ignored and the socket's peer is the client.
Loopback is always named (a balancer on the replica's own machine; a local program is this
machine anyway), so zero configuration is loopback only, as uvicorn's default.

uvicorn reads ``$FORWARDED_ALLOW_IPS`` from the environment when given nothing: ``*`` in
many container images, or a value set for another program; with ``*`` a stranger's own
``X-Forwarded-For: 127.0.0.1`` made them this machine, exempt from every limit (found
2026-12-06, attack35b). A replica is now always given its list (``registry/app.serve``), so
uvicorn never reads it; :func:`ignored_environment` says so at start when it is set.

A replica of ``--workers N --host ::`` listens on one IPv6 socket that takes IPv4 too
(``server_process.shared_socket``), where an IPv4 peer is ``::ffff:10.0.0.5``: uvicorn
gets each IPv4 name in that form too (:func:`uvicorn_names`; found 2026-12-06,
review35c: such a balancer matched no name, so every client was the balancer).
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "FORWARDED_ENV",
    "LOOPBACK_PROXIES",
    "ignored_environment",
    "parse_trusted_proxies",
    "uvicorn_names",
]

#: always trusted: a balancer on the replica's machine (docs/deploy.md)
LOOPBACK_PROXIES = ("127.0.0.1", "::1")
#: uvicorn's variable, never read by a replica (:func:`ignored_environment`)
FORWARDED_ENV = "FORWARDED_ALLOW_IPS"

_ANYONE = (
    "every client could then name any address in X-Forwarded-For (127.0.0.1: this "
    "machine, with /metrics and no anonymous limit; a new one per request: no rate limit)"
)
_NAME_THEM = "name the balancers' addresses or networks (e.g. 10.0.0.5,10.1.0.0/24)"


def parse_trusted_proxies(text: str | None) -> tuple[str, ...]:
    """The peers to believe, from ``--trusted-proxies`` (comma-separated IP addresses and
    networks): loopback first, then those named. ``ValueError`` (one line) for ``*``, a
    network of every address (``0.0.0.0/0``), a name or a network with host bits set
    (uvicorn takes such an entry for a literal that never matches, silently)."""
    out = list(LOOPBACK_PROXIES)
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            raise ValueError(f"--trusted-proxies '*': {_ANYONE}; {_NAME_THEM}")
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ValueError(
                f"--trusted-proxies {item!r}: not an IP address or network ({exc}); {_NAME_THEM}"
            ) from None
        if net.prefixlen == 0:
            raise ValueError(
                f"--trusted-proxies {item!r} is every address: {_ANYONE}; {_NAME_THEM}"
            )
        name = str(net) if "/" in item else str(net.network_address)
        if name not in out:
            out.append(name)
    return tuple(out)


def ignored_environment(value: str | None, trusted: tuple[str, ...]) -> str | None:
    """The WARNING to log at start when ``$FORWARDED_ALLOW_IPS`` is ``value`` (``None``:
    unset, nothing to say): a replica never reads it, and says whom it believes instead."""
    if value is None or not value.strip():
        return None
    danger = " (* would let any client name any address)" if "*" in value else ""
    return (
        f"${FORWARDED_ENV}={value.strip()!r} is ignored{danger}: X-Forwarded-For is "
        f"believed from {', '.join(trusted)} only; name a balancer on another machine with "
        "--trusted-proxies or LLM_MESH_TRUSTED_PROXIES"
    )


def uvicorn_names(trusted: tuple[str, ...]) -> list[str]:
    """``trusted`` (:func:`parse_trusted_proxies`) as uvicorn's ``forwarded_allow_ips``:
    each IPv4 address or network also as the IPv4-mapped IPv6 one a dual-stack socket
    shows its peer as (``10.0.0.5``: ``::ffff:10.0.0.5``; ``10.1.0.0/16``:
    ``::ffff:a01:0/112``)."""
    out = list(trusted)
    for name in trusted:
        net = ipaddress.ip_network(name)
        if net.version != 4:
            continue
        mapped = ipaddress.IPv6Network(
            (
                int(ipaddress.IPv6Address("::ffff:0:0")) + int(net.network_address),
                96 + net.prefixlen,
            )
        )
        alias = str(mapped) if "/" in name else str(mapped.network_address)
        if alias not in out:
            out.append(alias)
    return out
