"""Every gateway replica counts the places a node keeps for keyed requests, not only the one
that sent it keyed requests (``core/priority.py``, ``Heartbeat.keyed_age_s``,
``registry/node_sync.py``): two apps on one store are two replicas.

Found 2026-12-05: a node keeps the last quarter of its line from anonymous requests while
it has had a keyed request in the last 600 s, and the router counts those places the same
way, but from the keyed requests its own replica sent. Replica B, which sent the node none,
took it for keeping none: an anonymous request's 429 there marked the node full for every
request, keyed ones too, until its next heartbeat at B (keyed requests refused 429 by B
while the node kept places for them). docs/security.md, "Users and API keys"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.route_pools import FULL, KEPT, band
from LLM_Mesh.registry.settlement import user_account
from tests.registry.helpers import Harness, fund, running
from tests.registry.test_access import CHAT, MODEL, bearer, chat, new_key
from tests.registry.test_shared_idempotency import two_replicas


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


async def _beat(h: Harness, node_id: str, **report: Any) -> None:
    r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json=report)
    assert r.status_code == 200, r.text
    if h.runtime.heartbeats is not None:  # written behind the answer: in the store now
        await h.runtime.heartbeats.flush()


def _tick(*hs: Harness) -> None:
    """Each replica's manual clock a second on. It stands still otherwise, so a beat read
    from the store maps to ``clock - (wall now - its time)``: a poll later after the beat
    than the poll after the registration was after it made the beat older than the
    registration and B kept the older one (CI: 1 run in 6 on PostgreSQL). Real clocks
    move on between the two."""
    for h in hs:
        h.clock.advance(1.0)


async def _keyed_at_a_then_anonymous_429_at_b(
    tmp_path: Path, store_url: str | None, beat_at: str, report: dict[str, Any]
) -> tuple[int, int]:
    """Keyed traffic through replica A only; the node heartbeats ``report`` at ``beat_at``
    (A: B reads it from the store; B: B hears it itself); then the node refuses an
    anonymous request at B (429, its kept places free). The band B's router then gives the
    node, and the status of a keyed request at B."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()  # this test polls b itself: no background poll between the steps
        node = await a.register("n1", max_concurrency=1, max_queue=8)  # 2 places kept
        key, key_id = await new_key(a, name="payer")
        if store_url is None:  # one MemoryStore: each replica keeps its own ledger
            await fund(b, user_account(key_id))
        await sync.poll()  # b learns the node from the store
        r = await a.client.post(CHAT, json=chat("keyed at a"), headers=bearer(key))
        assert r.status_code == 200, r.text
        assert node.calls[-1]["body"].get("mesh_priority") == "keyed"
        _tick(a, b)  # the beat is later than the registration on every replica's clock
        await _beat(a if beat_at == "a" else b, "n1", **report)
        await sync.poll()
        node.behavior = "429"  # anonymous waiters hold the places not kept
        r = await b.client.post(CHAT, json=chat("anonymous at b"))
        assert r.status_code == 429, r.text
        st = b.runtime.routing.router.node("n1")
        assert st is not None
        got = band(st)
        node.behavior = "ok"  # a keyed request takes a kept place
        r = await b.client.post(CHAT, json=chat("keyed at b"), headers=bearer(key))
        return got, r.status_code


@pytest.mark.parametrize("beat_at", ["a", "b"])
async def test_a_node_keeping_places_for_keyed_requests_stays_open_to_them_at_every_replica(
    tmp_path: Path, store_url: str | None, beat_at: str
) -> None:
    """The node says when its last keyed request came (``keyed_age_s``); B, which sent it
    none, counts the kept places: the anonymous 429 closes the node to anonymous requests
    only, and B's keyed request is served (before: the node full at B, 429)."""
    got, status = await _keyed_at_a_then_anonymous_429_at_b(
        tmp_path, store_url, beat_at, {"keyed_age_s": 1.5}
    )
    assert got == KEPT
    assert status == 200


async def test_an_older_node_that_does_not_say_keeps_todays_behaviour(tmp_path: Path) -> None:
    """A node that does not say it (an older one): B knows only the keyed requests it sent
    itself, as before: the anonymous 429 marks the node full there until its next
    heartbeat at B (what remains for older nodes: docs/security.md)."""
    got, status = await _keyed_at_a_then_anonymous_429_at_b(tmp_path, None, "a", {})
    assert got == FULL
    assert status == 429


async def test_an_age_past_the_window_keeps_no_places(tmp_path: Path) -> None:
    """An age of 600 s or more (``KEYED_SEEN_S``) says the node keeps no places: as not
    said."""
    got, _ = await _keyed_at_a_then_anonymous_429_at_b(tmp_path, None, "b", {"keyed_age_s": 600.0})
    assert got == FULL


async def test_a_one_slot_models_slot_is_kept_for_keyed_requests_at_every_replica(
    tmp_path: Path, store_url: str | None
) -> None:
    """The anonymous share keeps a one-slot model's slot for keyed requests for a minute
    after one (``KEYED_RECENT_S``); each replica kept it only for the keyed requests that
    came to it, so B lent the slot to anonymous requests while A kept it (found
    2026-12-05, share30's note). Now B reads the node's word too (``Routing.keyed_at``):
    B keeps it alike (before: 200 at B)."""
    async with two_replicas(tmp_path, store_url, anonymous_rpm=600) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()
        await a.register("n1", max_concurrency=1, max_queue=0)  # the model's one slot
        key, _ = await new_key(a, name="payer")
        await sync.poll()
        r = await b.client.post(CHAT, json=chat("anonymous, no key about"))
        assert r.status_code == 200, r.text  # no keyed demand anywhere: the slot is lent
        r = await a.client.post(CHAT, json=chat("keyed at a"), headers=bearer(key))
        assert r.status_code == 200, r.text
        _tick(a, b)
        await _beat(a, "n1", keyed_age_s=0.5)
        await sync.poll()
        r = await b.client.post(CHAT, json=chat("anonymous at b, a key came at a"))
        assert r.status_code == 429, r.text
        assert "share" in r.json()["error"]["message"]


async def test_a_models_keyed_demand_is_read_from_the_nodes_its_slots_count(
    tmp_path: Path,
) -> None:
    """``Routing.keyed_at``: a node out of routing (ejected, draining, lost) holds none of
    the model's slots, so its word on keyed requests keeps no slot from anonymous ones."""
    async with running(tmp_path) as h:
        await h.register("liar", max_concurrency=1, max_queue=0)
        await h.register("honest", max_concurrency=1, max_queue=0)
        await _beat(h, "liar", keyed_age_s=0.0)
        routing = h.runtime.routing
        at = routing.keyed_at(MODEL)
        assert at is not None and at == routing.router.node("liar").keyed_at  # type: ignore[union-attr]
        routing.router.set_routable("liar", False)
        assert routing.keyed_at(MODEL) is None
