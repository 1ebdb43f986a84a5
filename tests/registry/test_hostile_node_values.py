"""Values a hostile node chooses (its usage counts, its declared context) never reach
past what they may decide: no lost records for other requests, no refusal of requests
another node can serve. See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from LLM_Mesh.registry.send import MAX_NODE_RETRY_AFTER_S
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNodes, chat_answer, rank, registration, running

CHAT = "/v1/chat/completions"


class LyingUsage(FakeNodes):
    """``liar``'s answers claim the usage its operator chose; other nodes are honest."""

    def __init__(self, usage: dict[str, Any]) -> None:
        super().__init__()
        self.usage = usage

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "liar" and request.url.path == CHAT:
            body = chat_answer("gemma-3-270m", "liar")
            body["usage"] = self.usage
            super().handler(request)  # counted as a call
            return httpx.Response(200, json=body)
        return super().handler(request)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 2**31, "completion_tokens": 5, "total_tokens": 2**31 + 5},
        {"prompt_tokens": 4, "completion_tokens": 2**63, "total_tokens": 2**63 + 4},
        {"prompt_tokens": 10**30, "completion_tokens": 10**30, "total_tokens": 2 * 10**30},
    ],
    ids=["prompt_over_int32", "completion_over_int64", "10e30"],
)
async def test_huge_usage_from_a_node_loses_no_other_requests_record(
    tmp_path: Path, database_url: str, usage: dict[str, Any]
) -> None:
    store = SqlStore(database_url)
    nodes = LyingUsage(usage)
    async with running(tmp_path, store=store, nodes=nodes) as h:  # type: ignore[arg-type]
        await h.register("honest")
        await h.register("liar")
        ids = []
        for node in ("liar", "honest", "liar", "honest"):
            r = await h.client.post(CHAT, json={
                "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                "allow_nodes": [node], "max_tokens": 8,
            })  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.headers["x-mesh-node"] == node
            ids.append(r.headers["x-mesh-request-id"])
        writer = h.runtime.writer
        await writer.flush()
        assert writer.dropped == 0
    reopened = SqlStore(database_url)
    await reopened.open()
    try:
        counted = {n.node_id: n.requests for n in await reopened.list_nodes()}
    finally:
        await reopened.close()
    assert counted == {"honest": 2, "liar": 2}  # the honest node's records were kept


@pytest.mark.parametrize("context", [1, -5])
async def test_a_node_declaring_a_tiny_context_does_not_refuse_others_requests(
    tmp_path: Path, context: int
) -> None:
    async with running(tmp_path) as h:
        await h.register("honest")
        await h.register("tiny", models=[])  # replaced below: the tiny context
        reg = {"node_id": "tiny", "url": "http://tiny:8801", "max_concurrency": 4,
               "models": [{"id": "gemma-3-270m", "context_length": context}]}  # fmt: skip
        r = await h.client.post("/mesh/nodes", json=reg)
        if r.status_code == 400:  # refused outright: nothing to route to
            assert context < 1
            await h.client.delete("/mesh/nodes/tiny")
        else:
            assert r.status_code == 200, r.text
        rank(h.runtime.routing.router, ["tiny", "honest"], "gemma-3-270m", h.clock())
        for _ in range(4):
            r = await h.client.post(CHAT, json={
                "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 16,
            })  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.headers["x-mesh-node"] == "honest"


