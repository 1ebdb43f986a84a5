"""A client request id runs at most once across replicas on one store (``shared_idempotency.py``).

Two apps on one store are two replicas: the same id sent to both runs once (replayed,
waited on, or refused 409), on the memory store and on SQLite / PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_seal import AnswerSeal
from LLM_Mesh.core.scope_names import IDEMPOTENCY_KEYS, ScopeNames
from LLM_Mesh.registry.idempotency import DuplicateRequest
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import IdempotencyRecord
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNodes, Harness, anonymous_key, running, streams_after_one
from tests.waiting import SOON_S, scaled

CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@asynccontextmanager
async def two_replicas(
    tmp_path: Path, url: str | None = None, nodes: FakeNodes | None = None, **settings: Any
) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two registry apps on one store (``url``: two SqlStores on that database; else one
    MemoryStore), with the same fake nodes behind them (``settings``: both apps')."""
    nodes = nodes or FakeNodes()
    shared = MemoryStore()
    key = Ed25519PrivateKey.generate()  # one registry.key: every replica holds it
    async with AsyncExitStack() as stack:
        hs = []
        for name in ("a", "b"):
            store: Any = SqlStore(url) if url else shared
            hs.append(
                await stack.enter_async_context(
                    running(tmp_path / name, store=store, nodes=nodes, gateway_key=key, **settings)
                )
            )
        yield hs[0], hs[1]


def _row(h: Harness, key: str) -> str:
    """The name of ``key``'s row in the store, as ``h``'s replica makes it."""
    idem = h.runtime.idempotency
    assert isinstance(idem, SharedIdempotency)
    return idem.key_hash(key)


async def _register_everywhere(a: Harness, b: Harness, node_id: str = "n1") -> None:
    await a.register(node_id)
    sync = b.app.state.node_sync
    assert sync is not None
    await sync.poll()  # b learns the node from the store
    assert b.table.get(node_id) is not None


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None: one MemoryStore; else a database both replicas open. Not SQLite: replicas on
    one SQLite file are not supported, and a registry there keeps its keys to itself
    (``tests/registry/test_app.py``)."""
    if request.param == "memory":
        return None
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


async def test_an_id_run_on_one_replica_is_replayed_on_the_other(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        hdr = {"X-Request-Id": "job-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code == 200
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        r2 = await b.client.post(CHAT, json=BODY, headers=hdr)
        assert r2.status_code == 200, r2.text
        assert r2.headers["x-mesh-replayed"] == "true"
        assert r2.json() == r1.json()
        assert a.nodes.calls() == 1
        # another id runs, on either replica
        assert (await b.client.post(CHAT, json=BODY, headers={"X-Request-Id": "j2"})).is_success
        assert a.nodes.calls() == 2


async def test_a_kept_answer_is_never_in_the_store_in_clear(
    tmp_path: Path, store_url: str | None
) -> None:
    """docs/security.md, "Privacy": the store never holds an output. The answer kept for
    another replica's replay is sealed under the registry key (``core/answer_seal.py``);
    a replica with another registry key refuses the duplicate (409), never replays bytes
    it cannot open."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        hdr = {"X-Request-Id": "private-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code == 200 and "Hello!" in r1.text
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        now = datetime.now(timezone.utc)
        h = _row(a, anonymous_key(CHAT, "private-1", BODY))
        row = await a.store.claim_request_key(h, "a-reader", False, now, now)
        assert row is not None and row.state == "done" and row.body is not None
        assert b"Hello!" not in row.body and b"choices" not in row.body, row.body[:200]
        r2 = await b.client.post(CHAT, json=BODY, headers=hdr)  # the same registry key
        assert r2.headers["x-mesh-replayed"] == "true" and r2.json() == r1.json()
        other = {"X-Request-Id": "private-2"}
        assert (await a.client.post(CHAT, json=BODY, headers=other)).status_code == 200
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        idem = b.runtime.idempotency
        assert isinstance(idem, SharedIdempotency)
        idem.seal = AnswerSeal.random()  # a replica with another registry.key
        r3 = await b.client.post(CHAT, json=BODY, headers=other)
        assert r3.status_code == 409 and "registry.key" in r3.json()["error"]["message"], r3.text
        assert a.nodes.calls() == 2


