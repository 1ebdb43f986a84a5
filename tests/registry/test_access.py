"""Users and API keys at the gateway: every attack the admit stage stands against.

Wrong and revoked keys (401 in OpenAI's shape, nothing sent to a node), an anonymous flood
from one address (429 while another address is served), a keyed client over its rpm/tpm
(429 with ``Retry-After`` and ``x-ratelimit-*``), another client's request id replayed,
anonymous requests on a saturated mesh (served after keyed ones), per-key regions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.ratelimit import Limits
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.registry.helpers import FakeNodes, Harness, fund, running
from tests.waiting import SOON_S, scaled

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


def chat(content: str = "hi", **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **kw}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def from_address(h: Harness, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app that connects from ``ip``."""
    transport = httpx.ASGITransport(app=h.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
        yield c


async def new_key(h: Harness, **kw: Any) -> tuple[str, str]:
    """A new API key whose user has a balance (settlement: a key without one gets 402)."""
    made = await create_api_key(h.store, **kw)
    assert made is not None
    await fund(h, user_account(made[1].key_id))
    return made[0], made[1].key_id


async def test_no_key_and_bearer_anonymous_are_anonymous(tmp_path: Path) -> None:
    async with running(tmp_path, anonymous_rpm=60) as h:
        await h.register("a")
        for headers in ({}, bearer("anonymous"), {"Authorization": "Bearer "}):
            r = await h.client.post(CHAT, json=chat(), headers=headers)
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-limit-requests"] == "60"
        assert r.headers["x-ratelimit-remaining-requests"] == "57"


async def test_a_wrong_key_is_401_and_never_reaches_a_node(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a")
        await new_key(h, name="real")
        for headers in (
            bearer("sk-none"),
            bearer("lmk_" + "x" * 43),
            {"Authorization": "Basic dTpw"},
        ):
            for body in (chat(), chat(stream=True)):
                r = await h.client.post(CHAT, json=body, headers=headers)
                assert r.status_code == 401, r.text
                err = r.json()["error"]
                assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
                assert "x" * 20 not in err["message"]  # the key is not echoed whole
        assert node.calls == []


async def test_a_revoked_key_is_401_within_a_poll(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a")
        key, key_id = await new_key(h, name="soon-gone")
        assert (await h.client.post(CHAT, json=chat(), headers=bearer(key))).status_code == 200
        await h.store.revoke_api_key(key_id, h.store.api_keys[key_id].created_at)  # elsewhere
        await h.runtime.keys.poll()  # what the lifespan's loop does every second
        r = await h.client.post(CHAT, json=chat(), headers=bearer(key))
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        assert len(node.calls) == 1
        # found 2026-12-06 (newuser33): `llm-mesh ask --api-key` with a revoked key said only
        # "the API key key_... was revoked": what to do now is said, as for a wrong key
        said = r.json()["error"]["message"]
        assert "a new key from the registry's admin" in said, said
        assert "send no Authorization header (or 'Bearer anonymous')" in said, said


async def test_anonymous_flood_from_one_address_is_limited_while_another_is_served(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, anonymous_rpm=3) as h:
        node = await h.register("a")
        async with (
            from_address(h, "203.0.113.7") as flood,
            from_address(h, "198.51.100.2") as other,
        ):
            codes = [(await flood.post(CHAT, json=chat())).status_code for _ in range(10)]
            assert codes == [200] * 3 + [429] * 7
            r = await flood.post(CHAT, json=chat(stream=True))
            assert r.status_code == 429
            err = r.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
            assert r.headers["retry-after"] == "20"  # 3 a minute: one more in 20 s
            assert r.headers["x-ratelimit-limit-requests"] == "3"
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            assert r.headers["x-ratelimit-reset-requests"] == "1m0s"
            assert (await other.post(CHAT, json=chat())).status_code == 200  # its own bucket
            assert len(node.calls) == 4
            h.clock.advance(20.0)
            assert (await flood.post(CHAT, json=chat())).status_code == 200


async def test_many_addresses_share_one_anonymous_total_per_process(tmp_path: Path) -> None:
    """Found 2026-12-03: the anonymous limit was per address (IPv6 per /64) only, so a
    client holding a /48 (65,536 /64s) had 65,536 budgets. Every address together now
    gets at most ``anonymous_total_rpm`` a minute (429 with ``Retry-After`` in the usual
    shape); a request its own address's limit refused does not count; keyed clients are
    served meanwhile; the minute refills it."""
    from LLM_Mesh.config import Settings

    assert Settings().anonymous_total_rpm == 6000  # on by default
    async with running(tmp_path, anonymous_rpm=2, anonymous_total_rpm=5) as h:
        node = await h.register("a")
        key, _ = await new_key(h, rpm=100)
        async with from_address(h, "2001:db8:7:0::1") as first:  # its own limit: 2 a minute
            assert [(await first.post(CHAT, json=chat())).status_code for _ in range(3)] == [
                200, 200, 429,
            ]  # fmt: skip
        codes = []
        for i in range(1, 8):  # one request from each of 7 more /64s of the same /48
            async with from_address(h, f"2001:db8:7:{i:x}::1") as c:
                r = await c.post(CHAT, json=chat(stream=i % 2 == 0))
                codes.append(r.status_code)
        assert codes == [200, 200, 200] + [429] * 4  # 2 + 3 = the total of 5
        err = r.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
        assert "every address together" in err["message"]
        assert r.headers["retry-after"] == "12"  # 5 a minute: one more in 12 s
        assert len(node.calls) == 5
        assert (await h.client.post(CHAT, json=chat(), headers=bearer(key))).status_code == 200
        h.clock.advance(12.0)
        async with from_address(h, "198.51.100.77") as later:
            assert (await later.post(CHAT, json=chat())).status_code == 200
            assert (await later.post(CHAT, json=chat())).status_code == 429


async def test_keyed_client_over_its_rpm_gets_429_and_headers_on_every_answer(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, anonymous_rpm=1) as h:
        await h.register("a")
        key, _ = await new_key(h, rpm=2)
        r = await h.client.post(CHAT, json=chat(), headers=bearer(key))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "2"
        assert r.headers["x-ratelimit-remaining-requests"] == "1"
        r = await h.client.post(CHAT, json=chat(stream=True), headers=bearer(key))
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "0"
        r = await h.client.post(CHAT, json=chat(), headers=bearer(key))
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["retry-after"] == "30"
        # the key's limit is its own: not the anonymous one, and anonymous is not the key's
        assert (await h.client.post(CHAT, json=chat())).status_code == 200
        assert (await h.client.post(CHAT, json=chat())).status_code == 429


async def test_keyed_client_over_its_tpm_and_usage_settles_the_estimate(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        key, key_id = await new_key(h, tpm=100)
        # charged before: the prompt's usual count (usual_prompt_tokens("hi", 1): 1 + 5 a
        # message + 16 = 22) + max_tokens = 62; the node used 10 + 5 = 15
        r = await h.client.post(CHAT, json=chat(max_tokens=40), headers=bearer(key))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-tokens"] == "100"
        assert r.headers["x-ratelimit-remaining-tokens"] == "38"
        assert "x-ratelimit-limit-requests" not in r.headers  # no rpm on this key
        # settled after: 47 came back, so 62 fit again (without settlement: only 38 left)
        r = await h.client.post(CHAT, json=chat(max_tokens=40), headers=bearer(key))
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-tokens"] == "23"
        r = await h.client.post(CHAT, json=chat(max_tokens=50), headers=bearer(key))  # 72 > 70
        assert r.status_code == 429 and r.headers["x-ratelimit-remaining-tokens"] == "70"
        r = await h.client.post(CHAT, json=chat(max_tokens=500), headers=bearer(key))
        assert r.status_code == 429 and "more than the 100 tokens" in r.json()["error"]["message"]
        # a stream settles when it ends: 4 + 3 tokens used of 62 charged
        r = await h.client.post(CHAT, json=chat(max_tokens=40, stream=True), headers=bearer(key))
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-tokens"] == "8"
        await r.aclose()
        assert h.runtime.limiter.headers(f"key:{key_id}", Limits(tpm=100), h.clock()) == (
            ("x-ratelimit-limit-tokens", "100"),
            ("x-ratelimit-remaining-tokens", "63"),  # 8 + 62 - 7
            ("x-ratelimit-reset-tokens", "22.2s"),
        )


async def test_n_choices_are_charged_to_the_tpm_for_each(tmp_path: Path) -> None:
    """``n: 3`` may use ``max_tokens`` three times: charged before it runs for each choice
    (found 2026-12-03: charged as one answer, so a key's tpm let three times its tokens
    through before the usage came back)."""
    async with running(tmp_path, limits=RequestLimits(max_n=3)) as h:
        await h.register("a")
        key, _ = await new_key(h, tpm=100)
        # the prompt's usual count (ceil(2 / 3) + 5 a message + 16 = 22) + 3 x 20 = 82 before
        r = await h.client.post(CHAT, json=chat(max_tokens=20, n=3), headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-remaining-tokens"] == "18"
        r = await h.client.post(CHAT, json=chat(max_tokens=25, n=3), headers=bearer(key))
        assert r.status_code == 429  # 22 + 75 > the 85 left once the first's 15 came back


class HeldNodes(FakeNodes):
    """Fake nodes that hold every inference request until ``gate`` is set (requests in
    flight at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.arrived = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.path != "/mesh/health":
            self.arrived += 1
            await self.gate.wait()
        return super().handler(request)


async def test_concurrent_requests_without_max_tokens_cannot_pass_the_tpm(tmp_path: Path) -> None:
    """A request without ``max_tokens`` may run to the end of the model's context, so it is
    charged up to the key's whole tpm before it runs (given back when it ends); charged its
    prompt estimate only, any number of them ran at once on a key of 100 tokens a minute,
    each up to 32,768 tokens."""
    nodes = HeldNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        key, key_id = await new_key(h, tpm=100)
        sent = [
            asyncio.create_task(h.client.post(CHAT, json=chat(), headers=bearer(key)))
            for _ in range(5)
        ]
        for _ in range(200):
            await asyncio.sleep(0.01)
            if nodes.arrived + sum(t.done() for t in sent) == len(sent):
                break
        nodes.gate.set()
        codes = sorted(r.status_code for r in await asyncio.gather(*sent))
        assert codes == [200, 429, 429, 429, 429], codes
        # the one that ran gave back what it did not use (10 + 5 of the node's usage)
        left = h.runtime.limiter.headers(f"key:{key_id}", Limits(tpm=100), h.clock())
        assert ("x-ratelimit-remaining-tokens", "85") in left, left
        # with max_tokens a request is charged its estimate, as before (22 + 40)
        r = await h.client.post(CHAT, json=chat(max_tokens=40), headers=bearer(key))
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-tokens"] == "23"


@pytest.mark.parametrize("behavior", ["400", "500"], ids=["refused", "failed"])
async def test_a_stream_without_an_answer_gives_its_token_charge_back(
    tmp_path: Path, behavior: str
) -> None:
    """A stream a node refuses (its own 400, passed on) or fails (502) used no tokens: the
    account stage settles its charge at 0 (``account_passthrough`` / ``account_failure``);
    the admission leaves a stream's settling to its end."""
    async with running(tmp_path) as h:
        await h.register("a", behavior=behavior)
        key, key_id = await new_key(h, tpm=100)
        r = await h.client.post(CHAT, json=chat(max_tokens=60, stream=True), headers=bearer(key))
        assert r.status_code == (400 if behavior == "400" else 502)
        assert r.headers["x-ratelimit-remaining-tokens"] == "18"  # 22 + 60 charged before
        left = h.runtime.limiter.headers(f"key:{key_id}", Limits(tpm=100), h.clock())
        assert ("x-ratelimit-remaining-tokens", "100") in left  # all 82 came back


async def test_another_clients_request_id_is_not_replayed(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a")
        key_a, _ = await new_key(h, name="a")
        key_b, _ = await new_key(h, name="b")
        rid = {"X-Request-Id": "order-42"}
        async with from_address(h, "203.0.113.1") as alice, from_address(h, "203.0.113.2") as eve:
            first = await alice.post(CHAT, json=chat("alice's secret"), headers=rid)
            assert first.status_code == 200
            stolen = await eve.post(CHAT, json=chat("anything"), headers=rid)
            assert stolen.status_code == 200 and "x-mesh-replayed" not in stolen.headers
            assert len(node.calls) == 2  # eve's request ran on its own
            again = await alice.post(CHAT, json=chat("alice's secret"), headers=rid)
            assert again.headers["x-mesh-replayed"] == "true" and len(node.calls) == 2
            # keyed: the key is the scope, whatever the address
            ka = await alice.post(CHAT, json=chat(), headers={**rid, **bearer(key_a)})
            kb = await alice.post(CHAT, json=chat(), headers={**rid, **bearer(key_b)})
            assert "x-mesh-replayed" not in ka.headers and "x-mesh-replayed" not in kb.headers
            ka2 = await eve.post(CHAT, json=chat(), headers={**rid, **bearer(key_a)})
            assert ka2.headers["x-mesh-replayed"] == "true"
            assert len(node.calls) == 4


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anonymous_clients_sharing_an_address_never_get_each_others_answer(
    tmp_path: Path, stream: bool
) -> None:
    """Anonymous clients are scoped by address, which many share (a NAT, a campus, an IPv6
    /64, a proxy in front of the gateway): one sending the same common request id with
    another prompt runs its own request; it is neither handed the other's answer nor told
    of it by a 409 (found 2026-12-04: it got the other's whole answer, replayed for 10 min).
    A retry of the same request (the same body) still replays / is refused as before."""
    async with running(tmp_path) as h:
        node = await h.register("a")
        rid = {"X-Request-Id": "1"}
        async with from_address(h, "203.0.113.1") as alice, from_address(h, "203.0.113.1") as bob:
            first = await alice.post(CHAT, json=chat("alice's secret", stream=stream), headers=rid)
            assert first.status_code == 200
            other = await bob.post(CHAT, json=chat("bob's own", stream=stream), headers=rid)
            assert other.status_code == 200, other.text
            assert "x-mesh-replayed" not in other.headers and len(node.calls) == 2
            again = await alice.post(CHAT, json=chat("alice's secret", stream=stream), headers=rid)
            assert len(node.calls) == 2  # the retry did not run again
            if stream:
                assert again.status_code == 409
            else:
                assert again.headers["x-mesh-replayed"] == "true" and again.json() == first.json()


async def _until(cond: Callable[[], bool], timeout_s: float = SOON_S) -> None:
    """Poll ``cond`` until true (fails after ``timeout_s``, :func:`tests.waiting.scaled`).
    The deadline only bounds a failure (docs/testing.md, "Waiting"): 5 s unscaled until
    2026-12-06 (strength38), short on a loaded box, where many registry tests wait here."""
    deadline = time.monotonic() + scaled(timeout_s)
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_saturated_mesh_serves_keyed_requests_before_anonymous_ones(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)
        # anonymous without a wait: refused at once, saying it is served last
        r = await h.client.post(CHAT, json=chat("anon-now"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        err = r.json()["error"]
        assert err["reason"] == "saturated" and err["anonymous"] is True
        assert "send X-Mesh-Wait or mesh_wait_s" in err["message"]  # it sent no wait
        # an anonymous request starts waiting first, a keyed one after it
        anon = asyncio.create_task(
            h.client.post(CHAT, json=chat("anon"), headers={"X-Mesh-Wait": "5"})
        )
        await _until(lambda: routing.waiters == 1)  # not a sleep: a loaded machine is slow
        keyed = asyncio.create_task(
            h.client.post(CHAT, json=chat("keyed"), headers={"X-Mesh-Wait": "5", **bearer(key)})
        )
        await _until(lambda: routing.waiters == 2)
        assert not anon.done() and not keyed.done()
        # while the keyed one waits, a free slot would go to it: anonymous ones keep off
        routing.finish(busy, Outcome.SUCCESS)
        r_keyed, r_anon = await asyncio.wait_for(asyncio.gather(keyed, anon), 5)
        assert r_keyed.status_code == 200 and r_anon.status_code == 200
        served = [c["body"]["messages"][0]["content"] for c in node.calls]
        assert served == ["keyed", "anon"]


async def test_an_anonymous_wait_ends_in_429_while_keyed_requests_hold_the_node(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)
        keyed = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "5", **bearer(key)})
        )
        await _until(lambda: routing.waiters == 1)
        for sent in ({"json": chat(mesh_wait_s=0.1)},
                     {"json": chat(), "headers": {"X-Mesh-Wait": "0.1"}}):  # fmt: skip
            r = await asyncio.wait_for(h.client.post(CHAT, **sent), scaled(SOON_S))
            err = r.json()["error"]
            assert r.status_code == 429 and err["anonymous"] is True
            # it sent a wait already (found 2026-12-05: told to send X-Mesh-Wait or mesh_wait_s)
            assert "X-Mesh-Wait or mesh_wait_s of 0.1 s ran out" in err["message"], err
            assert "send X-Mesh-Wait" not in err["message"]
        routing.finish(busy, Outcome.SUCCESS)
        assert (await asyncio.wait_for(keyed, scaled(SOON_S))).status_code == 200


async def _served_by(h: Any, n: int, **kw: Any) -> set[str]:
    """The nodes that served ``n`` chat requests posted with ``kw`` (each must be a 200)."""
    seen = set()
    for _ in range(n):
        r = await h.client.post(CHAT, **kw)
        assert r.status_code == 200, r.text
        seen.add(r.json()["mesh"]["node_id"])
    return seen


async def test_a_keys_avoid_regions_and_strict_mode(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("eu1", region="eu")
        await h.register("us1", region="us")
        await h.register("nowhere")
        no_eu, _ = await new_key(h, avoid_regions=["eu"])
        strict, _ = await new_key(h, avoid_regions=["eu"], strict_regions=True)

        assert "eu1" not in await _served_by(h, 20, json=chat(), headers=bearer(no_eu))
        # merged with the request's own avoid_regions
        assert await _served_by(h, 5, json=chat(avoid_regions=["us"]), headers=bearer(no_eu)) == {
            "nowhere"
        }
        assert await _served_by(h, 10, json=chat(), headers=bearer(strict)) == {"us1"}
        # strict mode as a request extension, without a key
        assert await _served_by(h, 10, json=chat(strict_regions=True, avoid_regions=["us"])) == {
            "eu1"
        }
        r = await h.client.post(CHAT, json=chat(avoid_regions=["us"]), headers=bearer(strict))
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        r = await h.client.post(CHAT, json=chat(strict_regions="yes"))
        assert r.status_code == 400 and r.json()["error"]["param"] == "strict_regions"
        assert all(
            "strict_regions" not in c["body"] for n in h.nodes.nodes.values() for c in n.calls
        )


async def test_a_region_is_avoided_however_its_case_or_spaces_are_written(tmp_path: Path) -> None:
    """Regions are the operators' and the clients' free text: ``EU-West`` in a node's
    node.toml is the region a client avoiding ``eu-west`` means (and a region of blanks is
    no region, for strict mode)."""
    async with running(tmp_path) as h:
        await h.register("eu1", region="EU-West")
        await h.register("eu2", region=" eu-west ")
        await h.register("blank", region="  ")
        await h.register("us1", region="us")
        key, _ = await new_key(h, avoid_regions=["Eu-West "])

        assert await _served_by(h, 20, json=chat(avoid_regions=["eu-west"])) <= {"blank", "us1"}
        assert await _served_by(h, 20, json=chat(), headers=bearer(key)) <= {"blank", "us1"}
        strict = chat(avoid_regions=["eu-west"], strict_regions=True)
        assert await _served_by(h, 10, json=strict) == {"us1"}


async def test_guessing_keys_is_limited_per_address(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        codes = [
            (await h.client.post(CHAT, json=chat(), headers=bearer(f"lmk_guess{i}"))).status_code
            for i in range(62)
        ]
        assert codes == [401] * 60 + [429] * 2
        async with from_address(h, "198.51.100.9") as other:
            r = await other.post(CHAT, json=chat(), headers=bearer("lmk_guess"))
            assert r.status_code == 401


async def test_a_replayed_answer_costs_no_tokens(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        key, _ = await new_key(h, tpm=1000)
        headers = {**bearer(key), "X-Request-Id": "r-1"}
        r = await h.client.post(CHAT, json=chat(max_tokens=100), headers=headers)
        assert r.headers["x-ratelimit-remaining-tokens"] == "878"  # 22 + 100 charged
        r = await h.client.post(CHAT, json=chat(max_tokens=100), headers=headers)
        assert r.headers["x-mesh-replayed"] == "true"
        # charged 122 again at the check, given back as the replay called no node
        left = dict(h.runtime.limiter.headers(f"key:{_key_id(h)}", Limits(tpm=1000), h.clock()))
        assert left["x-ratelimit-remaining-tokens"] == "985"  # 1000 - 15 used by the one answer


def _key_id(h: Harness) -> str:
    [key_id] = h.store.api_keys
    return key_id


async def test_anonymous_limits_hold_across_an_ipv6_64_and_mapped_ipv4(tmp_path: Path) -> None:
    """An IPv6 client holds a /64 (2^64 addresses): one new address per request must not
    be a new bucket each time. An IPv4-mapped address is its IPv4 address."""
    async with running(tmp_path, anonymous_rpm=3) as h:
        node = await h.register("a")
        codes = []
        for i in range(6):
            async with from_address(h, f"2001:db8:1:2::{i + 1:x}") as c:
                codes.append((await c.post(CHAT, json=chat())).status_code)
        assert codes == [200] * 3 + [429] * 3  # before: 200 every time
        async with from_address(h, "2001:db8:1:3::1") as other:  # another /64
            assert (await other.post(CHAT, json=chat())).status_code == 200
        for ip in ("198.51.100.9", "::ffff:198.51.100.9", "198.51.100.9", "::ffff:c633:6409"):
            async with from_address(h, ip) as c:
                codes.append((await c.post(CHAT, json=chat())).status_code)
        assert codes[6:] == [200] * 3 + [429]
        assert len(node.calls) == 7
