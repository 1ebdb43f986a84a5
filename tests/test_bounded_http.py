"""``bounded_http``: an answer read whole costs at most its limit, decoded or as sent (the
callers' attack tests: tests/cli/test_ledger_compare_fetch.py, test_ledger_witness.py,
test_ledger_verify_bounds.py, tests/registry/test_witness_push.py); ``call`` within its
deadline."""

from __future__ import annotations

import gzip

import httpx
import pytest

from LLM_Mesh.bounded_http import AS_SENT, AnswerRefused, call, read_body
from tests.http_bodies import Endless

BOMB = gzip.compress(b"0" * 5_000_000)  # 5 MB inflated, some 5 kB on the wire


def _client(body: bytes, **headers: str) -> httpx.AsyncClient:
    answer = httpx.Response(200, content=body, headers=headers)
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answer), base_url="http://s")


async def test_a_gzip_bomb_counts_as_inflated() -> None:
    async with _client(BOMB, **{"Content-Encoding": "gzip"}) as client:
        with pytest.raises(
            AnswerRefused, match=r"GET http://s/x\?a=1's answer is longer than 1048576"
        ):
            await call(client, "GET", "/x", 1 << 20, deadline_s=60, params={"a": 1})


async def test_an_answer_within_the_limit_is_read_whole_and_decoded() -> None:
    async with _client(gzip.compress(b"{}"), **{"Content-Encoding": "gzip"}) as client:
        r = await call(client, "GET", "/x", 2, deadline_s=60)
    assert r.status_code == 200 and r.json() == {}


async def test_as_sent_refuses_a_compressed_answer_unread() -> None:
    client = _client(BOMB, **{"Content-Encoding": "gzip"})
    async with client, client.stream("GET", "/x", headers=AS_SENT) as r:
        with pytest.raises(AnswerRefused, match="Content-Encoding 'gzip'"):
            await read_body(r, 1 << 20, as_sent=True)
        assert r.num_bytes_downloaded == 0


async def test_the_limit_itself_is_allowed() -> None:
    async with _client(b"x" * 10) as client:
        async with client.stream("GET", "/x", headers=AS_SENT) as r:
            assert await read_body(r, 10, as_sent=True) == b"x" * 10
        async with client.stream("GET", "/x") as r:
            with pytest.raises(AnswerRefused, match="longer than 9 bytes"):
                await read_body(r, 9)


async def test_a_trickling_answer_is_cut_off_at_the_deadline() -> None:
    """A byte every 0.05 s stays within any read timeout; only the whole call's deadline
    stops it (before: no deadline in ``call``, each caller had to bring its own)."""
    body = Endless(chunks=100, gap_s=0.05, size=1)
    t = httpx.MockTransport(lambda r: httpx.Response(200, stream=body))
    async with httpx.AsyncClient(transport=t, base_url="http://s") as client:
        with pytest.raises(AnswerRefused, match=r"GET http://s/x's answer took longer than 0\.3 s"):
            await call(client, "GET", "/x", 1 << 20, deadline_s=0.3)
    assert body.pulled < 100


async def test_as_sent_asks_for_identity_and_keeps_the_callers_headers() -> None:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, content=BOMB, headers={"Content-Encoding": "gzip"})

    t = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=t, base_url="http://s") as client:
        with pytest.raises(AnswerRefused, match="Content-Encoding 'gzip'"):
            await call(
                client, "GET", "/x", 1 << 20, deadline_s=60, as_sent=True, headers={"A": "b"}
            )
    assert seen[0]["accept-encoding"] == "identity" and seen[0]["a"] == "b"


async def test_redirects_are_followed_only_as_the_client_says() -> None:
    hops: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hops.append(request.url.path)
        return httpx.Response(302, headers={"location": "/elsewhere"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        r = await call(client, "GET", "http://s/x", 1 << 20, deadline_s=60)
    assert r.status_code == 302 and hops == ["/x"]  # httpx's default: not followed