async def test_an_anonymous_rows_name_confirms_no_guessed_prompt(
    tmp_path: Path, store_url: str | None
) -> None:
    """docs/security.md, "Privacy": an anonymous client's row was named by the SHA-256 of
    its path, address, id and prompt digest, so whoever reads ``idempotency_keys`` could
    confirm a guessed prompt, id and address for 10 min (found 2026-12-05). It is named by an
    HMAC under a key derived from ``registry.key`` now: both replicas (one key) agree on it,
    the unkeyed hash finds nothing, and a replica with another key names it otherwise."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        hdr = {"X-Request-Id": "guess-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code == 200
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        key = anonymous_key(CHAT, "guess-1", BODY)
        guessed = hashlib.sha256(key.encode("utf-8")).hexdigest()  # a reader's guess
        assert await a.store.get_request_key(guessed) is None
        named = _row(a, key)
        assert named == _row(b, key) and len(named) == 64
        row = await a.store.get_request_key(named)
        assert row is not None and row.state == "done"
        r2 = await b.client.post(CHAT, json=BODY, headers=hdr)
        assert r2.headers["x-mesh-replayed"] == "true" and r2.json() == r1.json()
        other = ScopeNames.of_registry_key(Ed25519PrivateKey.generate(), IDEMPOTENCY_KEYS)
        assert other.digest(key) != named  # a replica with another registry.key


def _previous_version_replays(rec: IdempotencyRecord) -> bool:
    """Whether a replica of the version before sealing (main's ``_replay``: it knows no
    seal) would replay ``rec``'s body as the answer, rather than refuse it (409)."""
    return not (rec.stream or rec.status is None or rec.body is None)