class OwnErrorCode(FakeNodes):
    """``liar`` refuses every request with a 400 whose ``code`` its operator chose."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "liar" and request.url.path == CHAT:
            super().handler(request)
            err = {"error": {"message": "no", "type": "invalid_request_error", "code": self.code}}
            return httpx.Response(400, json=err)
        return super().handler(request)


@pytest.mark.parametrize("code", ["x" * 300, "the prompt was: tell me a secret"])
async def test_a_nodes_own_error_code_is_not_stored_as_sent(
    tmp_path: Path, database_url: str, code: str
) -> None:
    store = SqlStore(database_url)
    async with running(tmp_path, store=store, nodes=OwnErrorCode(code)) as h:  # type: ignore[arg-type]
        await h.register("honest")
        await h.register("liar")
        for node, status in (("liar", 400), ("honest", 200)):
            r = await h.client.post(CHAT, json={
                "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                "allow_nodes": [node], "max_tokens": 8,
            })  # fmt: skip
            assert r.status_code == status, r.text
            assert r.json().get("error", {}).get("code") is None  # not one of the mesh's codes
        await h.runtime.writer.flush()
        assert h.runtime.writer.dropped == 0
    reopened = SqlStore(database_url)
    await reopened.open()
    try:
        counted = {n.node_id: (n.requests, n.failures) for n in await reopened.list_nodes()}
        async with reopened.engine.connect() as conn:
            codes = (await conn.execute(text("SELECT error_code FROM requests"))).scalars().all()
    finally:
        await reopened.close()
    assert counted == {"honest": (1, 0), "liar": (1, 1)}
    assert code not in codes and "secret" not in "".join(c or "" for c in codes)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("region", "r" * 129),
        ("version", "v" * 129),
        ("max_concurrency", 2**31),
        ("max_queue", 2**40),
        ("region", "eu-west\n2026-12-02 INFO node node-b registered"),  # a forged log line
        ("region", "eu\x1b[2J\x1b]0;pwned\x07"),  # terminal escapes for `llm-mesh status`
        ("region", "us\u202etsew-ue"),  # a bidi override
        ("version", "1.0\r\n"),
        ("models", [{"id": "gemma\x1b[31m", "engine": "sim"}]),
        ("models", [{"id": "m\u200b", "engine": "sim"}]),  # zero-width space
        ("models", [{"id": "m" * 257, "engine": "sim"}]),
        ("models", [{"id": "", "engine": "sim"}]),
        ("models", [{"id": "m", "engine": "sim\n"}]),
        # found 2026-12-05 (attack32b): listed whole in the public GET /mesh/nodes
        ("models", [{"id": "m", "engine": "e" * 129}]),
        ("models", [{"id": "m", "engine": ""}]),
        ("models", [{"id": "m", "engine": "sim", "sha256": "\x1b[2J" + "a" * 60}]),
        ("models", [{"id": "m", "engine": "sim", "sha256": "a" * 65}]),
        ("models", [{"id": "m", "engine": "sim", "sha256": "g" * 64}]),
        ("models", [{"id": "m", "engine": "sim", "sha256": "pad " * 100_000}]),
        ("models", [{"id": "m", "engine": "sim", "pad": "x" * 600}]),  # listed whole
        # found 2026-12-05 (attack32b): kept in every replica and the store, any size
        ("hardware", {"gpus": [{"name": "x" * 20_000}]}),
        ("hardware", {"cpu_count": 4, "pad": "y" * 20_000}),
        ("hardware", {"gpus": [{}] * 65}),
    ],
)
async def test_registration_fields_past_the_store_or_unprintable_are_400(
    tmp_path: Path, database_url: str, field: str, value: Any
) -> None:
    store = SqlStore(database_url)
    async with running(tmp_path, store=store) as h:  # type: ignore[arg-type]
        await h.register("honest")
        h.nodes.add("bad")
        reg = registration("bad")
        reg[field] = value
        r = await h.client.post("/mesh/nodes", json=reg)
        assert r.status_code == 400, r.text  # before: 200, or 500 on PostgreSQL
        assert r.json()["error"]["param"].split(".")[0] == field
        assert h.table.get("bad") is None
        assert (await h.client.post("/mesh/nodes/honest/heartbeat", json={})).status_code == 200
    reopened = SqlStore(database_url)
    await reopened.open()
    try:
        assert [n.node_id for n in await reopened.list_nodes()] == ["honest"]
    finally:
        await reopened.close()


async def test_a_models_sha256_is_kept_lower_case_and_listed_bounded(tmp_path: Path) -> None:
    """A file's SHA-256 in capitals is the same file (verifiers are matched on it); the
    public listing carries each node's names at their bounds only (attack32b)."""
    async with running(tmp_path) as h:
        models = [{"id": "my-model", "engine": "e" * 128, "sha256": "AB" * 32}]
        gpus = [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85 * 2**30}] * 8
        hardware = {"cpu_count": 224, "memory_bytes": 2**41, "gpus": gpus}  # a big machine
        h.nodes.add("n")
        reg = {**registration("n"), "models": models, "hardware": hardware}
        r = await h.client.post("/mesh/nodes", json=reg)
        assert r.status_code == 200, r.text
        hosted = h.table.hosted("n", "my-model")
        assert hosted is not None and hosted.sha256 == "ab" * 32
        listed = (await h.client.get("/mesh/nodes")).json()
        assert len(json.dumps(listed)) < 4096
        # a heartbeat's model item of 200 KB of fields of its own changes nothing
        item = {"id": "my-model", "pad": "y" * 200_000}
        hb = await h.client.post("/mesh/nodes/n/heartbeat", json={"models": [item]})
        assert hb.status_code == 200, hb.text
        hosted = h.table.hosted("n", "my-model")
        assert hosted is not None and "pad" not in (hosted.model_extra or {})
        assert len((await h.client.get("/mesh/nodes")).content) < 4096


