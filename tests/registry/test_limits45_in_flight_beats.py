"""limits45: a node's valid-beat count (limits44) was taken as each heartbeat began and given
back once it was refused for its credential, so a stranger's forged or replayed beats for a
node, in flight at once while their key read or sequence write was awaited, held units of
the node's count: an honest beat arriving then got 429. Now counted as the signature holds,
a copy or replay of a message counted not at all (``registry/valid_rates.py``). The real app
and ``SignedNodeAuth``; the store's key read or sequence write held open by a gate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.core.ratelimit import RateLimiter
from LLM_Mesh.errors import BadSignature, RateLimited, ReplayedMessage
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeKeyRecord
from LLM_Mesh.registry.valid_rates import ValidBeats, beats_per_min
from tests.registry.node_auth_mesh import Node, Wall, make_node, mesh, operator
from tests.registry.test_registration_signature_tries import STRANGER, _forged, _from

BOUND = beats_per_min(10.0)
HOME = ("198.51.100.20", 5000)
IN_FLIGHT = BOUND + 6  # more than the node's whole bound at once


class Gated(MemoryStore):
    """A store whose key reads (``keys``) or sequence writes (``seqs``), as the registry
    batches them (``heartbeat_writes.SeqBatcher``), wait on ``gate`` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.keys = self.seqs = False

    async def _hold(self) -> None:
        if self.gate is not None:
            await self.gate.wait()

    async def get_node_keys(self, node_ids: Sequence[str]) -> dict[str, NodeKeyRecord]:
        if self.keys:
            await self._hold()
        return await super().get_node_keys(node_ids)

    async def advance_node_seqs(self, items: Sequence[tuple[str, int]]) -> dict[str, str]:
        if self.seqs:
            await self._hold()
        return await super().advance_node_seqs(items)


def _beat(node: Node) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"in_flight": 1}).encode()
    return body, node.headers(MessageKind.HEARTBEAT, body)


async def _send(c: httpx.AsyncClient, node: Node, body: bytes, headers: dict[str, str]) -> int:
    r = await c.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers)
    return r.status_code


async def _settled() -> None:
    """Until every request sent has gone as far as it goes before the gate opens."""
    for _ in range(3000):
        await asyncio.sleep(0)


async def _honest_beat_beside(store: Gated, tmp_path: Path, wall: Wall, mode: str) -> None:
    """``IN_FLIGHT`` messages of the stranger's kind ``mode`` held in the store, then the
    node's own beat from its home: it must not be 429; the stranger's all refused (or,
    for copies of a message the node never sent here, one of them taken as the node's)."""
    async with await mesh(tmp_path, store, wall) as h, _from(h.app, HOME) as home:
        node = make_node(wall, await operator(store))
        r = await home.post(
            "/mesh/nodes", content=node.body(), headers=node.reg_headers(node.body())
        )
        assert r.status_code == 200, r.text
        body, seen = _beat(node)
        assert await _send(home, node, body, seen) == 200  # one message counted here
        unseen = node.headers(MessageKind.HEARTBEAT, body)  # signed, never sent (another replica's)
        if mode == "forged":  # the key out of memory: each forgery awaits its read
            h.runtime.node_auth.forget(node.node_id)
            store.keys = True
        else:
            store.seqs = True
        store.gate = gate = asyncio.Event()
        async with _from(h.app, STRANGER) as stranger:
            sent = {
                "forged": lambda: _forged(node.headers(MessageKind.HEARTBEAT, body)),
                "replayed": lambda: seen,
                "copied": lambda: unseen,
            }[mode]
            theirs = [
                asyncio.create_task(_send(stranger, node, body, sent())) for _ in range(IN_FLIGHT)
            ]
            await _settled()
            assert sum(not t.done() for t in theirs) >= BOUND - 1  # held in the store
            ours = asyncio.create_task(_send(home, node, *_beat(node)))
            await _settled()
            gate.set()
            codes = await asyncio.gather(*theirs)
            assert await ours == 200  # failed before: 429 (their units held)
        if mode == "copied":  # the node's own message, once; its copies refused
            assert sorted(codes) == [200] + [401] * (IN_FLIGHT - 1), str(codes)
        else:
            assert set(codes) == {401}, codes


async def test_attack_forged_beats_in_flight_make_no_honest_beat_429(tmp_path: Path) -> None:
    await _honest_beat_beside(Gated(), tmp_path, Wall(), "forged")


async def test_attack_replayed_beats_in_flight_make_no_honest_beat_429(tmp_path: Path) -> None:
    await _honest_beat_beside(Gated(), tmp_path, Wall(), "replayed")


async def test_attack_copies_of_one_unseen_message_in_flight_count_once(tmp_path: Path) -> None:
    """A message the node signed and sent elsewhere (another replica), captured and sent
    here ``IN_FLIGHT`` times at once: counted once (the highest sequence number counted
    moves past it), the node's own beat still fits."""
    await _honest_beat_beside(Gated(), tmp_path, Wall(), "copied")


# -- the count, as the routes drive it (pure: a limiter and a clock value) --------------


def _beats(limiter: RateLimiter) -> ValidBeats:
    return ValidBeats(limiter, 0.0, 10.0)


def test_a_message_counts_once_as_its_signature_holds_and_is_given_back_if_refused() -> None:
    limiter = RateLimiter()
    one = _beats(limiter)
    one.signed("n", 5)
    one.held("n")  # counted once, not twice
    tries = limiter.per_id("valid-beat", BOUND)
    assert tries.wait("n", 0.0) == 0 and tries.seq("n") == 5
    copy = _beats(limiter)
    copy.signed("n", 5)  # a copy: not counted
    copy.refused(ReplayedMessage("replayed"))
    assert tries.seq("n") == 5  # the store holds one as high: copies still not counted
    for seq in range(6, 6 + BOUND - 1):
        _beats(limiter).signed("n", seq)
    try:
        _beats(limiter).signed("n", 100)
    except RateLimited as exc:
        assert exc.retry_after is not None and exc.retry_after >= 1
    else:
        raise AssertionError("the bound's next message was counted")
    late = _beats(limiter)
    late.check("m")  # another id: its own count
    late.signed("m", 1)
    late.refused(BadSignature("refused after its signature: the store said no"))
    assert tries.seq("m") is None  # a refusal other than a replay holds nothing back
    assert tries.wait("m", 0.0) == 0


def test_a_message_no_signature_counted_is_counted_when_it_held() -> None:
    """An authenticator that checks no signature (``held`` alone), and a message at or
    below the highest counted that the store took after all: counted at the end."""
    limiter = RateLimiter()
    for _ in range(BOUND):
        _beats(limiter).held("n")
    try:
        _beats(limiter).held("n")
    except RateLimited:
        pass
    else:
        raise AssertionError("past the bound")
    _beats(limiter).signed("m", 3)
    after = _beats(limiter)
    after.signed("m", 3)  # not counted as signed...
    after.held("m")  # ...counted as it held: two counted
    for _ in range(BOUND - 2):
        _beats(limiter).held("m")
    try:
        _beats(limiter).held("m")
    except RateLimited:
        pass
    else:
        raise AssertionError("past the bound")