async def test_a_replica_of_the_previous_version_never_replays_a_sealed_answer(
    tmp_path: Path, store_url: str | None
) -> None:
    """Review 14: during a rolling upgrade a replica of the previous version shares the
    store. It replayed any done row with a status and a body: the sealed bytes (nonce,
    ciphertext and tag) went to the retrying client as its 200 answer. The kept row has
    no status in clear now (status, media type and headers are sealed with the body), so
    that replica refuses the duplicate 409, and this version still replays it whole."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        hdr = {"X-Request-Id": "upgrade-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code == 200
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        now = datetime.now(timezone.utc)
        h = _row(a, anonymous_key(CHAT, "upgrade-1", BODY))
        row = await a.store.claim_request_key(h, "a-reader", False, now, now)
        assert row is not None and row.state == "done" and row.body is not None
        assert not _previous_version_replays(row), (row.status, row.body[:40])
        r2 = await b.client.post(CHAT, json=BODY, headers=hdr)
        assert r2.status_code == 200 and r2.headers["x-mesh-replayed"] == "true"
        assert r2.json() == r1.json()
        assert r2.headers["content-type"] == r1.headers["content-type"]
        assert a.nodes.calls() == 1


async def test_a_duplicate_waits_for_the_other_replica_and_shares_its_answer(
    tmp_path: Path, store_url: str | None
) -> None:
    nodes = FakeNodes()
    gate = asyncio.Event()
    entered = asyncio.Event()
    plain = nodes.handler

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            entered.set()
            await gate.wait()
        return plain(request)

    nodes.handler = slow  # type: ignore[method-assign, assignment]
    async with two_replicas(tmp_path, store_url, nodes) as (a, b):
        await _register_everywhere(a, b)
        hdr = {"X-Request-Id": "slow-1"}
        first = asyncio.create_task(a.client.post(CHAT, json=BODY, headers=hdr))
        await asyncio.wait_for(entered.wait(), 5)
        stream = await b.client.post(CHAT, json={**BODY, "stream": True}, headers=hdr)
        assert stream.status_code == 409  # a stream never joins a running request
        assert "another replica" in stream.json()["error"]["message"]
        dup = asyncio.create_task(b.client.post(CHAT, json=BODY, headers=hdr))
        await asyncio.sleep(0.3)
        assert not dup.done(), dup.result().text  # waiting on replica a, not running it
        gate.set()
        r1, r2 = await asyncio.wait_for(asyncio.gather(first, dup), 10)
        assert r1.status_code == r2.status_code == 200
        assert r1.json() == r2.json()
        assert nodes.calls() == 1


async def test_a_stream_retried_at_once_after_a_5xx_elsewhere_runs(
    tmp_path: Path, store_url: str | None
) -> None:
    # replica a failed a stream before it began (no reservation: its store's connection
    # lost; a 5xx): it frees the key in the background, after its answer went out
    # (slower still while its store reconnects); the client's retry of the stream at b, at
    # once, found the key running there and was refused 409 duplicate_request (the
    # replicas e2e test, after pg_terminate_backend)
    async with two_replicas(tmp_path, store_url) as (a, b):
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        key = anonymous_key(CHAT, "retried-1", BODY)
        assert await ia.begin(key, True) is None  # a runs it
        retry = asyncio.create_task(ib.begin(key, True))
        await asyncio.sleep(0.3)
        assert not retry.done()  # waiting for a's end, not refused
        ia.abandon(key)  # a's 5xx before the stream began: the key freed
        assert await asyncio.wait_for(retry, scaled(SOON_S)) is None  # b runs it
        ib.finish(key, None)
        # still running at a after the wait: refused, as before
        ib.stream_wait_s = 0.2
        assert await ia.begin(key + "x", True) is None
        with pytest.raises(DuplicateRequest, match="running on another replica"):
            await ib.begin(key + "x", True)


@pytest.mark.parametrize("first", ["json", "stream"])
async def test_a_key_a_5xx_frees_is_free_before_the_client_has_the_answer(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    # replica a's request ends 502 (a stream: refused before its first byte, answered as
    # JSON): a frees the key in the store before the answer goes out, so the client's
    # retry of the stream at b, the moment it has that answer, runs there without waiting
    # (stream_wait_s=0). Before, the release was written in the background after the
    # answer, and the retry met the key still held: 409 duplicate_request.
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.0
        ia.release_wait_s = 30.0  # not the bound under test (a loaded box's store is slow)
        release = ia.store.release_request_key

        async def slow_release(h: str, owner: str, *claim: str) -> None:
            await asyncio.sleep(0.2)  # a store a little slower than the client's retry
            await release(h, owner, *claim)

        monkeypatch.setattr(ia.store, "release_request_key", slow_release)
        node = a.nodes.nodes["n1:8801"]
        node.behavior = "500"
        hdr = {"X-Request-Id": f"free-{first}"}
        r1 = await a.client.post(CHAT, json={**BODY, "stream": first == "stream"}, headers=hdr)
        assert r1.status_code == 502, r1.text
        node.behavior = "ok"
        r2 = await b.client.post(CHAT, json={**BODY, "stream": True}, headers=hdr)
        assert r2.status_code == 200, r2.text
        assert "data: [DONE]" in r2.text
        assert a.nodes.calls() == 2


@pytest.mark.parametrize("status", [204, 302])
async def test_a_stream_whose_node_answers_a_non_200_2xx_or_3xx_frees_its_id_everywhere(
    tmp_path: Path, store_url: str | None, status: int
) -> None:
    # replica a's stream meets a node answering 204 or 302 (passed on as a 502): its id is
    # freed in the store before the answer goes out, as for any 5xx, so the client's retry
    # runs at b at once (found 2026-12-03: the id stayed held as if the stream had run: 409
    # duplicate_request for ten minutes, on every replica)
    nodes = streams_after_one(status)
    async with two_replicas(tmp_path, store_url, nodes) as (a, b):
        await _register_everywhere(a, b)
        ib = b.runtime.idempotency
        assert isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.0  # the key must be free when a's answer is out, not later
        stream = {**BODY, "stream": True}
        hdr = {"X-Request-Id": f"odd-{status}"}
        r1 = await a.client.post(CHAT, json=stream, headers=hdr)
        assert r1.status_code == 502, r1.text
        r2 = await b.client.post(CHAT, json=stream, headers=hdr)
        assert r2.status_code == 200, r2.text  # ran, not 409 duplicate_request
        assert "data: [DONE]" in r2.text and nodes.calls() == 2


async def test_a_slow_or_failing_store_delays_the_answer_only_by_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await _register_everywhere(a, b)
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.0
        ia.release_wait_s = 0.05
        release = ia.store.release_request_key
        gate = asyncio.Event()
        tries: list[int] = []

        async def flaky_release(h: str, owner: str, *claim: str) -> None:
            tries.append(1)
            if len(tries) == 1:
                raise OSError("store down")
            await gate.wait()  # then slow: until the test lets it through
            await release(h, owner, *claim)

        monkeypatch.setattr(ia.store, "release_request_key", flaky_release)
        a.nodes.nodes["n1:8801"].behavior = "500"
        hdr = {"X-Request-Id": "bounded-1"}
        post = a.client.post(CHAT, json={**BODY, "stream": True}, headers=hdr)
        r1 = await asyncio.wait_for(post, 10)  # not held until the store answers
        assert r1.status_code == 502, r1.text  # the same answer, not another error
        held = await ia.store.get_request_key(ia.key_hash(anonymous_key(CHAT, "bounded-1", BODY)))
        assert held is not None and held.state == "running"  # answered before the release
        a.nodes.nodes["n1:8801"].behavior = "ok"
        gate.set()
        await ia.flush()  # the release went on in the background, retried
        assert len(tries) == 2 and not ia._freeing
        r2 = await b.client.post(CHAT, json={**BODY, "stream": True}, headers=hdr)
        assert r2.status_code == 200, r2.text


async def test_a_request_whose_replica_died_is_refused_not_run_again(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        idem = b.runtime.idempotency
        assert isinstance(idem, SharedIdempotency)
        key = anonymous_key(CHAT, "lost-1", BODY)
        long_ago = datetime.now(timezone.utc) - timedelta(seconds=60)
        taken = await idem.store.claim_request_key(
            idem.key_hash(key), "replica-killed", False, long_ago, long_ago + timedelta(hours=1)
        )
        assert taken is None  # a replica that was killed mid-request holds it
        r = await b.client.post(CHAT, json=BODY, headers={"X-Request-Id": "lost-1"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["reason"] == "owner_lost"
        # the client's id, not its prompt's digest (found 2026-12-07, replica41)
        assert "with id 'lost-1' was being served" in r.json()["error"]["message"]
        assert a.nodes.calls() == 0


async def test_a_stream_whose_replica_died_is_refused_owner_lost(
    tmp_path: Path, store_url: str | None
) -> None:
    """A stream retried at another replica after its own died mid-stream was refused 409
    "is running on another replica", without ``reason`` (found 2026-12-04, a replica
    SIGKILLed mid-stream): the client could not tell to send a new id, and the same id was
    refused for ``running_s`` (the deadline + 10 min). Now ``owner_lost``, as a request's."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        idem = b.runtime.idempotency
        assert isinstance(idem, SharedIdempotency)
        key = anonymous_key(CHAT, "lost-stream-1", BODY)
        long_ago = datetime.now(timezone.utc) - timedelta(seconds=60)
        taken = await idem.store.claim_request_key(
            idem.key_hash(key), "replica-killed", True, long_ago, long_ago + timedelta(hours=1)
        )
        assert taken is None  # a replica that was killed mid-stream holds it
        hdr = {"X-Request-Id": "lost-stream-1"}
        for body in ({**BODY, "stream": True}, BODY):  # the stream again, or not streamed
            r = await b.client.post(CHAT, json=body, headers=hdr)
            assert r.status_code == 409, r.text
            error = r.json()["error"]
            assert error["reason"] == "owner_lost" and "stopped" in error["message"]
            assert "never executed twice" in error["message"]
        assert a.nodes.calls() == 0