CLAIMS: dict[str, Any] = {
    "model": "mistral-7b", "ledger_request_id": "someone-elses-request~0123456789abcdef",
    "failover_from": ["node-z"], "continued": True, "request_id": "forged",
    "cost": 1, "currency": "USD", "attempts": 9, "node_id": "node-z",
    "prompt_tokens": 1, "completion_tokens": 1, "latency_ms": 0.1,
    "receipt_request_id": "req-" + "0" * 32,
}  # fmt: skip


class OwnMesh(FakeNodes):
    """Every answer's ``mesh`` claims what the gateway alone may say (:data:`CLAIMS`)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != CHAT:
            return resp
        if resp.headers.get("content-type") == "text/event-stream":
            lines = resp.content.decode().split("\n\n")
            out = []
            for ev in lines:
                if ev.startswith("data: {") and '"mesh"' in ev:
                    obj = json.loads(ev[6:])
                    obj["mesh"].update(CLAIMS)
                    ev = "data: " + json.dumps(obj)
                out.append(ev)
            return httpx.Response(200, headers=resp.headers, content="\n\n".join(out).encode())
        body = json.loads(resp.content)
        body["mesh"].update(CLAIMS)
        return httpx.Response(200, json=body)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_nodes_mesh_cannot_speak_for_the_gateway(tmp_path: Path, stream: bool) -> None:
    async with running(tmp_path, nodes=OwnMesh()) as h:
        await h.register("node-a")
        body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 8, "stream": stream}  # fmt: skip
        r = await h.client.post(CHAT, json=body)
        assert r.status_code == 200, r.text
        if stream:
            events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: {")]
            mesh = next(json.loads(e)["mesh"] for e in events if '"mesh"' in e)
        else:
            mesh = r.json()["mesh"]
    assert mesh["node_id"] == "node-a" and mesh["model"] == "gemma-3-270m"
    assert mesh["request_id"] == r.headers["x-mesh-request-id"]
    assert "ledger_request_id" not in mesh  # the gateway made the id: the ledger uses it
    assert "receipt_request_id" not in mesh  # ... and the nodes and the receipt too
    assert "failover_from" not in mesh and "continued" not in mesh
    assert mesh["attempts"] == 1 and mesh["currency"] == "micro-NetworkToken"


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan", "1e18", "99999999999999999999"])
async def test_a_nodes_retry_after_is_read_safely_and_bounded(tmp_path: Path, value: str) -> None:
    async with running(tmp_path) as h:
        node = await h.register("busy", behavior="429")
        node.retry_after = value
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8,
        })  # fmt: skip
        assert r.status_code == 429, r.text  # before: "inf" and "1e400" were a 500
        assert 1 <= int(r.headers["retry-after"]) <= MAX_NODE_RETRY_AFTER_S
        honest = await h.register("honest")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8,
        })  # fmt: skip
        assert r.status_code == 200 and len(honest.calls) == 1


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000  # past the parser's recursion limit


class DeepJson(FakeNodes):
    """``liar`` answers with JSON nested 100,000 deep: a whole answer, a 4xx, or one event."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "liar" or request.url.path != CHAT:
            return super().handler(request)
        super().handler(request)
        if self.how == "answer":
            return httpx.Response(200, content=DEEP, headers={"content-type": "application/json"})
        if self.how == "4xx":
            return httpx.Response(400, content=DEEP, headers={"content-type": "application/json"})
        ok = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
        final = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
        events = ok + b"data: " + DEEP + b"\n\n" + final + b"data: [DONE]\n\n"
        return httpx.Response(200, content=events, headers={"content-type": "text/event-stream"})


