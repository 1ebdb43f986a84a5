"""attack44: a node's own heartbeats (signed by its key: a dishonest operator) against the
heartbeat's fields and the store's stamps (``keyed_age_s``; clock43's store stamps, less the
writer queue's wait: ``core/store_heard.py``, ``registry/heartbeat_writes.py``). Each held; see
docs/security.md's "(held, 2026-12-07, attack44)" rows."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness
from tests.registry.node_auth_mesh import NOW, Node, Wall, beat, make_node, mesh, operator, register


async def _beat_raw(h: Harness, node: Node, raw: bytes) -> httpx.Response:
    return await h.client.post(
        f"/mesh/nodes/{node.node_id}/heartbeat",
        content=raw,
        headers=node.headers(MessageKind.HEARTBEAT, raw),
    )


@pytest.mark.parametrize(
    "value",
    [b"-1", b"-0.000001", b"1e300", b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity",
     b"2147483648", b'"NaN"', b'"-1"', b"[1]", b"{}"],
)  # fmt: skip
async def test_attack_keyed_age_out_of_range_is_refused_and_changes_nothing(
    tmp_path: Path, value: bytes
) -> None:
    """Huge, negative, NaN and infinite ``keyed_age_s`` (raw JSON: ``NaN``, ``1e999``),
    and other types (a number in a string, ``"5"``, is read as 5, as pydantic's lax mode
    does: what the node could send as a number, no gain): 400 naming the field; the node's row, its keyed time and its place in
    the table as they were (no aged or revived node, no 500)."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        assert (await beat(h, node, {"in_flight": 0, "keyed_age_s": 3.0})).status_code == 200
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        row = store.nodes[node.node_id]
        before = (row.state, row.last_heartbeat_at, store.keyed_at.get(node.node_id))
        r = await _beat_raw(h, node, b'{"in_flight": 0, "keyed_age_s": ' + value + b"}")
        assert r.status_code == 400, r.text
        assert "keyed_age_s" in r.text, r.text
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        row = store.nodes[node.node_id]
        assert (row.state, row.last_heartbeat_at, store.keyed_at.get(node.node_id)) == before
        assert h.table.get(node.node_id) is not None
        assert (await beat(h, node)).status_code == 200  # and it beats on


async def test_attack_the_nodes_clock_stamps_nothing_and_a_replay_is_refused(
    tmp_path: Path,
) -> None:
    """A node whose clock reads 100 s behind (within the signatures' ±120 s) or 119 s ahead:
    its row is stamped by the registry's clock, not the node's (it cannot age itself, nor
    stay fresh by a clock ahead); past 120 s refused; the same message sent again refused
    (its sequence number taken), a lower sequence number after a higher one refused."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node_wall = Wall()
        node = make_node(node_wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        for skew in (-100.0, 119.0):
            node_wall.now = NOW + skew
            before = datetime.now(timezone.utc)
            assert (await beat(h, node)).status_code == 200
            await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
            at = store.nodes[node.node_id].last_heartbeat_at
            assert before <= at <= datetime.now(timezone.utc), (skew, at)
        for skew in (-121.0, 121.0):
            node_wall.now = NOW + skew
            assert (await beat(h, node)).status_code == 401
        node_wall.now = NOW
        body = json.dumps({"in_flight": 0}).encode()
        headers = node.headers(MessageKind.HEARTBEAT, body)
        url = f"/mesh/nodes/{node.node_id}/heartbeat"
        first = await h.client.post(url, content=body, headers=headers)
        again = await h.client.post(url, content=body, headers=headers)
        assert first.status_code == 200 and again.status_code == 401, again.text
        assert again.json()["error"]["code"] == "replayed_message"


async def test_attack_a_goodbye_then_heartbeats_do_not_revive_it(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        r = await h.client.request(
            "DELETE", f"/mesh/nodes/{node.node_id}", content=b"",
            headers=node.headers(MessageKind.DEREGISTER, b""),
        )  # fmt: skip
        assert r.status_code == 204, r.text
        for _ in range(3):
            r = await beat(h, node, {"in_flight": 0, "state": "online"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]
        assert store.nodes[node.node_id].state == "offline"


async def test_attack_a_flood_of_one_nodes_heartbeats_writes_one_row_a_batch(
    tmp_path: Path,
) -> None:
    """200 valid heartbeats of one node at once, beside another node's one: each answered
    (its sequence numbers taken: the lower ones of a batch stale, 401; past the node's bound,
    429 before the verify since limits44: ``test_limits44_valid_beats.py``), the other
    node's 200, and the store's writes one row per node per batch (the flood does not
    multiply the writer's work)."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        token = await operator(store)
        flooder, other = make_node(wall, token), make_node(wall, token)
        for n in (flooder, other):
            assert (await register(h, n)).status_code == 200
        writer = h.runtime.heartbeats
        assert writer is not None
        await writer.flush()
        touch, rows = writer._touch, []

        async def counted(batch: list[Any], *args: Any, **kw: Any) -> None:
            rows.append([item[0] for item in batch])
            await touch(batch, *args, **kw)

        writer._touch = counted
        answers = await asyncio.gather(
            *(beat(h, flooder, {"in_flight": 0}) for _ in range(200)), beat(h, other)
        )
        assert answers[-1].status_code == 200
        codes = {r.status_code for r in answers[:-1]}
        assert codes <= {200, 401, 429} and 200 in codes
        await writer.flush()
        assert rows and all(len(b) == len(set(b)) <= 2 for b in rows), rows
