"""The active health checker and the expiry sweep."""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.health_proof import Challenge, HealthProver, health_bytes, parse_challenge
from LLM_Mesh.core.identity import (
    HDR_OPERATOR_TOKEN,
    MessageKind,
    NodeSigner,
    encode_public_key,
    node_id_for,
    public_key_of,
)
from LLM_Mesh.core.schemas import NodeRegistration, NodeState
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_client_httpx import HttpxNodeClient
from LLM_Mesh.registry.node_table import NodeTable
from tests.registry.helpers import ADMIN, FakeNodes, ManualClock, registration, running


def _table(clock: ManualClock, *ids: str) -> NodeTable:
    t = NodeTable(30.0, clock)
    for i in ids:
        t.register(NodeRegistration(node_id=i, url=f"http://{i}", models=[{"id": "m"}]))  # type: ignore[list-item]
    return t


def _checker(table: NodeTable, handler: httpx.MockTransport, **kw: object) -> HealthChecker:
    client = HttpxNodeClient(httpx.AsyncClient(transport=handler))
    return HealthChecker(table, lambda: client, interval_s=300, sweep_interval_s=10, **kw)  # type: ignore[arg-type]


async def test_pass_marks_failed_and_recovers() -> None:
    clock = ManualClock()
    table = _table(clock, "a", "b", "c")
    table.set_state("c", NodeState.OFFLINE)
    down = {"b"}
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.host)
        if req.url.host in down:
            raise httpx.ConnectError("refused", request=req)
        return httpx.Response(200, json={"status": "ok"})

    checker = _checker(table, httpx.MockTransport(handler))
    results = await checker.run_pass()
    assert sorted(seen) == ["a", "b"]  # offline nodes are not checked
    assert [(r["node_id"], r["ok"]) for r in results] == [("a", True), ("b", False)]
    assert "ConnectError" in str(results[1]["error"])
    assert table.models_up() == ["m"]
    assert [e.node_id for e in table.healthy_entries_for("m")] == ["a"]
    down.clear()
    await checker.run_pass()
    assert sorted(e.node_id for e in table.healthy_entries_for("m")) == ["a", "b"]


async def test_concurrency_is_bounded() -> None:
    import asyncio

    clock = ManualClock()
    table = _table(clock, *[f"n{i}" for i in range(10)])
    active = 0
    peak = 0

    async def handler(req: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1
        return httpx.Response(200)

    checker = _checker(table, httpx.MockTransport(handler), concurrency=3)
    assert len(await checker.run_pass()) == 10
    assert peak <= 3


def test_jitter_stays_within_bounds() -> None:
    table = _table(ManualClock())
    checker = _checker(
        table, httpx.MockTransport(lambda r: httpx.Response(200)), rng=random.Random(1)
    )
    delays = [checker.next_delay() for _ in range(200)]
    assert all(270 <= d <= 330 for d in delays)
    assert len(set(delays)) > 1


def test_sweep_reports_expired_once() -> None:
    clock = ManualClock()
    table = _table(clock, "a")
    checker = _checker(table, httpx.MockTransport(lambda r: httpx.Response(200)))
    assert checker.sweep() == []
    clock.advance(31)
    assert checker.sweep() == ["a"]
    assert checker.sweep() == []


def test_bad_arguments_raise() -> None:
    table = _table(ManualClock())
    with pytest.raises(ValueError):
        _checker(table, httpx.MockTransport(lambda r: httpx.Response(200)), concurrency=0)


async def _timed_pass(n: int) -> tuple[float, list[dict[str, object]], list[str]]:
    import time

    clock = ManualClock()
    table = _table(clock, *[f"h{i}" for i in range(n)])
    changed: list[str] = []
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"status": "ok"}))
    client = HttpxNodeClient(httpx.AsyncClient(transport=transport))
    checker = HealthChecker(
        table, lambda: client, interval_s=300, sweep_interval_s=10, on_change=changed.append
    )
    t0 = time.perf_counter()
    results = await checker.run_pass()
    elapsed = time.perf_counter() - t0
    await client.aclose()
    return elapsed, results, changed