@pytest.mark.parametrize(("how", "status"), [("answer", 502), ("4xx", 400), ("stream", 200)])
async def test_json_nested_past_the_parsers_limit_from_a_node(
    tmp_path: Path, how: str, status: int
) -> None:
    async with running(tmp_path, nodes=DeepJson(how)) as h:
        await h.register("liar")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            # a refusal's 600 KB within the answer's bound (core/answer_bound.py): 4096 tokens
            "max_tokens": 4096 if how == "4xx" else 8, "stream": how == "stream",
            "allow_nodes": ["liar"],
        })  # fmt: skip
        # before: RecursionError out of the gateway (a 500, or a stream cut without its end)
        assert r.status_code == status, r.text[:300]
        if how == "stream":
            assert r.text.endswith("data: [DONE]\n\n") and '"mesh"' in r.text
            assert "not JSON" in r.text  # the event broke the stream (test_hostile_node_json)
        assert h.in_flight("liar") == 0


@pytest.mark.parametrize(
    "load",
    [{"in_flight": 10**400}, {"queued": 10**400}, {"in_flight": 2**63, "queued": 2**63}],
    ids=["in_flight_400_digits", "queued_400_digits", "both_2e63"],
)
async def test_a_heartbeat_load_past_int32_is_400_and_the_listing_stays_up(
    tmp_path: Path, load: dict[str, int]
) -> None:
    """One node's load report of 10^400 requests (or 2^63) was taken as sent: the router's
    cost view of it (``core/scoring``, floats) raised ``OverflowError``, so the public
    ``GET /mesh/nodes`` and the dashboard's node pages answered 500 for everyone, and a
    request routed by it failed (found 2026-12-05). Now bounded as the registration's
    ``max_concurrency`` is: 400, the node's last report kept."""
    async with running(tmp_path) as h:
        await h.register("honest")
        await h.register("liar")
        fine = {"in_flight": 1, "queued": 2}
        assert (await h.client.post("/mesh/nodes/liar/heartbeat", json=fine)).status_code == 200
        r = await h.client.post("/mesh/nodes/liar/heartbeat", json=load)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] in load
        liar = h.table.get("liar")
        assert liar is not None
        assert (liar.reported_in_flight, liar.reported_queued) == (1, 2)
        for path in ("/mesh/nodes", "/dashboard/nodes", "/dashboard/nodes/liar"):
            assert (await h.client.get(path)).status_code == 200, path
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
        })  # fmt: skip
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "value", ["-1", "1e400", "NaN", str(2**70), '"soon"', "[1]"],
    ids=["negative", "1e400", "nan", "2e70", "text", "list"],
)  # fmt: skip
async def test_a_heartbeats_keyed_age_out_of_bounds_is_400_and_moves_only_its_own_places(
    tmp_path: Path, value: str
) -> None:
    """``keyed_age_s`` (how long ago the node's last keyed request came: every replica's
    router counts the places it keeps for keyed ones from it) is the node's choice: bounded
    as the heartbeat's counts (finite, 0 to 2^31 - 1), else 400 naming it and the node's
    last report kept. A value in bounds moves only that node's own kept places (found
    2026-12-05 with the field: docs/security.md, "Hostile nodes")."""
    async with running(tmp_path) as h:
        await h.register("honest")
        await h.register("liar")
        fine = {"in_flight": 1, "queued": 2, "keyed_age_s": 3.0}
        assert (await h.client.post("/mesh/nodes/liar/heartbeat", json=fine)).status_code == 200
        router = h.runtime.routing.router
        liar, honest = router.node("liar"), router.node("honest")
        assert liar is not None and honest is not None
        said = liar.keyed_at
        assert said is not None and liar.open_below < liar.capacity
        r = await h.client.post(
            "/mesh/nodes/liar/heartbeat",
            content=b'{"keyed_age_s":' + value.encode() + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "keyed_age_s"
        entry = h.table.get("liar")
        assert entry is not None and (entry.reported_in_flight, entry.reported_queued) == (1, 2)
        assert liar.keyed_at == said
        assert honest.keyed_at is None and honest.open_below == honest.capacity
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
        })  # fmt: skip
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("service_s", [1e308, 1e300, 2**70], ids=["1e308", "1e300", "2e70"])
async def test_a_nodes_reported_service_time_cannot_make_the_wait_unbounded(
    tmp_path: Path, service_s: float
) -> None:
    """A full node's heartbeat ``service_s`` (its own time per request) sets the wait the
    gateway's 429 ``saturated`` quotes. 1e308 s (× 1000 in ms: infinity) made every
    anonymous request for its model a 500 (``math.ceil(inf)``), 1e300 a `Retry-After` of
    301 digits (found 2026-12-05). Now read as at most an hour, and the wait quoted at
    most ``MAX_NODE_RETRY_AFTER_S``, as a node's own `Retry-After` is."""
    async with running(tmp_path) as h:
        await h.register("a")  # max_concurrency 2, max_queue 4
        full = {"in_flight": 2, "queued": 4, "service_s": service_s}
        assert (await h.client.post("/mesh/nodes/a/heartbeat", json=full)).status_code == 200
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
        })  # fmt: skip
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= MAX_NODE_RETRY_AFTER_S
        assert 0 < r.json()["error"]["wait_s"] <= MAX_NODE_RETRY_AFTER_S


@pytest.mark.parametrize(
    "extra",
    [
        {"uptime": 10**400},
        {"service_s": 10**400},
        {"models": [{"id": "gemma-3-270m", "load_time_s": 10**400}]},
    ],
    ids=["uptime", "service_s", "load_time_s"],
)
async def test_a_heartbeats_extra_numbers_past_a_float_are_ignored(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    """The heartbeat's optional numbers (``uptime``, ``service_s``, a model's
    ``load_time_s``) as integers of 400 digits: ``float()`` raised ``OverflowError``, the
    heartbeat answered 500 (an internal error of the registry, logged as its own bug) after
    the table had taken part of it (found 2026-12-05). Now read as not given."""
    async with running(tmp_path) as h:
        await h.register("liar")
        r = await h.client.post("/mesh/nodes/liar/heartbeat", json=extra)
        assert r.status_code == 200, r.text
        entry = h.table.get("liar")
        assert entry is not None and entry.uptime is None
        assert (await h.client.get("/mesh/nodes")).status_code == 200
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
        })  # fmt: skip
        assert r.status_code == 200, r.text
