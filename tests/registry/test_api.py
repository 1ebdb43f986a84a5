"""The /mesh registry endpoints: registration, heartbeats, deregistration, listings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.beat_mac import TOKEN_CHARS
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import REFUSAL_NO_CREDIT_S
from tests.keyed import held_account
from tests.registry.helpers import ADMIN, registration, running
from tests.registry.node_auth_mesh import Wall, make_node, mesh, operator, paid_to, register


async def test_register_then_list(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a", region="eu"))
        assert r.status_code == 200
        assert r.json()["node_id"] == "node-a"
        assert r.json()["heartbeat_interval_s"] == 10.0
        assert "node-a" in h.store.nodes
        assert h.store.nodes["node-a"].region == "eu"
        nodes = (await h.client.get("/mesh/nodes")).json()["nodes"]
        assert [n["node_id"] for n in nodes] == ["node-a"]
        assert nodes[0]["healthy"] is True and nodes[0]["state"] == "online"
        assert nodes[0]["last_heartbeat_age_s"] == 0.0


async def test_reregistering_updates(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        await h.client.post("/mesh/nodes", json=registration("node-a", models=["mistral-7b"]))
        assert h.table.model_ids() == ["mistral-7b"]
        assert len(h.store.nodes) == 1


async def test_bad_registration_is_400(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.post(
            "/mesh/nodes", json={"node_id": "x", "url": "ftp://x", "models": []}
        )
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert r.json()["error"]["param"] in ("url", "models")
        r = await h.client.post("/mesh/nodes", content=b"nope")
        assert r.status_code == 400


async def test_heartbeat_known_and_unknown(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        h.clock.advance(5)
        r = await h.client.post("/mesh/nodes/node-a/heartbeat", json={"in_flight": 1, "queued": 2})
        assert r.status_code == 200
        view = (await h.client.get("/mesh/nodes")).json()["nodes"][0]
        assert view["queued"] == 2 and view["last_heartbeat_age_s"] == 0.0
        assert h.store.nodes["node-a"].last_heartbeat_at is not None
        r = await h.client.post("/mesh/nodes/ghost/heartbeat", json={})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_node"


async def test_heartbeats_credit_routable_time_unless_the_active_check_failed(
    tmp_path: Path,
) -> None:
    """Uptime rewards: a heartbeat credits the time since the node's previous one, at most
    the heartbeat expiry (30 s), and nothing while this registry's active check failed."""
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        rec = h.store.nodes["node-a"]

        async def beat(seconds_since_last: float) -> int:
            before = rec.healthy_ms
            assert rec.last_heartbeat_at is not None
            rec.last_heartbeat_at -= timedelta(seconds=seconds_since_last)
            r = await h.client.post("/mesh/nodes/node-a/heartbeat", json={})
            assert r.status_code == 200
            await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
            return rec.healthy_ms - before

        assert 5_000 <= await beat(5) < 6_000
        assert await beat(100) == 30_000  # silent beyond the expiry: out of routing after it
        h.table.set_check_result("node-a", False)  # the registry could not reach it
        assert await beat(5) == 0
        h.table.set_check_result("node-a", True)
        assert 5_000 <= await beat(5) < 6_000


