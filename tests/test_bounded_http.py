"""``bounded_http``: an answer read whole costs at most its limit, decoded or as sent (the
callers' attack tests: tests/cli/test_ledger_compare_fetch.py, test_ledger_witness.py,
test_ledger_verify_bounds.py, tests/registry/test_witness_push.py); ``call`` within its
deadline."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest

from LLM_Mesh.bounded_http import AS_SENT, AnswerRefused, call, read_body
from tests.http_bodies import Endless, Reads, gzip_zeros, peak_bytes

BOMB = gzip.compress(b"0" * 5_000_000)  # 5 MB inflated, some 5 kB on the wire


def _streamed(body: bytes, **headers: str) -> httpx.AsyncClient:
    """A server sending ``body`` in one read, as the network does: not decoded until read
    (``_client``'s answer is built in memory, so httpx has decoded it already)."""
    t = httpx.MockTransport(lambda r: httpx.Response(200, stream=Reads([body]), headers=headers))
    return httpx.AsyncClient(transport=t, base_url="http://s")


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


# what a bounded read may hold at most: its limit (1 MiB here), a piece past it, the rest
BOUND = 16 << 20


async def test_a_stacked_gzip_bomb_is_refused_unread() -> None:
    """``Content-Encoding: gzip, gzip``: 64 MiB of zeros in some 250 bytes. Before, httpx
    decoded both layers of a read in one step, before ``read_body`` counted a byte: a
    registry (or a witness, a verifier's URL) got 64 MiB allocated per 250 bytes sent
    (found 2026-12-03: 600 bytes made 256 MiB; a 64 KiB read, gigabytes)."""
    bomb = gzip_zeros(64, twice=True)
    assert len(bomb) < 4096
    async with _streamed(bomb, **{"Content-Encoding": "gzip, gzip"}) as client:
        raised, peak = await peak_bytes(lambda: call(client, "GET", "/x", 1 << 20, deadline_s=60))
    assert isinstance(raised, AnswerRefused) and "Content-Encoding 'gzip, gzip'" in str(raised)
    assert peak < BOUND


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_one_read_of_a_bomb_is_inflated_a_piece_at_a_time(encoding: str) -> None:
    """64 MiB of zeros in one read (some 64 kB): before, inflated whole at once (64 MiB
    held for a 1 MiB limit); now a piece at a time, up to the limit."""
    bomb = gzip_zeros(64)
    if encoding == "deflate":
        bomb = zlib.compress(bytes(64 << 20), 9)
    async with _streamed(bomb, **{"Content-Encoding": encoding}) as client:
        raised, peak = await peak_bytes(lambda: call(client, "GET", "/x", 1 << 20, deadline_s=60))
    assert isinstance(raised, AnswerRefused) and "longer than 1048576" in str(raised)
    assert peak < BOUND


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(b'{"a": 1}')),
        ("x-gzip", gzip.compress(b'{"a": 1}')),
        ("deflate", zlib.compress(b'{"a": 1}')),  # as the RFC says: zlib-wrapped
        ("deflate", zlib.compress(b'{"a": 1}')[2:-4]),  # raw, as some servers send it
        ("identity", b'{"a": 1}'),
    ],
)
async def test_the_encodings_read_are_decoded_whole(encoding: str, body: bytes) -> None:
    async with _streamed(body, **{"Content-Encoding": encoding}) as client:
        r = await call(client, "GET", "/x", 1 << 20, deadline_s=60)
    assert r.json() == {"a": 1}


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, identity"])
async def test_other_encodings_are_refused(encoding: str) -> None:
    async with _streamed(b"\x00" * 10, **{"Content-Encoding": encoding}) as client:
        with pytest.raises(AnswerRefused, match="Content-Encoding"):
            await call(client, "GET", "/x", 1 << 20, deadline_s=60)


async def test_a_corrupt_gzip_answer_is_refused() -> None:
    async with _streamed(b"\x1f\x8b garbage", **{"Content-Encoding": "gzip"}) as client:
        with pytest.raises(AnswerRefused, match="not valid gzip"):
            await call(client, "GET", "/x", 1 << 20, deadline_s=60)


async def test_a_decoded_read_offers_only_what_it_decodes() -> None:
    """httpx offers ``br`` and ``zstd`` too when their packages are installed; a server
    picking one would be refused: a decoded read offers gzip and deflate only."""
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, content=b"{}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await call(client, "GET", "http://s/x", 10, deadline_s=60)
    assert seen[0]["accept-encoding"] == "gzip, deflate"
