"""Replicas on one store route to the same nodes (``node_sync.py``) and share one health
pass (``StoreHealthLeases``): two apps on one store are two replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_sync import NodeSync
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNodes, Harness, running
from tests.registry.test_shared_idempotency import two_replicas

CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


async def test_a_node_registered_at_one_replica_routes_at_the_other(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await b.app.state.node_sync.stop()  # its 1 s loop could poll first on a loaded box
        await a.register("n1")
        r = await b.client.post(CHAT, json=BODY)
        assert r.status_code == 503  # b has not polled the store yet
        assert await b.app.state.node_sync.poll() >= 1
        r = await b.client.post(CHAT, json=BODY)
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "n1"
        await b.app.state.node_sync.poll()  # applying it again changes nothing:
        assert b.table.healthy(b.table.get("n1"))  # type: ignore[arg-type]


async def test_an_https_node_registered_at_one_replica_is_pinned_at_the_other(
    tmp_path: Path, store_url: str | None
) -> None:
    """Found deploying two replicas behind nginx (docs/deploy.md): the nodes registered and
    beat at the first replica only, so the second routed them unpinned and every request
    it took failed (``ClientConnectorCertificateError``, 502). The pin comes with the
    registration through the store, at start and by the poll."""
    fp, url, ca = "ab" * 32, "https://n1.example:8801", "https://n2.example:8801"
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1", url=url, tls_fingerprint=fp)
        await a.register("n2", url=ca)  # https with a CA-issued certificate: no pin
        assert await b.app.state.node_sync.poll() >= 2
        assert b.runtime.pins.fingerprint(url + "/v1/completions") == fp
        assert b.runtime.pins.host_fingerprint("n1.example", 8801) == fp
        assert b.runtime.pins.registered(ca) and b.runtime.pins.fingerprint(ca) is None
        # a new certificate, registered at a: b pins the new one
        await a.register("n1", url=url, tls_fingerprint="cd" * 32)
        await b.app.state.node_sync.poll()
        assert b.runtime.pins.fingerprint(url) == "cd" * 32
        # its heartbeat at b is taken, not refused for an unknown pin
        assert (await b.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200


async def test_heartbeats_at_one_replica_keep_the_node_alive_at_the_other(tmp_path: Path) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register("n1")
        sync = b.app.state.node_sync
        # the test polls b itself: b's own 1 s poll, landing after the clock's advance on a
        # loaded box, would hear the node again (it failed so twice: 200 instead of 503)
        await sync.stop()
        await sync.poll()
        b.clock.advance(b.settings.heartbeat_expiry_s + 1)  # b heard nothing for too long
        assert not b.table.healthy(b.table.get("n1"))  # type: ignore[arg-type]
        assert (await b.client.post(CHAT, json=BODY)).status_code == 503
        hb = await a.client.post("/mesh/nodes/n1/heartbeat", json={"in_flight": 0})
        assert hb.status_code == 200
        await a.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
        await sync.poll()
        assert b.table.healthy(b.table.get("n1"))  # type: ignore[arg-type]
        assert (await b.client.post(CHAT, json=BODY)).status_code == 200
        # a paused node, heard at a, is paused at b
        await a.client.post("/mesh/nodes/n1/heartbeat", json={"state": "paused"})
        await a.runtime.heartbeats.flush()  # type: ignore[union-attr]
        b.clock.advance(1)
        await sync.poll()
        assert (await b.client.post(CHAT, json=BODY)).status_code == 503


async def test_a_429_at_the_replica_the_node_does_not_beat_to_ends_with_its_next_beat(
    tmp_path: Path,
) -> None:
    # found by the soak's reading of the router: the 429 marked the node full at b, and
    # only a heartbeat *at b* cleared it; the node beats to a, so b answered 429 for good
    async with two_replicas(tmp_path) as (a, b):
        node = await a.register("n1")
        sync = b.app.state.node_sync
        await sync.stop()  # the test polls b itself
        await sync.poll()
        node.behavior, node.retry_after = "429", "1"
        assert (await b.client.post(CHAT, json=BODY)).status_code == 429  # the node's
        node.behavior = "ok"  # its queue drained
        calls = len(node.calls)
        assert (await b.client.post(CHAT, json=BODY)).status_code == 429  # b: "saturated"
        assert len(node.calls) == calls  # b did not try it
        b.clock.advance(2)
        a.clock.advance(2)
        hb = await a.client.post("/mesh/nodes/n1/heartbeat", json={"in_flight": 0})
        assert hb.status_code == 200
        await a.runtime.heartbeats.flush()  # type: ignore[union-attr]
        await sync.poll()
        r = await b.client.post(CHAT, json=BODY)
        assert r.status_code == 200, r.text


async def test_a_goodbye_at_one_replica_takes_the_node_out_everywhere(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1")
        await a.register("n2")
        await b.app.state.node_sync.poll()
        assert (await a.client.delete("/mesh/nodes/n1")).status_code == 204
        await b.app.state.node_sync.poll()
        for _ in range(5):
            r = await b.client.post(CHAT, json=BODY)
            assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "n2"
        # and a late heartbeat at b cannot bring it back
        assert (await b.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 404


async def test_the_health_pass_checks_each_node_once_across_replicas(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        ha: HealthChecker = a.app.state.health
        hb: HealthChecker = b.app.state.health
        # the test runs every pass itself: the replicas' own loops would race it (a's sweep,
        # every heartbeat interval, rechecks the failed n2 and holds its lease meanwhile,
        # so b's pass rightly skips it: on a loaded box the test outlived that interval)
        await ha.stop()
        await hb.stop()
        for n in ("n1", "n2", "n3"):
            await a.register(n)
        await b.app.state.node_sync.poll()
        a.nodes.nodes["n2:8801"].health_ok = False
        first = await ha.run_pass()
        second = await hb.run_pass()
        assert sorted(r["node_id"] for r in first) == ["n1", "n2", "n3"]
        # a holds the healthy nodes' leases this interval; a failed node is free to recheck
        assert [r["node_id"] for r in second] == ["n2"]
        # the failed check reaches b through the store: n2 leaves b's routing too
        await b.app.state.node_sync.poll()
        assert b.table.get("n2").check_failed  # type: ignore[union-attr]
        seen = {(await b.client.post(CHAT, json=BODY)).json()["mesh"]["node_id"] for _ in range(8)}
        assert "n2" not in seen
        # a failed node's lease is free: the first replica to sweep rechecks it (here b,
        # as if a could not reach the node); once it is back, everyone routes it
        a.nodes.nodes["n2:8801"].health_ok = True
        assert [(r["node_id"], r["ok"]) for r in await hb.recheck_failed()] == [("n2", True)]
        assert not b.table.get("n2").check_failed  # type: ignore[union-attr]
        assert await ha.recheck_failed() == []  # b holds the recheck's lease
        await a.app.state.node_sync.poll()
        assert not a.table.get("n2").check_failed  # type: ignore[union-attr]
        # an admin's pass (POST /mesh/health-check) checks every node, lease or not
        assert len(await hb.run_pass(force=True)) == 3


async def test_a_killed_replica_s_leases_do_not_keep_the_nodes_unchecked(
    tmp_path: Path, store_url: str | None
) -> None:
    # a replica killed (SIGKILL, a crash; or stopped for a rolling restart) just after it
    # claimed a pass's leases never checks those nodes. Found 2026-12-03: its leases held
    # for 0.81 of the pass interval (about 4 min of 5), so the others' passes skipped the
    # nodes: a node that broke meanwhile was not checked for up to two intervals. A lease
    # whose holder no longer beats (``ReplicaBeat.dead_after_s``) is free now; a live
    # replica's lease is still its own.
    async with two_replicas(tmp_path, store_url) as (a, b):
        ha: HealthChecker = a.app.state.health
        hb: HealthChecker = b.app.state.health
        await ha.stop()
        await hb.stop()
        for n in ("n1", "n2", "n3"):
            await a.register(n)
        await b.app.state.node_sync.poll()
        shared = ha.leases.store  # type: ignore[union-attr]
        now = datetime.now(timezone.utc)
        # n1, n2: leased by a replica that was killed right after (it never beats again)
        taken = await shared.claim_health_checks(
            ["n1", "n2"], "replica-killed", now, now + timedelta(seconds=240)
        )
        assert sorted(taken) == ["n1", "n2"]
        assert await ha.leases.claim(["n3"], 240) == {"n3"}  # type: ignore[union-attr]
        checked = sorted(r["node_id"] for r in await hb.run_pass())
        assert checked == ["n1", "n2"]  # before: [] (n3 is a's, alive: skipped)


@asynccontextmanager
async def _n1_failed_at_a(
    tmp_path: Path, store_url: str | None
) -> AsyncIterator[tuple[Harness, Harness, HealthChecker, NodeSync]]:
    """Two replicas whose loops are stopped (the test runs checks and polls by hand); ``n1``
    registered at ``a``, seen by ``b``'s poll, then failed by ``a``'s check pass. Yields
    ``a``, ``b``, ``b``'s checker and ``b``'s node sync."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        ha: HealthChecker = a.app.state.health
        hb: HealthChecker = b.app.state.health
        await ha.stop()
        await hb.stop()
        await a.register("n1")
        sync: NodeSync = b.app.state.node_sync
        await sync.stop()
        await sync.poll()
        a.nodes.nodes["n1:8801"].health_ok = False
        assert [r["ok"] for r in await ha.run_pass()] == [False]
        yield a, b, hb, sync