async def test_heartbeat_of_node_known_only_to_store_is_adopted(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        # as if another replica registered it: drop it from this table only
        h.table._nodes.clear()
        h.table._by_model.clear()
        r = await h.client.post("/mesh/nodes/node-a/heartbeat", json={})
        assert r.status_code == 200
        assert h.table.models_up() == ["gemma-3-270m"]


async def test_heartbeat_draining_state_leaves_routing(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        await h.client.post("/mesh/nodes/node-a/heartbeat", json={"state": "draining"})
        assert h.table.models_up() == []
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
        assert h.store.nodes["node-a"].state == "draining"


async def test_delete_marks_offline(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        r = await h.client.delete("/mesh/nodes/node-a")
        assert r.status_code == 204
        assert h.store.nodes["node-a"].state == "offline"
        view = (await h.client.get("/mesh/nodes")).json()["nodes"][0]
        assert view["state"] == "offline" and view["healthy"] is False
        assert (await h.client.delete("/mesh/nodes/ghost")).status_code == 404


async def test_mesh_models(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post(
            "/mesh/nodes", json=registration("node-a", models=["gemma-3-270m", "mine"])
        )
        models = {m["id"]: m for m in (await h.client.get("/mesh/models")).json()["models"]}
        assert models["gemma-3-270m"]["available"] is True and models["gemma-3-270m"]["nodes"] == 1
        assert models["gemma-3-270m"]["context_length"] == 32_768
        assert models["mistral-7b"]["available"] is False and models["mistral-7b"]["nodes"] == 0
        assert models["mine"]["custom"] is True and models["mine"]["pricing"] == {
            "prompt_per_1k": 1_000,
            "completion_per_1k": 1_000,
            "unit": "micro-NetworkToken",
        }


async def test_health_check_endpoint(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        bad = await h.register("node-b")
        bad.health_ok = False
        r = await h.client.post("/mesh/health-check", headers=ADMIN)
        assert r.status_code == 200
        results = {x["node_id"]: x for x in r.json()["results"]}
        assert results["node-a"]["ok"] is True and results["node-a"]["error"] is None
        assert results["node-b"]["ok"] is False and results["node-b"]["error"] == "HTTP 503"
        assert set(results["node-a"]) == {"node_id", "url", "ok", "latency_ms", "error"}
        healthy = {
            n["node_id"]: n["healthy"] for n in (await h.client.get("/mesh/nodes")).json()["nodes"]
        }
        assert healthy == {"node-a": True, "node-b": False}


async def test_healthz(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        assert (await h.client.get("/healthz")).json() == {"status": "ok"}


async def test_healthz_says_503_when_the_replica_cannot_reach_its_store(tmp_path: Path) -> None:
    """A replica cut off from PostgreSQL answered ``{"status": "ok"}`` while it could neither
    settle a request nor hear the nodes beating at other replicas (found 2026-12-04: a
    balancer's health check, and ``MeshClient.ping``, kept sending clients to it)."""
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        beat = h.runtime.replicas
        assert beat is not None
        now = [500.0]
        beat.streak_clock = lambda: now[0]
        await beat.tick()  # a good beat at 500

        async def down(*_: object) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        store.beat_replica = down  # type: ignore[method-assign]
        now[0] += beat.dead_after_s - 1
        await beat.tick()
        assert (await h.client.get("/healthz")).status_code == 200  # a hiccup: still ok
        now[0] += 2
        await beat.tick()
        r = await h.client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["status"] == "store_unreachable" and r.json()["silent_s"] == 7
        del store.beat_replica  # the store answers again
        await beat.tick()
        r = await h.client.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_listings_say_503_while_the_replica_cannot_reach_its_store(tmp_path: Path) -> None:
    """A replica cut off from PostgreSQL listed every node down (it no longer heard the
    heartbeats taken by the other replicas) and ``llm-mesh status --registry R3,R1`` printed
    that ``0/2 nodes healthy, models up: none`` from it (found 2026-12-04): now 503
    ``store_unavailable``, and a client with several URLs asks the next."""
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        assert (await h.client.post("/mesh/nodes", json=registration("node-a"))).status_code == 200
        beat = h.runtime.replicas
        assert beat is not None
        now = [500.0]
        beat.streak_clock = lambda: now[0]
        await beat.tick()
        paths = ("/mesh/nodes", "/mesh/models", "/v1/models", "/v1/models?all=true")
        for path in paths:
            assert (await h.client.get(path)).status_code == 200, path

        async def down(*_: object) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        store.beat_replica = down  # type: ignore[method-assign]
        now[0] += beat.dead_after_s
        await beat.tick()
        for path in paths:
            r = await h.client.get(path)
            assert r.status_code == 503, path
            assert r.json()["error"]["code"] == "store_unavailable"
        del store.beat_replica
        await beat.tick()
        for path in paths:
            assert (await h.client.get(path)).status_code == 200, path


async def test_public_node_listing_has_no_address_or_hardware(tmp_path: Path) -> None:
    """Operators are private people: anyone sees id, region, models, health, load and the
    signed ``keeps_no_prompts``; the URL and hardware only with the admin key."""
    hardware = {"cpu_count": 12, "memory_bytes": 64 << 30, "gpus": [{"name": "RTX 4090"}]}
    async with running(tmp_path) as h:
        reg = registration("node-a", region="eu", hardware=hardware, keeps_no_prompts=True)
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        r = await h.client.get("/mesh/nodes")
        (public,) = r.json()["nodes"]
        assert "url" not in public and "hardware" not in public
        assert "node-a:8801" not in r.text and "4090" not in r.text
        assert public["node_id"] == "node-a" and public["region"] == "eu"
        assert public["healthy"] is True and public["keeps_no_prompts"] is True
        assert public["models"][0]["id"] == "gemma-3-270m" and "in_flight" in public
        (admin,) = (await h.client.get("/mesh/nodes", headers=ADMIN)).json()["nodes"]
        assert admin["url"] == "http://node-a:8801"
        assert admin["hardware"]["gpus"] == [{"name": "RTX 4090"}]
        wrong = await h.client.get("/mesh/nodes", headers={"Authorization": "Bearer lma_nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credential"


async def test_keeps_no_prompts_undeclared_is_null(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.client.post("/mesh/nodes", json=registration("node-a"))
        await h.client.post("/mesh/nodes", json=registration("node-b", keeps_no_prompts=False))
        nodes = {n["node_id"]: n for n in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert nodes["node-a"]["keeps_no_prompts"] is None
        assert nodes["node-b"]["keeps_no_prompts"] is False


async def test_a_node_refusing_the_gateway_earns_no_uptime(tmp_path: Path) -> None:
    """A node that answers its health checks and heartbeats but refuses every request with
    401 (its ``registry_public_key`` pinned to another key: the unmodified software does
    it) serves nothing; the gateway skips it at once and no request of it is recorded, so
    without this it earned the full uptime rate (found 2026-12-02). From its refusal until
    it registers again (which re-pins the key) its heartbeats credit nothing; after, the share
    of requests it answered still cuts them."""
    async with running(tmp_path) as h:
        h.nodes.add("refuser", behavior="401")
        h.nodes.add("good")
        assert (await h.client.post("/mesh/nodes", json=registration("refuser"))).status_code == 200
        body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and h.nodes.nodes["refuser:8801"].calls  # refused
        assert (await h.client.post("/mesh/nodes", json=registration("good"))).status_code == 200
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "good"

        async def beat(node_id: str) -> int:
            rec = h.store.nodes[node_id]
            before = rec.healthy_ms
            assert rec.last_heartbeat_at is not None
            rec.last_heartbeat_at -= timedelta(seconds=5)
            r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json={})
            assert r.status_code == 200
            await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
            return rec.healthy_ms - before

        assert await beat("refuser") == 0
        assert 5_000 <= await beat("good") < 6_000
        entry = h.table.get("refuser")
        assert entry is not None and entry.refused_gateway_at is not None
        entry.refused_gateway_at -= REFUSAL_NO_CREDIT_S  # not tried again for that long
        h.clock.advance(REFUSAL_NO_CREDIT_S)  # (its one refusal has faded: about 2/3 share)
        assert 5_000 <= await beat("refuser") < 6_000
        entry.refused_gateway_at = h.runtime.wall_clock()  # refused again just now
        assert await beat("refuser") == 0
        assert (await h.client.post("/mesh/nodes", json=registration("refuser"))).status_code == 200
        h.clock.advance(5)
        # registered again (which re-pins the key): credited again, at the share it answered
        # (its one refusal, faded: 2/3), which a registration does not clear (attack30)
        assert 3_300 <= await beat("refuser") < 3_400


async def test_a_node_refusing_every_request_or_ejected_earns_no_uptime(tmp_path: Path) -> None:
    """A node that answers its health checks and heartbeats but refuses every request with
    429 (or 503: no health failure, no ejection, no ``requests`` row when another node
    serves it) earned the full uptime rate, and so did a node ejected as an outlier (5xx),
    out of routing (found 2026-12-02, third pass). Refusing every request sent to it for
    ``REFUSAL_NO_CREDIT_S`` with none answered in between, or being ejected at the
    heartbeat's replica, credits nothing; one refusal not followed by more, or an answer,
    credits again."""
    async with running(tmp_path) as h:
        h.nodes.add("refuser", behavior="429")
        h.nodes.add("broken", behavior="500")
        h.nodes.add("good")
        for n in ("refuser", "broken", "good"):
            assert (await h.client.post("/mesh/nodes", json=registration(n))).status_code == 200

        async def ask(node_id: str) -> int:
            body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                    "allow_nodes": [node_id]}  # fmt: skip
            h.clock.advance(10)  # past the refusal's Retry-After
            return (await h.client.post("/v1/chat/completions", json=body)).status_code

        async def beat(node_id: str) -> int:
            rec = h.store.nodes[node_id]
            before = rec.healthy_ms
            assert rec.last_heartbeat_at is not None
            rec.last_heartbeat_at -= timedelta(seconds=5)
            r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json={})
            assert r.status_code == 200
            await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
            return rec.healthy_ms - before

        assert await ask("broken") == 502  # a 5xx: ejected at once, out of routing here
        assert h.runtime.routing.router.outliers.is_ejected("broken")
        assert await beat("broken") == 0
        assert 5_000 <= await beat("good") < 6_000
        assert await ask("refuser") == 429
        entry = h.table.get("refuser")
        assert entry is not None and entry.refusing_since is not None
        assert 5_000 <= await beat("refuser") < 6_000  # one refusal: not yet
        entry.refusing_since -= REFUSAL_NO_CREDIT_S  # it has refused since 5 min ago
        assert await ask("refuser") == 429  # ... and still does
        assert await beat("refuser") == 0
        assert 5_000 <= await beat("good") < 6_000
        h.nodes.nodes["refuser:8801"].behavior = "ok"
        assert await ask("refuser") == 200  # it answers: credited again
        assert entry.refusing_since is None
        assert 5_000 <= await beat("refuser") < 6_000


async def test_a_key_claimed_as_its_operator_is_caught_is_held_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of the "starts over" check: a new key passes the registration's
    ``operator_quarantined`` check, another node of its operator is caught (the
    quarantine written, the held set read), then the key is claimed. It is held from its
    registration on (found 2026-12-02: only from this replica's next reload of the
    quarantines, on SQLite the next canary write or a restart, so its first answers were
    paid)."""
    store, wall = MemoryStore(), Wall()
    alice = await operator(store)
    liar, fresh = make_node(wall, alice), make_node(wall, alice)
    async with await mesh(tmp_path, store, wall) as h:
        q = h.runtime.quality
        assert q is not None
        for n in (liar, fresh):
            h.nodes.add(n.node_id)
        assert (await register(h, liar)).status_code == 200
        checked = store.quarantined_nodes_of

        async def caught_right_after_the_check(name: str) -> list[str]:
            found = await checked(name)  # none yet: the new key may register
            await q.record(liar.node_id, "gemma-3-270m", ok=False, reason="canary")
            return found

        monkeypatch.setattr(store, "quarantined_nodes_of", caught_right_after_the_check)
        assert (await register(h, fresh)).status_code == 200
        assert q.held(fresh.node_id) and fresh.node_id in await store.held_nodes()
        r = await h.client.post(
            "/v1/completions",
            json={"model": "gemma-3-270m", "prompt": "hi", "allow_nodes": [fresh.node_id]},
        )
        assert r.status_code == 200, r.text
        paid = await paid_to(h, str(r.json()["mesh"]["request_id"]))
        assert paid == ("hold", held_account(fresh.node_id))


async def test_a_node_refusing_99_of_100_requests_earns_its_share_of_uptime(
    tmp_path: Path,
) -> None:
    """A node that answers its checks and heartbeats, answers 1 request and refuses the 99
    others sent to it (429) kept full uptime credit: the success factor counts recorded
    requests only, and the refusal rule needs 5 minutes with no answer at all (found
    2026-12-02, third pass). Its heartbeats now credit the share of the requests it
    answered here, about 2 % of its time; a node answering every request keeps all of it."""
    async with running(tmp_path) as h:
        refuser = h.nodes.add("refuser", behavior="429")
        refuser.retry_after = "1"
        h.nodes.add("good")
        for n in ("refuser", "good"):
            assert (await h.client.post("/mesh/nodes", json=registration(n))).status_code == 200

        async def ask(node_id: str) -> int:
            body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                    "allow_nodes": [node_id]}  # fmt: skip
            h.clock.advance(1.5)  # past the refusal's Retry-After
            return (await h.client.post("/v1/chat/completions", json=body)).status_code

        async def beat(node_id: str, back_s: float = 0.0) -> int:
            rec = h.store.nodes[node_id]
            before = rec.healthy_ms
            assert rec.last_heartbeat_at is not None
            rec.last_heartbeat_at -= timedelta(seconds=back_s)
            r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json={})
            assert r.status_code == 200
            await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
            return rec.healthy_ms - before

        for i in range(100):
            refuser.behavior = "ok" if i == 50 else "429"
            assert await ask("refuser") == (200 if i == 50 else 429)
            assert await ask("good") == 200
            await beat("refuser")  # as a node beats: it is no longer marked full
            await beat("good")
        assert len(refuser.calls) == 100  # every request reached it
        h.clock.advance(5)
        good = await beat("good", back_s=5)
        refused = await beat("refuser", back_s=5)
        assert 5_000 <= good < 6_000
        assert 0 < refused < 250  # about 2 % of 5 s, not all of it


async def test_the_heartbeat_answer_tells_the_node_its_own_health_checks(tmp_path: Path) -> None:
    """A node's heartbeat answer carries this registry's active checks of it (a field from
    the node table: no query): failing since when and why, passing again; nothing before
    the first check, and nothing about other nodes. The hot route and FastAPI's alike."""
    from LLM_Mesh.registry.hot_heartbeat import RegistryApp
    from tests.registry.helpers import ManualClock

    wall = ManualClock(1_800_000_000.0)
    async with running(tmp_path, wall_clock=wall) as h:
        assert isinstance(h.app, RegistryApp)
        a, b = h.nodes.add("node-a"), h.nodes.add("node-b")
        for n in ("node-a", "node-b"):
            assert (await h.client.post("/mesh/nodes", json=registration(n))).status_code == 200

        async def health(node_id: str) -> Any:
            answers = []
            for hot in (True, False):
                h.app.hot_heartbeat = hot  # type: ignore[attr-defined]
                r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json={})
                assert r.status_code == 200, r.text
                answers.append(r.json())
            # both paths give the node its token; since beatkey39 a MAC of its id and expiry,
            # one token for the same (stood-still) second on either path
            tokens = [a.pop("beat_token") for a in answers]
            assert tokens[0] == tokens[1] and len(tokens[0]) == TOKEN_CHARS
            assert answers[0] == answers[1]
            assert answers[0]["ok"] is True  # the heartbeat itself was taken
            return answers[0].get("health", "absent")

        assert await health("node-a") == "absent"  # no check yet
        a.health_ok = False
        assert (await h.client.post("/mesh/health-check", headers=ADMIN)).status_code == 200
        failed_at = wall.now
        assert await health("node-a") == {
            "ok": False, "since": failed_at, "checked_at": failed_at, "why": "HTTP 503",
        }  # fmt: skip
        told_b = await health("node-b")
        assert told_b == {"ok": True, "since": failed_at, "checked_at": failed_at}
        wall.advance(60)  # failing still: since stays
        await h.client.post("/mesh/health-check", headers=ADMIN)
        assert await health("node-a") == {
            "ok": False, "since": failed_at, "checked_at": wall.now, "why": "HTTP 503",
        }  # fmt: skip
        a.health_ok = True
        wall.advance(60)
        await h.client.post("/mesh/health-check", headers=ADMIN)
        assert await health("node-a") == {"ok": True, "since": wall.now, "checked_at": wall.now}
        assert b.health_ok


async def test_a_database_connection_refused_is_503_store_unavailable(tmp_path: Path) -> None:
    """A replica whose PostgreSQL refuses connections (asyncpg raises the socket's
    ``ConnectionRefusedError``, which SQLAlchemy passes on unwrapped) answered a node's
    heartbeat or registration 500 ``internal_error`` with a traceback per request (found
    2026-12-04); now 503 ``store_unavailable`` with ``Retry-After``, as a lost connection is."""
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:

        async def refused(*_: object, **__: object) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        store.upsert_node = refused  # type: ignore[method-assign,assignment]
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "store_unavailable"
        assert r.headers["retry-after"] == "1"


async def test_the_listing_says_silent_by_the_registrys_own_expiry(tmp_path: Path) -> None:
    """Found 2026-12-07: ``llm-mesh status`` read a paused node heard 60 s ago as "down
    paused" (the default expiry, 30 s) at a registry whose expiry is 120 s: the listing did
    not carry the registry's own. It says ``silent`` now, and ``status`` reads it."""
    from rich.console import Console

    from LLM_Mesh.cli.render import nodes_table

    async with running(tmp_path, missed_heartbeats=12) as h:  # 10 s x 12: 120 s
        await h.register("n1")
        r = await h.client.post("/mesh/nodes/n1/heartbeat", json={"state": "paused"})
        assert r.status_code == 200, r.text
        h.clock.advance(60.0)
        [node] = (await h.client.get("/mesh/nodes")).json()["nodes"]
        assert node["silent"] is False and node["last_heartbeat_age_s"] == 60.0, node
        console = Console(width=120, record=True, color_system=None)
        console.print(nodes_table([node], 80))
        out = console.export_text()
        assert "paused" in out and "down" not in out, out
        h.clock.advance(60.0)
        [node] = (await h.client.get("/mesh/nodes")).json()["nodes"]
        assert node["silent"] is True, node
        console = Console(width=120, record=True, color_system=None)
        console.print(nodes_table([node], 80))
        assert "down" in console.export_text()