async def test_a_pass_over_ten_thousand_hosts_is_linear() -> None:
    """10,000 hosts all pass, and the pass grows linearly: timed against 1,000 hosts in the
    same test (a ratio, so a loaded machine or a line tracer slows both alike). Linear is
    10x; a pass that scanned the table per host would be 100x."""
    small, _, _ = await _timed_pass(1_000)
    elapsed, results, changed = await _timed_pass(10_000)
    assert len(results) == 10_000 and all(r["ok"] for r in results)
    assert elapsed / small < 30, f"1,000 hosts {small:.2f} s, 10,000 hosts {elapsed:.2f} s"
    assert changed == []  # nothing changed liveness


async def test_failed_nodes_are_rechecked_without_waiting_for_the_next_pass() -> None:
    clock = ManualClock()
    table = _table(clock, "a", "b")
    down = {"b"}
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.host)
        if req.url.host in down:
            raise httpx.ConnectError("refused", request=req)
        return httpx.Response(200, json={"status": "ok"})

    checker = _checker(table, httpx.MockTransport(handler))
    await checker.run_pass()
    assert [e.node_id for e in table.healthy_entries_for("m")] == ["a"]
    seen.clear()
    assert [r["ok"] for r in await checker.recheck_failed()] == [False]
    assert seen == ["b"]  # only the failed node is checked again
    down.clear()
    assert [r["ok"] for r in await checker.recheck_failed()] == [True]
    assert sorted(e.node_id for e in table.healthy_entries_for("m")) == ["a", "b"]
    assert await checker.recheck_failed() == []


async def test_registering_again_does_not_clear_a_failed_check() -> None:
    """A node that fails its check (unreachable, or no proof by its key) registers again
    (its heartbeats and registrations go out from wherever it likes): it stays out of
    routing, and its heartbeats credit no uptime (``serving``: ``check_failed``), until a
    check passes; the sweep checks it again within a heartbeat interval (an honest node
    that restarted is back as soon)."""
    clock = ManualClock()
    table = _table(clock, "a", "b")
    down = {"b"}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host.rstrip("2") in down:
            return httpx.Response(503)
        return httpx.Response(200, json={"status": "ok"})

    checker = _checker(table, httpx.MockTransport(handler))
    await checker.run_pass()
    for _ in range(2):  # again, and again at another URL
        url = "http://b" if _ == 0 else "http://b2"
        table.register(NodeRegistration(node_id="b", url=url, models=[{"id": "m"}]))  # type: ignore[list-item]
        entry = table.get("b")
        assert entry is not None and entry.check_failed
        assert [e.node_id for e in table.healthy_entries_for("m")] == ["a"]
    assert [(r["node_id"], r["ok"]) for r in await checker.recheck_failed()] == [("b", False)]
    down.clear()
    table.register(NodeRegistration(node_id="b", url="http://b", models=[{"id": "m"}]))  # type: ignore[list-item]
    assert [r["ok"] for r in await checker.recheck_failed()] == [True]
    assert sorted(e.node_id for e in table.healthy_entries_for("m")) == ["a", "b"]


async def test_an_unexpected_error_in_one_check_does_not_lose_the_pass() -> None:
    clock = ManualClock()
    table = _table(clock, "a", "b")

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "b":
            raise RuntimeError("bug in a transport")
        return httpx.Response(200, json={"status": "ok"})

    checker = _checker(table, httpx.MockTransport(handler))
    results = await checker.run_pass()
    assert [(r["node_id"], r["ok"]) for r in results] == [("a", True), ("b", False)]
    assert "RuntimeError" in str(results[1]["error"])


async def test_the_periodic_pass_runs_its_upkeep_after_each_pass() -> None:
    """What the app hangs there (the pins of URLs no node has any more go) runs after each
    periodic pass, and an upkeep that fails does not stop the loop."""
    import asyncio

    table = _table(ManualClock(), "a")
    calls: list[int] = []

    def upkeep() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a bug")

    transport = httpx.MockTransport(lambda req: httpx.Response(200, json={"status": "ok"}))
    client = HttpxNodeClient(httpx.AsyncClient(transport=transport))
    checker = HealthChecker(
        table, lambda: client, interval_s=0.01, sweep_interval_s=10, jitter=0.0, after_pass=upkeep
    )
    checker.start()
    try:
        for _ in range(500):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await checker.stop()
    assert len(calls) >= 3


