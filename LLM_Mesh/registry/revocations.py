"""Revocations made elsewhere (the admin CLI, another registry) reach this process's routing.

``llm-mesh registry nodes revoke`` and ``operators revoke`` write the store only.
:class:`RevocationWatcher` asks the store every ``interval_s`` (1 s) for node keys
revoked lately and takes those nodes out of routing (state OFFLINE), so a revoked
node stops getting requests within about a second in every registry process on
that database; its next message is refused in any case (``node_auth.py``). The
window it asks about reaches ``overlap_s`` (5 min) back, so writers whose clocks
differ a little are still seen; taking a node out twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.routing import Routing

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RevocationWatcher(Poller):
    task_name = "llm-mesh-revocations"

    def __init__(
        self,
        store: Store,
        table: NodeTable,
        routing: Routing,
        *,
        interval_s: float = 1.0,
        overlap_s: float = 300.0,
        wall_now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.table = table
        self.routing = routing
        self.interval_s = interval_s
        self.overlap = timedelta(seconds=overlap_s)
        self._now = wall_now
        self._since = _EPOCH

    async def poll(self) -> list[str]:
        """Take nodes revoked since the last poll out of routing; the ids taken out now."""
        started = self._now()
        revoked = await self.store.revoked_nodes_since(self._since)
        self._since = started - self.overlap
        out: list[str] = []
        for node_id in revoked:
            # marked revoked even when already OFFLINE (gone before, or a restarted
            # registry's rows): the listing says "revoked", not "offline"
            if not self.table.revoke(node_id):
                continue
            self.routing.remove(node_id)
            out.append(node_id)
            log.warning("node %s is revoked: out of routing", node_id)
        return out
