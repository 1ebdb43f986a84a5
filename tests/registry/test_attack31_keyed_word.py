"""attack31: a node's word on keyed requests (``Heartbeat.keyed_age_s``) where it serves none
of the model: the anonymous share's keyed demand must be read from the nodes whose slots it
counts (``Routing.keyed_at`` against ``Router.slots``). docs/security.md, "Users and API
keys"."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, chat
from tests.registry.test_keyed_replicas import _beat


async def test_a_quarantined_nodes_keyed_word_keeps_no_slot_from_anonymous_requests(
    tmp_path: Path,
) -> None:
    """A node a canary quarantined for the model (routed none of it, so none of its slots)
    says in every heartbeat that a keyed request just came (``keyed_age_s: 0``): the model's
    one routable slot, an honest node's that had no keyed request, stays lent to anonymous
    requests (found 2026-12-05, attack31: ``keyed_at`` read every healthy node listing the
    model, the quarantined one too, so every anonymous request for the model was refused
    429 at every replica for as long as it kept saying so)."""
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("liar", max_concurrency=1, max_queue=0)
        honest = await h.register("honest", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        routing.set_quarantined("liar", frozenset({MODEL}))
        assert routing.slots(MODEL) == 1  # the honest node's slot alone
        await _beat(h, "liar", keyed_age_s=0.0)
        assert routing.keyed_at(MODEL) is None
        r = await h.client.post(CHAT, json=chat("anonymous, no key about"))
        assert r.status_code == 200, r.text
        assert honest.calls