async def _told(h: Harness, node_id: str = "n1") -> Any:
    """The ``health`` of a heartbeat answer from ``h`` (``None``: none said)."""
    r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json={})
    assert r.status_code == 200, r.text
    return r.json().get("health")


async def test_every_replica_tells_the_node_why_and_since_when_its_checks_fail(
    tmp_path: Path, store_url: str | None
) -> None:
    # found 2026-12-03: the store shared the result only; a node heartbeating to a replica
    # that had not checked it was told it failed with no reason, and since that replica's
    # poll read the row, not since the check (``llm-mesh node info``, the node's log)
    async with _n1_failed_at_a(tmp_path, store_url) as (a, b, hb, sync):
        at_a = await _told(a)
        assert at_a["ok"] is False and at_a["why"] == "HTTP 503"
        await sync.poll()
        at_b = await _told(b)
        assert (at_b["ok"], at_b["since"], at_b["why"]) == (False, at_a["since"], "HTTP 503")
        # b rechecks it (a failed node's lease is free): still failing, since stays
        assert [r["ok"] for r in await hb.recheck_failed()] == [False]
        await a.app.state.node_sync.poll()
        for h in (a, b):
            told = await _told(h)
            assert (told["ok"], told["since"], told["why"]) == (False, at_a["since"], "HTTP 503")
        # it passes at b: a says since when, with no reason
        a.nodes.nodes["n1:8801"].health_ok = True
        assert [r["ok"] for r in await hb.recheck_failed()] == [True]
        passed = await _told(b)
        assert passed["ok"] is True and passed["since"] > at_a["since"] and "why" not in passed
        await a.app.state.node_sync.poll()
        at_a = await _told(a)
        assert (at_a["ok"], at_a["since"], at_a.get("why")) == (True, passed["since"], None)