async def test_a_retryable_failure_frees_the_id_for_the_other_replica(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        node = a.nodes.nodes["n1:8801"]
        node.behavior = "500"
        hdr = {"X-Request-Id": "retry-1"}
        assert (await a.client.post(CHAT, json=BODY, headers=hdr)).status_code == 502
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        node.behavior = "ok"
        # b's router does not hold a's failure against the node: it runs it now
        r = await b.client.post(CHAT, json=BODY, headers=hdr)
        assert r.status_code == 200 and "x-mesh-replayed" not in r.headers


async def test_a_kept_answer_leaves_the_process_once_the_store_holds_it(
    tmp_path: Path, store_url: str | None
) -> None:
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        idem = a.runtime.idempotency
        assert isinstance(idem, SharedIdempotency)
        hdr = {"X-Request-Id": "mem-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code == 200
        await idem.flush()
        key = anonymous_key(CHAT, "mem-1", BODY)
        assert not idem.holds(key) and len(idem) == 0 and idem.bytes == 0  # one copy: the row's
        r2 = await a.client.post(CHAT, json=BODY, headers=hdr)  # the same replica again
        assert r2.status_code == 200, r2.text
        assert r2.headers["x-mesh-replayed"] == "true" and r2.json() == r1.json()
        assert r2.headers["x-mesh-receipt"] == r1.headers["x-mesh-receipt"]
        assert a.nodes.calls() == 1
        # a stream holds no answer: its key leaves too, and a repeat is refused from the row
        stream = {**BODY, "stream": True}
        shdr = {"X-Request-Id": "mem-s"}
        assert (await a.client.post(CHAT, json=stream, headers=shdr)).is_success
        await idem.flush()
        assert not idem.holds(anonymous_key(CHAT, "mem-s", BODY))
        again = await a.client.post(CHAT, json=stream, headers=shdr)
        assert again.status_code == 409, again.text
        assert "a stream is never executed twice" in again.text
        assert (
            await a.client.post(CHAT, json=BODY, headers=shdr)
        ).status_code == 409  # nor as JSON
        assert a.nodes.calls() == 2


async def test_an_answer_the_store_could_not_take_stays_in_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(tmp_path) as (a, _b):
        await _register_everywhere(a, _b)
        idem = a.runtime.idempotency
        assert isinstance(idem, SharedIdempotency)

        async def down(rec: IdempotencyRecord) -> None:
            raise OSError("store down")

        monkeypatch.setattr(idem.store, "finish_request_key", down)
        hdr = {"X-Request-Id": "kept-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        await idem.flush()  # three tries, all failed
        assert idem.holds(anonymous_key(CHAT, "kept-1", BODY)) and idem.bytes > 0
        r2 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r2.headers["x-mesh-replayed"] == "true" and r2.json() == r1.json()
        assert a.nodes.calls() == 1


async def test_records_round_trip_and_expire(tmp_path: Path) -> None:
    store = MemoryStore()
    now = datetime.now(timezone.utc)
    assert await store.claim_request_key("h", "r1", False, now, now + timedelta(seconds=5)) is None
    held = await store.claim_request_key("h", "r2", False, now, now + timedelta(seconds=5))
    assert held is not None and held.owner == "r1" and held.state == "running"
    done = IdempotencyRecord("h", "r1", False, "done", now, now + timedelta(seconds=1), 200, b"{}")
    assert not await store.finish_request_key(IdempotencyRecord("h", "r2", False, "done", now, now))
    assert await store.finish_request_key(done)
    later = now + timedelta(seconds=2)
    assert await store.claim_request_key("h", "r2", False, later, later) is None  # expired


async def test_a_claim_whose_answer_was_lost_after_its_commit_does_not_hold_the_id(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # replica a's claim of the id commits, then its answer is lost (the connection killed
    # after the commit: pg_terminate_backend, a network cut): the request fails there
    # without running. Found 2026-12-03: the row stayed "running" under a, a live replica,
    # for running_s (12 min): the client's retry waited on it at b (and at a) all along.
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        ia = a.runtime.idempotency
        assert isinstance(ia, SharedIdempotency)
        claim = ia.store.claim_request_key
        lost: list[int] = []

        async def commit_then_lose(*args: Any, **kw: Any) -> IdempotencyRecord | None:
            got = await claim(*args, **kw)
            if not lost:
                lost.append(1)
                raise OSError("connection lost after the commit")
            return got

        monkeypatch.setattr(ia.store, "claim_request_key", commit_then_lose)
        hdr = {"X-Request-Id": "lost-claim-1"}
        r1 = await a.client.post(CHAT, json=BODY, headers=hdr)
        assert r1.status_code >= 500 and a.nodes.calls() == 0
        retry = b.client.post(CHAT, json=BODY, headers=hdr)
        r2 = await asyncio.wait_for(retry, 10)  # before: waited on a for running_s
        assert r2.status_code == 200, r2.text
        assert "x-mesh-replayed" not in r2.headers and a.nodes.calls() == 1
        await b.runtime.idempotency.flush()  # type: ignore[attr-defined]
        r3 = await asyncio.wait_for(a.client.post(CHAT, json=BODY, headers=hdr), 10)
        assert r3.headers["x-mesh-replayed"] == "true" and a.nodes.calls() == 1


async def test_a_request_cancelled_while_its_claim_commits_does_not_hold_the_id(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the request is cancelled while replica a's claim is in the store (a server that
    # cancels a request whose client left): the claim commits, the request never runs. Found 2026-12-03: the row stayed "running"
    # under a (alive) for running_s, and the client's retry at b waited on it all along.
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        ia = a.runtime.idempotency
        assert isinstance(ia, SharedIdempotency)
        claim = ia.store.claim_request_key
        committed = asyncio.Event()

        async def slow_answer(*args: Any, **kw: Any) -> IdempotencyRecord | None:
            got = await claim(*args, **kw)
            if not committed.is_set():
                committed.set()
                await asyncio.sleep(0.3)  # the commit's answer is on its way
            return got

        monkeypatch.setattr(ia.store, "claim_request_key", slow_answer)
        hdr = {"X-Request-Id": "left-1"}
        first = asyncio.create_task(a.client.post(CHAT, json=BODY, headers=hdr))
        await asyncio.wait_for(committed.wait(), 10)
        first.cancel()  # the client is gone
        with pytest.raises(asyncio.CancelledError):
            await first
        assert a.nodes.calls() == 0
        retry = b.client.post(CHAT, json=BODY, headers=hdr)
        r2 = await asyncio.wait_for(retry, 10)  # before: waited on a for running_s
        assert r2.status_code == 200, r2.text
        assert "x-mesh-replayed" not in r2.headers and a.nodes.calls() == 1


async def test_an_end_the_store_could_not_take_is_written_once_it_answers_again(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # replica a's request fails (502) while the store is out (a failover, connections
    # killed): the release of its id fails on every try. Found 2026-12-03: a gave up after
    # three tries (1.2 s), and the row stayed "running" under a, a live replica, for
    # running_s (12 min): the client's retry waited on it all along, at b and at a itself.
    # Now a keeps trying (every ``park_retry_s``) until the store takes it.
    async with two_replicas(tmp_path, store_url) as (a, b):
        await _register_everywhere(a, b)
        ia = a.runtime.idempotency
        assert isinstance(ia, SharedIdempotency)
        ia.release_wait_s = 0.05
        release = ia.store.release_request_key
        down = {"tries": 0}

        async def failover(h: str, owner: str, *claim: str) -> None:
            if owner == ia.owner and down["tries"] < 4:  # the three tries, and one more
                down["tries"] += 1
                raise OSError("the store is out")
            await release(h, owner, *claim)

        monkeypatch.setattr(ia.store, "release_request_key", failover)
        node = a.nodes.nodes["n1:8801"]
        node.behavior = "500"
        hdr = {"X-Request-Id": "failover-1"}
        assert (await a.client.post(CHAT, json=BODY, headers=hdr)).status_code == 502
        node.behavior = "ok"
        r2 = await asyncio.wait_for(b.client.post(CHAT, json=BODY, headers=hdr), 15)
        assert r2.status_code == 200, r2.text  # before: waited on a for running_s
        assert down["tries"] == 4 and a.nodes.calls() == 2