async def test_a_node_answering_as_another_node_fails_its_check() -> None:
    """One operator registers many node keys at one node's URL (or one server's paths):
    each id would be checked "healthy" there and credited uptime. A health answer naming
    another node fails the check (found 2026-12-02: any 200 passed, so N keys at one
    node earned N uptime rewards). An answer naming no node (an older or a fake one)
    passes as before."""
    clock = ManualClock()
    table = NodeTable(30.0, clock)
    for i in ("real", "extra1", "extra2", "quiet"):
        url = "http://quiet" if i == "quiet" else "http://shared"
        table.register(NodeRegistration(node_id=i, url=url, models=[{"id": "m"}]))  # type: ignore[list-item]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "quiet":
            return httpx.Response(200, json={"status": "ok"})
        return httpx.Response(200, json={"status": "ok", "node_id": "real"})

    results = await _checker(table, httpx.MockTransport(handler)).run_pass()
    assert {r["node_id"]: r["ok"] for r in results} == {
        "real": True, "extra1": False, "extra2": False, "quiet": True,
    }  # fmt: skip
    assert "answers as node real" in str({r["node_id"]: r for r in results}["extra1"]["error"])
    assert sorted(e.node_id for e in table.healthy_entries_for("m")) == ["quiet", "real"]


# --- signed health challenges (core/health_proof.py) -----------------------------------


def _signed_table(clock: ManualClock, ids: dict[str, str]) -> NodeTable:
    table = NodeTable(30.0, clock)
    for node_id, url in ids.items():
        table.register(NodeRegistration(node_id=node_id, url=url, models=[{"id": "m"}]))  # type: ignore[list-item]
    return table


def _signed_checker(
    table: NodeTable, handler: httpx.MockTransport, results: list[str]
) -> HealthChecker:
    return _checker(table, handler, registry_id="registry-test", on_result=results.append)


async def test_a_server_answering_for_node_ids_without_their_keys_fails_signed_checks() -> None:
    """One server (an operator's own, not the node software) answers ``/mesh/health`` for
    several registered ids, each at a path of its own, naming each id as asked: it holds
    none of their keys, so none of its answers carries a valid signature of the challenge,
    and none of those ids is healthy (found 2026-12-02: any 200 not naming another id
    passed, each id earning uptime). The real node, answering with its key, passes."""
    real = HealthProver(Ed25519PrivateKey.generate())
    fakes = [node_id_for(public_key_of(Ed25519PrivateKey.generate())) for _ in range(3)]
    ids = {real.node_id: "http://real", **{f: f"http://farm/{f}" for f in fakes}}
    table = _signed_table(ManualClock(), ids)
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.host == "real":
            proof = real.answer(req.headers, time.time())
            return httpx.Response(200, json={"node_id": real.node_id}, headers=proof)
        named = req.url.path.split("/")[1]  # the farm names whichever id the path is
        return httpx.Response(200, json={"status": "ok", "node_id": named})

    results: list[str] = []
    out = await _signed_checker(table, httpx.MockTransport(handler), results).run_pass()
    assert {r["node_id"]: r["ok"] for r in out} == {
        real.node_id: True,
        **dict.fromkeys(fakes, False),
    }
    assert all("no signed health proof" in str(r["error"]) for r in out if not r["ok"])
    assert [e.node_id for e in table.healthy_entries_for("m")] == [real.node_id]
    assert sorted(results) == ["ok", "unproven", "unproven", "unproven"]
    nonces = {r.headers["x-mesh-health-nonce"] for r in seen}
    assert len(nonces) == 4  # a fresh nonce per check


