"""``bounded_http``: an answer read whole costs at most its limit, decoded or as sent (the
callers' attack tests: tests/cli/test_ledger_compare_fetch.py, test_ledger_witness.py,
tests/registry/test_witness_push.py)."""

from __future__ import annotations

import gzip

import httpx
import pytest

from LLM_Mesh.bounded_http import AS_SENT, AnswerRefused, call, read_body

BOMB = gzip.compress(b"0" * 5_000_000)  # 5 MB inflated, some 5 kB on the wire


def _client(body: bytes, **headers: str) -> httpx.AsyncClient:
    answer = httpx.Response(200, content=body, headers=headers)
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answer), base_url="http://s")


async def test_a_gzip_bomb_counts_as_inflated() -> None:
    async with _client(BOMB, **{"Content-Encoding": "gzip"}) as client:
        with pytest.raises(AnswerRefused, match="GET /x's answer is longer than 1048576 bytes"):
            await call(client, "GET", "/x", 1 << 20)


async def test_an_answer_within_the_limit_is_read_whole_and_decoded() -> None:
    async with _client(gzip.compress(b"{}"), **{"Content-Encoding": "gzip"}) as client:
        r = await call(client, "GET", "/x", 2)
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
