"""Who may read ``GET /metrics``: pure decision, no I/O.

The counters tell how much traffic a gateway or a node carries, for which models and
with which nodes: operational data, not public by default. The rule, in order:

1. ``public`` (``--metrics-public``, ``LLM_MESH_METRICS_PUBLIC``): everyone;
2. a ``Bearer`` token equal to the metrics token (``LLM_MESH_METRICS_TOKEN``; compared in
   constant time): allowed from anywhere (an operator's Prometheus on another machine);
3. a loopback client (``127.0.0.0/8``, ``::1``, and IPv4-mapped loopback): allowed, as the
   node's own operator endpoints are (a Prometheus or an agent on the same machine),
   unless its ``Host`` is not a name of this machine (a rebound DNS name) or it is a
   browser's request from another site's page (``core/browser_origin.py``);
4. anyone else: refused, 401 when a bearer token was sent and is wrong, else 403.

The admin key is deliberately not accepted: a scraper should hold nothing that can do more.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["MetricsAccess", "Verdict", "is_loopback"]


class Verdict(str, Enum):
    ALLOW = "allow"
    UNAUTHORIZED = "unauthorized"  # a bearer token was sent, and it is not the metrics token
    FORBIDDEN = "forbidden"  # no token, not loopback


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a peer address as the server saw it) is a loopback address."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass(frozen=True)
class MetricsAccess:
    """The ``/metrics`` access rule (see the module docstring)."""

    public: bool = False
    token: str | None = field(default=None, repr=False)

    def decide(
        self, authorization: str | None, peer: str | None, not_local: str | None = None
    ) -> Verdict:
        """The verdict for a request with this ``Authorization`` header from ``peer``;
        ``not_local``: why a loopback request is not the machine's own (a rebound name,
        another site's page: :func:`~LLM_Mesh.core.browser_origin.loopback_refusal`),
        which loopback does not let in."""
        if self.public:
            return Verdict.ALLOW
        given = _bearer(authorization)
        if given is not None and self.token:
            if hmac.compare_digest(given.encode(), self.token.encode()):
                return Verdict.ALLOW
            return Verdict.UNAUTHORIZED
        if is_loopback(peer) and not_local is None:
            return Verdict.ALLOW
        return Verdict.UNAUTHORIZED if given is not None else Verdict.FORBIDDEN
