"""How many requests without an API key one address may have in flight at a gateway process.

``anonymous_rpm`` bounds how many requests an anonymous address (an IPv4 address, an IPv6
/64: :func:`~LLM_Mesh.core.ratelimit.address_scope`) starts a minute, not how long they
run: 60 starts a minute, each a stream up to the model's context, and a few /64s held
every slot of a small mesh's model (found 2026-12-05; docs/security.md, "Users and API
keys"). :class:`InFlight` counts each scope's requests from admission to their end, at
most ``cap`` at once; one more is refused (429). Loopback is not counted
(:func:`exempt`): the operator's own tools and a reverse proxy on the machine. Pure: the
caller takes and gives back.
"""

from __future__ import annotations

from ipaddress import ip_address

__all__ = ["DEFAULT_ANONYMOUS_IN_FLIGHT", "InFlight", "exempt"]

DEFAULT_ANONYMOUS_IN_FLIGHT = 4


def exempt(scope: str) -> bool:
    """Whether an address scope (``address_scope``'s text) is this machine's loopback:
    ``127.0.0.0/8`` or ``::1`` (its own scope, not ``::/64``: found 2026-12-06, attack34,
    ``::/64`` was exempt, so the IPv4-compatible ``::203.0.113.7`` or ``::2``, bogons an
    on-link peer can present, passed as this machine)."""
    try:
        return ip_address(scope).is_loopback
    except ValueError:
        return False


class InFlight:
    """Requests in flight per scope, at most ``cap`` each (a scope at 0 is forgotten)."""

    __slots__ = ("cap", "counts")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.counts: dict[str, int] = {}

    def take(self, scope: str, cap: int | None = None) -> bool:
        """One more request of ``scope`` if it has fewer than ``cap`` in flight (``None``:
        :attr:`cap`; a scope whose bound changes, as a model's anonymous share does with
        its slots, gives its own)."""
        n = self.counts.get(scope, 0)
        if n >= (self.cap if cap is None else cap):
            return False
        self.counts[scope] = n + 1
        return True

    def give(self, scope: str) -> None:
        """One request of ``scope`` ended (each ``take`` that returned True, once)."""
        n = self.counts.get(scope, 0) - 1
        if n > 0:
            self.counts[scope] = n
        else:
            self.counts.pop(scope, None)
