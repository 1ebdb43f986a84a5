"""The Redis-shared counts of a registry with ``Settings.redis_url``: wiring only (split from
``app.py``). One client, the rate limits' (``redis_limits.RedisLimiter``), connecting on
first use inside the server's loop; on it the anonymous in-flight counts per address and
per model (the share, ``redis_inflight.SharedInFlight``, their ends sent together:
``Removals``) and what the nodes have shown they serve at every replica
(``redis_shown.SharedShown``, started by the app's lifespan)."""

from __future__ import annotations

from LLM_Mesh.config import Settings
from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.registry.redis_inflight import SHARE_PREFIX, Removals, SharedInFlight
from LLM_Mesh.registry.redis_limits import RedisLimiter
from LLM_Mesh.registry.redis_shown import SharedShown
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["share_through_redis"]


def share_through_redis(runtime: Runtime, settings: Settings, url: str) -> None:
    """Set ``runtime``'s Redis-shared parts for ``url`` (``shared_limits``, ``shared_in_flight``,
    ``shared_share``, ``shared_shown``) as ``settings`` ask for them."""
    runtime.shared_limits = RedisLimiter.from_url(url, runtime.limiter)
    client = runtime.shared_limits.client  # the counts' too, their ends sent together
    removals = Removals(client)
    if settings.anonymous_in_flight is not None and settings.anonymous_rpm is not None:
        runtime.shared_in_flight = SharedInFlight(
            client, InFlight(settings.anonymous_in_flight), removals=removals
        )
    if settings.anonymous_rpm is not None and settings.anonymous_share < 1:
        share = runtime.shared_share = SharedInFlight(  # a model's share: its cap with each take
            client, InFlight(1), prefix=SHARE_PREFIX, removals=removals
        )
        # ... of the slots the nodes have shown they serve at every replica (redisshare36)
        runtime.shared_shown = SharedShown(client, runtime.routing.router.fleet_shown, share)
