"""The stream floor per node through the real pipeline (in-process app, simulated nodes):
it counts the requests other live gateway replicas published in flight at the node
(``Routing.others``, read from the replica beat), and a stream's share of it never falls
below the floor over the node's declared slots (``core/stream_guard.sharers``). Found
2026-12-03, see docs/security.md, "Hostile nodes". The gateway's clock is the harness's:
the node's pace takes no real time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.registry.ports import ReplicaRecord
from tests.registry.helpers import Harness, ManualClock, running
from tests.registry.test_hostile_node_streams import CHAT, FLOOR, MODEL, Nodes, Paced, _body, _data

# another replica's published demand: 3 requests in flight at the node "slow"
THREE_AT_SLOW = {"in_flight": {MODEL: 3}, "nodes": {"slow": 3}, "nodes_truncated": False}


async def _other_replica(h: Harness, age_s: float) -> None:
    """Another replica on the store, last seen ``age_s`` ago, publishing ``THREE_AT_SLOW``;
    this replica's beat reads the store (as it does every second)."""
    beat = h.runtime.replicas
    assert beat is not None
    seen = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    rec = ReplicaRecord("replica-other", seen, seen, "test", THREE_AT_SLOW)
    await h.store.beat_replica(rec)
    await beat.poll()
    if age_s > beat.dead_after_s:  # a stale record kept while the store cannot be read
        beat.live = {rec.replica_id: rec}


async def _streams(
    tmp_path: Path, streams: int, gap_s: float, slots: int, other_age_s: float | None = None
) -> list[str]:
    """``streams`` concurrent streams of one node whose every event takes ``gap_s`` of the
    gateway's clock (floor: 1 event/s after 2 s), the node declaring ``slots`` slots and a
    queue of 8; another replica's record ``other_age_s`` old (None: none). Each stream's
    client text."""
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["slow"] = lambda node: Paced(clock, gap_s, 40)
    async with running(tmp_path, nodes=nodes, clock=clock, heartbeat_interval_s=600.0,
                       **FLOOR) as h:  # fmt: skip
        await h.register("slow", max_concurrency=slots, max_queue=8)
        if other_age_s is not None:
            await _other_replica(h, other_age_s)
        rs = await asyncio.gather(
            *(h.client.post(CHAT, json=_body(CHAT, max_tokens=64)) for _ in range(streams))
        )
        assert h.in_flight("slow") == 0 and h.runtime.routing.shares.in_flight("slow") == 0
        assert all(r.status_code == 200 for r in rs)
        return [r.text for r in rs]


def _cut(text: str) -> bool:
    last = _data(text)[-1]
    if "error" in last:
        assert "too slow" in last["error"]["message"]
        return True
    assert last["mesh"]["node_id"] == "slow" and last["usage"]["completion_tokens"] == 40
    return False


async def test_another_replicas_requests_on_a_node_share_its_floor(tmp_path: Path) -> None:
    """A node serving 4 streams at 0.4 events/s each (1.6/s in all), one through this
    replica and 3 through another that publishes them: each is held to 1/4 of the floor
    of 1/s, so none is cut. Before: this replica saw 1 in flight and cut its stream."""
    (text,) = await _streams(tmp_path, streams=1, gap_s=1 / 0.4, slots=4, other_age_s=0.0)
    assert not _cut(text)


@pytest.mark.parametrize("other_age_s", [None, 10.0])
async def test_without_a_live_replicas_record_the_stream_is_held_to_the_whole_floor(
    tmp_path: Path, other_age_s: float | None
) -> None:
    """The same stream with no other replica, or one whose record is older than its
    ``dead_after_s`` (6 s; kept while the store cannot be read): cut as too slow."""
    (text,) = await _streams(tmp_path, 1, gap_s=1 / 0.4, slots=4, other_age_s=other_age_s)
    assert _cut(text)


async def test_a_node_declaring_one_slot_is_held_to_the_floor_per_stream(
    tmp_path: Path,
) -> None:
    """A node declaring 1 slot (and a queue of 8) that takes 4 streams and trickles them all
    at 0.4 events/s each streams no more than one at a time if honest: each is held to the
    whole floor and cut. Before: each was held to 1/4 of it (4 in flight) and none was cut;
    the same node declaring 4 slots is not cut (``test_hostile_node_streams``)."""
    texts = await _streams(tmp_path, streams=4, gap_s=1 / 1.6, slots=1)
    assert all(_cut(t) for t in texts)
    texts = await _streams(tmp_path / "four", streams=4, gap_s=1 / 1.6, slots=4)
    assert not any(_cut(t) for t in texts)


async def test_each_replica_beat_tells_the_floor_what_the_others_have_in_flight(
    tmp_path: Path,
) -> None:
    """A request already in flight here: the other replica's requests at its node count from
    the beat that reads them (``Routing.refresh_shares``) until the beat that finds them gone."""
    clock = ManualClock()
    async with running(tmp_path, nodes=Nodes(), clock=clock) as h:
        await h.register("slow", max_concurrency=4, max_queue=0)
        routing, beat = h.runtime.routing, h.runtime.replicas
        assert beat is not None
        att = routing.begin("slow", MODEL)
        clock.advance(10.0)
        assert routing.shares.lost("slow", clock()) == 0.0  # alone so far
        await _other_replica(h, 0.0)  # 3 more there: each loses 3/4 of every second
        clock.advance(40.0)
        assert routing.shares.lost("slow", clock()) == pytest.approx(30.0)
        h.store.replicas.pop("replica-other")
        await beat.poll()  # gone: nothing more lost
        clock.advance(40.0)
        assert routing.shares.lost("slow", clock()) == pytest.approx(30.0)
        routing.finish(att, Outcome.CANCELLED)
