"""``GET /mesh/nodes``'s body, built once and served to every reader until the mesh changes.

The listing is O(nodes) to build (500 nodes: ~16 ms of the gateway's event loop and
~500 KB, 2026-12-03) and anyone may ask for it in a loop, so its serialized body is kept
per audience (the public listing, the admin's) and served as built while

- the node table's :attr:`~LLM_Mesh.registry.node_table.NodeTable.changes` and quality
  control's :attr:`~LLM_Mesh.registry.quality.Quality.changes` are what they were: a
  registration, a deregistration, a state, a health check's verdict, an expiry, the
  models loaded, a quarantine is in the very next answer (nodes, ``llm-mesh status`` and
  the seed API read the listing right after they registered); and so are the router's
  :attr:`~LLM_Mesh.core.balancer.Router.changes`: an outlier ejection, its end (the
  router's ``tick`` runs before the version is read), ``routable`` (a heartbeat expired
  at a pick, another replica's news), a node added or removed (until 2026-12-03 an
  ejection was shown up to ``ttl_s`` late);
- and it is younger than ``ttl_s`` (1 s) on the runtime's clock: what drifts without a
  change above (reported load, heartbeat ages and ``healthy`` as a heartbeat ages past
  the expiry between sweeps, the router's EWMAs and ``health_score``, the slow-start
  weight, request counters) is shown at most that late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response

from LLM_Mesh.registry.errors import NOSNIFF, JSONAnswer

__all__ = ["NodeListing"]

# the listing's version: the node table's changes, quality control's and the router's
Version = tuple[int, int, int]


@dataclass
class NodeListing:
    """See the module docstring; one per runtime (``Runtime.listing``)."""

    ttl_s: float = 1.0
    builds: int = 0  # bodies built, ever (tests, benchmarks)
    _bodies: dict[str, tuple[Version, float, bytes]] = field(default_factory=dict)

    def answer(
        self,
        audience: str,
        version: Version,
        now: float,
        build: Callable[[], dict[str, Any]],
    ) -> Response:
        """``build()``'s JSON for ``audience`` (one of a fixed few), built again only after
        ``version`` changed or ``ttl_s`` passed since it was last built."""
        hit = self._bodies.get(audience)
        if hit is not None and hit[0] == version and 0.0 <= now - hit[1] < self.ttl_s:
            response = Response(hit[2], media_type="application/json")
            response.raw_headers.append(NOSNIFF)  # as JSONAnswer's, below
            return response
        response = JSONAnswer(build())
        self.builds += 1
        self._bodies[audience] = (version, now, bytes(response.body))
        return response
