"""Whether a node may take requests: heartbeat age, state and the last active check.

Pure decisions over plain data with the time passed in (monotonic seconds),
so the node table, the health loop and the fleet simulator share them.
"""

from __future__ import annotations

import hashlib

from LLM_Mesh.core.netguard import NodeUrlError, parse_node_url


def heartbeat_age(last_heartbeat: float | None, now: float) -> float | None:
    """Seconds since the last heartbeat (never negative), or ``None`` if none yet."""
    if last_heartbeat is None:
        return None
    return max(0.0, now - last_heartbeat)


def is_routable(
    *,
    online: bool,
    last_heartbeat: float | None,
    now: float,
    expiry_s: float,
    check_failed: bool,
) -> bool:
    """Online, heard from within ``expiry_s``, and not failed by the last active check."""
    if not online or check_failed or last_heartbeat is None:
        return False
    return now - last_heartbeat < expiry_s


def holds_address(
    *,
    gone: bool,
    last_heartbeat: float | None,
    now: float,
    expiry_s: float,
    check_failed: bool,
) -> bool:
    """Whether a node keeps its address (``host:port``) from other keys' registrations.

    The registry pins a TLS certificate per address, not per node, so a second node
    registering there replaces the first one's pin and the gateway refuses the first
    one's certificate (found 2026-12-05). A node holds its address while it is not gone
    (OFFLINE or revoked: ``gone``), was heard from within ``expiry_s`` and did not fail
    its last active check (a key that cannot answer for itself there holds nothing), in
    any other state (paused, draining: still the node at that address).
    """
    return is_routable(
        online=not gone,
        last_heartbeat=last_heartbeat,
        now=now,
        expiry_s=expiry_s,
        check_failed=check_failed,
    )


def address_lock_key(address: tuple[str, int]) -> int:
    """A signed 64-bit number for ``(host, port)``: the key of the database lock that
    registrations at one address take in turn (a PostgreSQL advisory lock), so two
    replicas cannot both find the address free and both write a node there."""
    digest = hashlib.sha256(address_text(address).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def address_text(address: tuple[str, int]) -> str:
    """``host:port``: how an address is stored with its node's row (``nodes.address``,
    migration 0023) and keyed (:func:`address_lock_key`). One string per address: the port
    is a number, so the last ``:`` splits it even from an IPv6 host."""
    return f"{address[0]}:{address[1]}"


def node_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a node URL (host lower case), or ``None`` if it does not parse:
    what :func:`holds_address` is about (any scheme or path)."""
    try:
        node = parse_node_url(url)
    except NodeUrlError:
        return None
    return node.host, node.port


def forgettable(heard: float, now: float, forget_s: float, expiry_s: float) -> bool:
    """Whether a node last heard (or, never heard, put in the table) at ``heard`` is forgotten
    at ``now``: out of routing (heartbeat expired) and quiet for ``forget_s``, never less than
    ``FORGET_FLOOR_S`` past the expiry (a store poll's overlap must not bring it back)."""
    return now - heard >= max(forget_s, expiry_s + FORGET_FLOOR_S)


FORGET_FLOOR_S = 600.0
"""The least time past the heartbeat expiry a quiet node is kept (``forgettable``)."""
