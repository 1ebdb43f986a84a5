"""How long the gateway keeps its request log (``requests`` rows): the cutoff (pure).

Rows created before :func:`request_log_cutoff` may be deleted (``registry/retention.py``
does, hourly, in bounded batches). ``keep_days`` is ``Settings.request_log_keep_days``
(0: keep forever). The request log's one reader that needs past rows is the uptime
rewards (``Store.request_totals`` over the latest reward period due, which started up to
``2 × period + grace`` ago, :func:`LLM_Mesh.core.rewards.due_period`), so the cutoff is
never later than ``now − (2 × reward_period_s + grace_s + 1 h)``, whatever ``keep_days``.
"""

from __future__ import annotations

__all__ = ["DAY_S", "request_log_cutoff"]

DAY_S = 86_400
_MARGIN_S = 3600  # past the rewards' window: a reward task that ran late still finds its rows


def request_log_cutoff(
    now_s: float, keep_days: int, *, reward_period_s: int, grace_s: float
) -> float | None:
    """The Unix time before which request rows may go; ``None`` for ``keep_days`` 0 (keep)."""
    if keep_days < 0 or reward_period_s < 1 or grace_s < 0:
        raise ValueError("keep_days and grace_s are >= 0, reward_period_s >= 1")
    if keep_days == 0:
        return None
    floor_s = 2 * reward_period_s + grace_s + _MARGIN_S
    return now_s - max(keep_days * DAY_S, floor_s)
