"""Whether a node may take requests: heartbeat age, state and the last active check.

Pure decisions over plain data with the time passed in (monotonic seconds),
so the node table, the health loop and the fleet simulator share them.
"""

from __future__ import annotations


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
