"""How long a rotation's previous key's beat tokens are taken: the window's arithmetic.

A replica holding ``registry.key.previous`` (a rotation: ``registry/gateway_key.py``) takes
beat tokens made under it (``core/beat_mac.py``) only for ``window_s`` after the rotation
began there (``since``: ``registry.key.previous.since``), then refuses them as any other
key's. ``window_s`` is ``Settings.previous_key_window_s`` (``LLM_MESH_PREVIOUS_KEY_WINDOW_S``,
default :data:`PREVIOUS_KEY_TOKENS_S`, more than 0 and at most
:data:`PREVIOUS_KEY_TOKENS_TOP_S`). A ``since`` that could not be kept (``None``: the home
cannot be written, so each start would read a fresh window, rot42) opens no window.

Pure: no clock read, no file; light (no ``cryptography``), as ``config.py`` imports it.
"""

from __future__ import annotations

import math

__all__ = [
    "PREVIOUS_KEY_TOKENS_S",
    "PREVIOUS_KEY_TOKENS_TOP_S",
    "check_previous_window",
    "previous_tokens_until",
]

# how long after a rotation began at a replica the previous key's tokens are taken there:
# a rolling restart in one pass (docs/deploy.md) takes minutes, and the tokens the replicas
# still on the old key made live 2 heartbeat expiries (60 s by default) after the last of
# them restarts; past it a node with such a token, during a flood only, registers again
# once (as with any unknown key's token). Shorter is better for a leaked old key.
PREVIOUS_KEY_TOKENS_S = 15 * 60.0
# the longest window a setting may give: a day (a rolling restart slower than that is no
# rolling restart; a leaked old key's tokens taken for longer is the hole rot41 closed)
PREVIOUS_KEY_TOKENS_TOP_S = 24 * 3600.0


def check_previous_window(window_s: float, name: str = "previous_key_window_s") -> float:
    """``window_s`` when it is a number of seconds more than 0 and at most
    :data:`PREVIOUS_KEY_TOKENS_TOP_S`; else ``ValueError`` naming ``name``."""
    if (
        isinstance(window_s, bool)
        or not isinstance(window_s, int | float)
        or not math.isfinite(window_s)
        or not 0 < window_s <= PREVIOUS_KEY_TOKENS_TOP_S
    ):
        raise ValueError(
            f"{name} must be a number of seconds more than 0 and at most "
            f"{PREVIOUS_KEY_TOKENS_TOP_S:g} (1 day), got {window_s!r}"
        )
    return float(window_s)


def previous_tokens_until(
    since: float | None, now: float, window_s: float = PREVIOUS_KEY_TOKENS_S
) -> float:
    """When the previous key's tokens stop being taken: ``window_s`` after ``since`` (the
    rotation's start here), never later than that after ``now`` (a time ahead of the clock,
    e.g. a file written under a wrong clock, extends nothing); ``since`` ``None`` (not kept:
    each start would open a window of its own): ``now``, no window at all."""
    window_s = check_previous_window(window_s)
    if since is None:
        return now
    return min(since, now) + window_s
