"""What a node has shown it serves, for the anonymous share's count, kept over a window of
time (``NodeStats.shown``; ``core/route_pools.shown_slots`` counts it). Pure: the router
passes its clock's ``now``.

share35 counted of a node the most of this process's requests it held at once when one of
them was answered, until its next hard failure. Nothing decayed: a phantom that served
``k`` at once honestly, then turned slow (the router then sends it nothing, so it never
fails again), lent the share its ``k`` slots for good (found 2026-12-06, share35b). Now
``shown`` is a windowed maximum, O(1) per node: the most held at an answer in the current
window of :data:`SHOWN_WINDOW_S` (``shown_last``) or in the one before it, windows aligned
on the clock (``floor(now / SHOWN_WINDOW_S)``). A node that last held ``k`` at an answer at
``t`` keeps ``k`` counted until at least ``t + SHOWN_WINDOW_S`` and at most
``t + 2 * SHOWN_WINDOW_S``; the router rolls the windows where it hears from the node (a
heartbeat, here or through another replica, and each answer), so a node sent nothing
lends nothing within ``2 * SHOWN_WINDOW_S`` plus one heartbeat interval. An honest busy
node, which holds that many again at least once a window, keeps its count.

``answered`` (the node has answered here since its last hard failure) does not decay: a
model whose nodes all rolled down to 0 counts what they show (at least 2 slots), not
their declared slots again (``Router.slots``).
"""

from __future__ import annotations

import math

from LLM_Mesh.core.scoring import NodeStats

__all__ = ["SHOWN_WINDOW_S", "forget_shown", "note_shown", "roll_shown"]

#: the window of what a node has shown it serves (module docstring): counted 1 to 2 windows
SHOWN_WINDOW_S = 60.0


def _window(now: float) -> int:
    w = now / SHOWN_WINDOW_S
    return math.floor(w) if math.isfinite(w) else 0


def roll_shown(st: NodeStats, now: float) -> None:
    """Move ``st``'s windows on to ``now``'s: the window before drops out of ``shown``.
    A clock that went back (another replica's ``at``) rolls nothing."""
    w = _window(now)
    last = st.shown_window
    if w <= last:
        return
    st.shown = st.shown_last if w == last + 1 else 0  # the window just ended, or none
    st.shown_last = 0
    st.shown_window = w


def note_shown(st: NodeStats, now: float) -> None:
    """One of this process's requests at ``st`` was answered while it held
    ``st.in_flight`` of them (the one answered with them): it has shown it serves that many
    (at most its slots) in ``now``'s window."""
    roll_shown(st, now)
    n = min(st.in_flight, st.max_concurrency)
    st.answered = True
    if n > st.shown_last:
        st.shown_last = n
        if n > st.shown:
            st.shown = n


def forget_shown(st: NodeStats) -> None:
    """A hard failure: what ``st`` has shown it serves starts over (share35)."""
    st.shown = st.shown_last = 0
    st.answered = False