async def test_a_restarted_replica_keeps_what_the_checks_found(
    tmp_path: Path, store_url: str | None
) -> None:
    nodes, memory = FakeNodes(), MemoryStore()

    def store() -> Any:
        return SqlStore(store_url) if store_url else memory

    async with running(tmp_path / "a", store=store(), nodes=nodes) as a:
        health: HealthChecker = a.app.state.health
        await health.stop()
        await a.register("n1")
        nodes.nodes["n1:8801"].health_ok = False
        assert [r["ok"] for r in await health.run_pass()] == [False]
        before = await _told(a)
    async with running(tmp_path / "a2", store=store(), nodes=nodes) as again:
        await again.app.state.health.stop()
        after = await _told(again)  # before any check or poll here
        assert (after["ok"], after["since"], after["why"]) == (False, before["since"], "HTTP 503")
        assert (await again.client.post(CHAT, json=BODY)).status_code == 503  # out of routing


class _Held:
    """The store as one poll sees it: what ``method`` returns is read, then the poll waits
    (``release``) before applying it, as a poll on a loaded box does."""

    def __init__(self, store: Any, method: str) -> None:
        self.store = store
        self.read = asyncio.Event()
        self.release = asyncio.Event()
        real = getattr(store, method)

        async def held(*args: Any) -> Any:
            rows = await real(*args)
            self.read.set()
            await self.release.wait()
            return rows

        setattr(self, method, held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_poll_that_read_an_older_check_does_not_undo_a_newer_local_one(
    tmp_path: Path, store_url: str | None
) -> None:
    async with _n1_failed_at_a(tmp_path, store_url) as (a, b, hb, sync):  # a's row: n1 failed
        await sync.poll()
        assert b.table.get("n1").check_failed  # type: ignore[union-attr]
        # b's poll reads a's row (failed); before it applies it, b finds n1 healthy again
        held = _Held(sync.store, "health_checks_since")
        sync.store = held
        poll = asyncio.create_task(sync.poll())
        await asyncio.wait_for(held.read.wait(), 10)
        a.nodes.nodes["n1:8801"].health_ok = True
        assert [(r["node_id"], r["ok"]) for r in await hb.recheck_failed()] == [("n1", True)]
        held.release.set()
        await poll
        assert not b.table.get("n1").check_failed  # type: ignore[union-attr]  # b's is newer
        assert (await b.client.post(CHAT, json=BODY)).status_code == 200
        # a newer row still applies: a finds it failed again, b follows at its next poll
        sync.store = held.store
        a.nodes.nodes["n1:8801"].health_ok = False
        await a.app.state.node_sync.poll()
        assert [r["ok"] for r in await a.app.state.health.run_pass(force=True)] == [False]
        await sync.poll()
        assert b.table.get("n1").check_failed  # type: ignore[union-attr]


async def test_demand_adds_the_other_replicas_counts(tmp_path: Path) -> None:
    async with two_replicas(tmp_path) as (a, b):
        r = await a.client.post(CHAT, json={**BODY, "model": "mistral-7b"})
        assert r.status_code in (404, 503)
        await a.runtime.replicas.poll()  # type: ignore[union-attr]
        await b.runtime.replicas.poll()  # type: ignore[union-attr]
        rows = (await b.client.get("/mesh/demand")).json()["models"]
        refused = {row["model"]: row["requests_refused"] for row in rows}
        assert refused.get("mistral-7b") == 1  # refused at a, reported by b
        own = (await a.client.get("/mesh/demand")).json()["models"]
        assert {row["model"]: row["requests_refused"] for row in own}["mistral-7b"] == 1


# -- a goodbye stays a goodbye (the setup script's e2e test failed once on this) -----------


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def one_store(request: pytest.FixtureRequest) -> Any:
    """A lone registry's store where its node poll runs: a MemoryStore, or PostgreSQL (a
    registry on SQLite runs alone, with no node poll: ``SqlStore.shares_replicas``)."""
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(request.getfixturevalue("pg_database_url"))


async def _listed(h: Harness) -> list[tuple[str, bool]]:
    r = await h.client.get("/mesh/nodes")
    assert r.status_code == 200, r.text
    return [(n["state"], n["healthy"]) for n in r.json()["nodes"]]


async def test_a_poll_that_read_a_node_before_its_goodbye_does_not_bring_it_back(
    tmp_path: Path, one_store: Any
) -> None:
    async with running(tmp_path, store=one_store) as a:
        await a.register("n1")
        sync = a.app.state.node_sync
        await sync.stop()  # this test polls by hand
        held = _Held(sync.store, "nodes_changed_since")
        sync.store = held
        poll = asyncio.create_task(sync.poll())
        await asyncio.wait_for(held.read.wait(), 10)  # it read n1 online (registered < 5 s ago)
        assert (await a.client.delete("/mesh/nodes/n1")).status_code == 204
        held.release.set()
        await poll
        assert await _listed(a) == [("offline", False)]
        assert (await a.client.post(CHAT, json=BODY)).status_code == 503
        # the next poll reads the store again: still gone; a new registration brings it back
        sync.store = held.store
        await sync.poll()
        assert await _listed(a) == [("offline", False)]
        await a.register("n1")
        await sync.poll()
        assert await _listed(a) == [("online", True)]


class _SlowGoodbye:
    """The store with ``set_node_state`` held until ``release``: a goodbye whose write is
    still on its way when a poll reads the node and applies what it read."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def set_node_state(self, node_id: str, state: str) -> bool:
        self.writing.set()
        await self.release.wait()
        return await self.store.set_node_state(node_id, state)  # type: ignore[no-any-return]


async def test_a_poll_while_the_goodbye_is_written_does_not_bring_the_node_back(
    tmp_path: Path, one_store: Any
) -> None:
    async with running(tmp_path, store=one_store) as a:
        await a.register("n1")
        sync = a.app.state.node_sync
        await sync.stop()
        slow = _SlowGoodbye(a.runtime.store)
        a.runtime.store = slow
        goodbye = asyncio.create_task(a.client.delete("/mesh/nodes/n1"))
        await asyncio.wait_for(slow.writing.wait(), 10)
        await sync.poll()  # reads n1 online: its goodbye is not in the store yet
        slow.release.set()
        assert (await goodbye).status_code == 204
        assert await _listed(a) == [("offline", False)]
        await sync.poll()
        assert await _listed(a) == [("offline", False)]


async def test_a_heartbeat_written_after_the_goodbye_does_not_bring_the_node_back(
    tmp_path: Path, one_store: Any
) -> None:
    async with running(tmp_path, store=one_store) as a:
        await a.register("n1")
        sync = a.app.state.node_sync
        await sync.stop()
        writer = a.runtime.heartbeats
        assert writer is not None
        touch, release = writer._touch, asyncio.Event()

        async def held_touch(*args: Any) -> None:
            await release.wait()
            await touch(*args)

        writer._touch = held_touch
        # a heartbeat answered just before the goodbye: its store write is behind the answer
        assert (await a.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert (await a.client.delete("/mesh/nodes/n1")).status_code == 204
        release.set()
        await writer.flush()  # the heartbeat's write lands after the goodbye's
        await sync.poll()  # the goodbye's row: changed, so read (it said online here)
        assert await _listed(a) == [("offline", False)]
        stored = await one_store.get_node("n1")
        assert stored is not None and stored.state == "offline"
        # the node, still up, heartbeats: told to register again, and it comes back
        assert (await a.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 404
        await a.register("n1")
        assert (await a.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert await _listed(a) == [("online", True)]


async def test_a_node_that_said_goodbye_at_one_replica_rejoins_through_the_other(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1")
        await b.app.state.node_sync.stop()
        await b.app.state.node_sync.poll()
        assert (await b.client.delete("/mesh/nodes/n1")).status_code == 204
        await a.app.state.node_sync.poll()
        assert await _listed(a) == [("offline", False)]
        await a.register("n1")  # it restarts, and registers at a
        await b.app.state.node_sync.poll()
        assert await _listed(b) == [("online", True)]


async def test_a_poll_after_the_clock_moved_does_not_bring_back_a_node_not_heard_since(
    tmp_path: Path,
) -> None:
    """CI, 2026-12-06 (``test_parse_served_context``: 200 instead of 400): the harness's
    table clock stands still while the stored stamps are real wall-clock times, so a poll
    landing between a test's advance past the expiry and its request read the node's
    registration, a moment old on the wall clock, as a heartbeat heard just now."""
    async with running(tmp_path) as h:
        sync = h.app.state.node_sync
        await sync.stop()  # the test polls itself, where the 1 s poll may land
        await h.register("n1")
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # n1 heard nothing since
        await sync.poll()
        assert not h.table.healthy(h.table.get("n1"))  # type: ignore[arg-type]
        assert (await h.client.post(CHAT, json=BODY)).status_code == 503


async def test_a_replica_whose_clock_moved_reads_older_rows_as_old(tmp_path: Path) -> None:
    """At the other replica too: a node it had heard before its clock's advance stays out
    after its next poll, and so does one registered then but read only now; a heartbeat
    written after the advance is heard as new."""
    async with two_replicas(tmp_path) as (a, b):
        sync = b.app.state.node_sync
        await sync.stop()
        await a.register("n1")
        await sync.poll()
        await a.register("n2", models=["qwen2.5-0.5b"])  # read by b only after its advance
        b.clock.advance(b.settings.heartbeat_expiry_s + 1)
        await sync.poll()
        for node in ("n1", "n2"):
            assert not b.table.healthy(b.table.get(node)), node  # type: ignore[arg-type]
        assert (await b.client.post(CHAT, json=BODY)).status_code == 503
        assert (await a.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        await a.runtime.heartbeats.flush()  # type: ignore[union-attr]
        await sync.poll()
        assert (await b.client.post(CHAT, json=BODY)).status_code == 200


async def test_a_wall_clock_stepped_back_does_not_bring_back_a_node_heard_before(
    tmp_path: Path,
) -> None:
    """Found with the harness's fix above (sync39): a replica's wall clock stepped back
    (NTP, a VM resumed) widened the poll's window as far back, and every row in it, its
    stamp now in the future, was read as heard now, at every poll until the clock caught
    up: a node gone long since was routed again. A stamp read before is not read again
    (and a row the store stamped is aged on the store's clock, migration 0033)."""
    async with running(tmp_path) as h:
        await h.app.state.node_sync.stop()
        store_now = [time.time()]
        h.store.store_clock = lambda: store_now[0]
        await h.register("n1")
        wall = [time.time()]
        sync = NodeSync(
            h.store, h.table, h.runtime.routing, wall_clock=lambda: wall[0],
            transport=h.settings.node_transport,
        )  # fmt: skip
        assert await sync.poll() >= 1  # n1's registration: heard when it registered
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # every clock moves on
        wall[0] += h.settings.heartbeat_expiry_s + 1
        store_now[0] += h.settings.heartbeat_expiry_s + 1
        await sync.poll()
        assert not h.table.healthy(h.table.get("n1"))  # type: ignore[arg-type]
        wall[0] -= 3600.0  # stepped back an hour
        await sync.poll()
        await sync.poll()  # its window now reaches an hour back, to n1's registration
        assert not h.table.healthy(h.table.get("n1"))  # type: ignore[arg-type]
        assert (await h.client.post(CHAT, json=BODY)).status_code == 503