async def test_a_replayed_proof_from_an_earlier_check_fails() -> None:
    """A node's signed answer, recorded at one check and replayed at the next (by a server
    that keeps an id "up" after the node is gone), does not verify: the nonce is new."""
    node = HealthProver(Ed25519PrivateKey.generate())
    table = _signed_table(ManualClock(), {node.node_id: "http://node"})
    recorded: list[dict[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if not recorded:
            recorded.append(node.answer(req.headers, time.time()))
        return httpx.Response(200, json={"node_id": node.node_id}, headers=recorded[0])

    results: list[str] = []
    checker = _signed_checker(table, httpx.MockTransport(handler), results)
    assert [r["ok"] for r in await checker.run_pass()] == [True]
    second = await checker.run_pass()
    assert [r["ok"] for r in second] == [False]
    assert "does not verify" in str(second[0]["error"])
    assert results == ["ok", "unproven"]
    assert table.healthy_entries_for("m") == []


async def test_a_signature_made_for_another_node_id_fails() -> None:
    """A server holding one node's key answers for a second registered id whose key it
    does not hold: signing that id's challenge with the key it has, passing the challenge
    on to its node as that node's own, or its signature under the other id's (public)
    key: each fails, and only the id whose key answers stays healthy."""
    held_key = Ed25519PrivateKey.generate()
    held = HealthProver(held_key)
    other_raw = public_key_of(Ed25519PrivateKey.generate())
    other_public, other = encode_public_key(other_raw), node_id_for(other_raw)
    table = _signed_table(ManualClock(), {held.node_id: "http://farm", other: "http://farm/o"})
    mode = ["own key"]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/mesh/health":  # its own id: answered honestly
            return httpx.Response(200, json={}, headers=held.answer(req.headers, time.time()))
        ch = parse_challenge(req.headers)
        assert ch is not None and ch.node_id == other
        if mode[0] == "relay":  # to its node, as that node's own challenge
            mine = Challenge(ch.registry_id, held.node_id, ch.ts_ms, ch.nonce)
            proof = held.answer(mine.headers(), time.time())
        else:
            sig = base64.urlsafe_b64encode(held_key.sign(health_bytes(ch))).decode().rstrip("=")
            key = held.public_key if mode[0] == "own key" else other_public
            proof = {"X-Mesh-Health-Key": key, "X-Mesh-Health-Signature": sig}
        return httpx.Response(200, json={}, headers=proof)

    results: list[str] = []
    checker = _signed_checker(table, httpx.MockTransport(handler), results)
    for m, why in (("own key", "another node's key"), ("relay", "another node's key"),
                   ("their key", "does not verify")):  # fmt: skip
        mode[0] = m
        out = {r["node_id"]: r for r in await checker.run_pass()}
        assert out[held.node_id]["ok"] and not out[other]["ok"], m
        assert why in str(out[other]["error"]), m
    assert results.count("unproven") == 3
    assert [e.node_id for e in table.healthy_entries_for("m")] == [held.node_id]


async def test_the_registry_app_challenges_with_its_gateway_id(tmp_path: Path) -> None:
    """The registry app (real ``SignedNodeAuth``) challenges every health check with its
    gateway id: a node that signs with its key passes; one that answers 200 without a
    signature (an older node, or a server without the key) fails, leaves routing and is
    counted ``unproven``."""
    store, wall = MemoryStore(), ManualClock(1_800_000_000.0)
    token = await add_operator(store, "alice")
    assert token is not None
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    signers = [NodeSigner(k, wall) for k in keys]
    provers = {signers[0].node_id: HealthProver(keys[0])}  # the second does not sign
    seen: list[str] = []

    class Nodes(FakeNodes):
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.url.path != "/mesh/health":
                return super().handler(request)
            seen.append(request.headers.get("x-mesh-health-registry", ""))
            prover = provers.get(request.url.host)
            proof = prover.answer(request.headers, wall()) if prover is not None else {}
            return httpx.Response(200, json={"status": "ok"}, headers=proof)

    nodes = Nodes()
    async with running(tmp_path, store=store, signed=True, wall_clock=wall, nodes=nodes) as h:
        for s in signers:
            nodes.add(s.node_id)
            body = json.dumps(registration(s.node_id)).encode()
            headers = {**s.headers(MessageKind.REGISTER, body), HDR_OPERATOR_TOKEN: token}
            r = await h.client.post("/mesh/nodes", content=body, headers=headers)
            assert r.status_code == 200, r.text
        r = await h.client.post("/mesh/health-check", headers=ADMIN)
        assert r.status_code == 200, r.text
        out = {x["node_id"]: x for x in r.json()["results"]}
        signed, silent = signers[0].node_id, signers[1].node_id
        assert out[signed]["ok"] is True and out[silent]["ok"] is False
        assert "no signed health proof" in out[silent]["error"]
        assert seen == [h.runtime.signer.registry_id] * 2
        assert [e.node_id for e in h.table.healthy_entries_for("gemma-3-270m")] == [signed]
        metrics = (await h.client.get("/metrics", headers={"Host": "127.0.0.1"})).text
        assert 'llm_mesh_gateway_health_checks_total{result="unproven"} 1.0' in metrics
        assert 'llm_mesh_gateway_health_checks_total{result="ok"} 1.0' in metrics
