"""``MeshClient`` never puts a credential it cannot send (a line break, a NUL, a letter that
is not ASCII in it) on the wire or in an error: refused before any request, named but not
quoted. A gateway on a real socket (h11 is what quoted the header value)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from LLM_Mesh.client import MeshClient
from LLM_Mesh.errors import InvalidApiKey, InvalidCredential, MeshError
from tests.hostile_gateway import serve

SECRET = "lmk_S3CRET"
BAD = [SECRET + "\r\nX-Evil: 1", SECRET + "\x00", SECRET + "\n", "lmk_SÉCRET", SECRET + " x"]


@pytest.fixture
def gateway() -> Iterator[str]:
    yield from serve()


async def _drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass


@pytest.mark.parametrize("key", BAD)
@pytest.mark.parametrize("call", ["balance", "chat", "stream", "earnings", "nodes"])
async def test_a_credential_no_header_can_carry_is_refused_unquoted(
    gateway: str, key: str, call: str
) -> None:
    """Found 2026-12-03: sent as it was, h11 refused it with the whole header value in the
    message (``Illegal header value b'Bearer lmk_...\\r\\n...'``), which the CLI printed
    and a caller logs; a letter that is not ASCII raised ``UnicodeEncodeError``, no
    ``MeshError`` (a traceback)."""
    expected: type[MeshError] = InvalidCredential
    async with MeshClient(gateway, api_key=key, admin_key=key, timeout=2.0) as c:
        with pytest.raises(MeshError) as info:
            if call == "balance":
                expected = InvalidApiKey
                await c.balance()
            elif call == "chat":
                expected = InvalidApiKey
                await c.chat({"model": "m", "messages": []})
            elif call == "stream":
                expected = InvalidApiKey
                await _drain(c.stream("/v1/chat/completions", {"model": "m"}))
            elif call == "earnings":
                await c.earnings(key)
            else:
                await c.nodes()
    assert isinstance(info.value, expected), repr(info.value)
    assert "S3CRET" not in str(info.value) and "SÉCRET" not in str(info.value)
    assert "holds characters no key has" in str(info.value)


async def test_an_honest_key_is_sent(gateway: str) -> None:
    """A key of the mesh's form goes out (the test gateway answers ``/evil`` 500)."""
    async with MeshClient(gateway, api_key="lmk_" + "a-b_c.d~e+f/g=", timeout=2.0) as c:
        with pytest.raises(MeshError) as info:
            await c._request("GET", "/evil", headers=c._v1_headers(None))
    assert not isinstance(info.value, InvalidCredential | InvalidApiKey)


@pytest.mark.parametrize("path", [".evil.example/v1/balance", "@evil.example/v1/balance", ""])
@pytest.mark.parametrize("call", ["keyed_get", "stream"])
async def test_a_path_that_could_name_another_host_is_refused_unsent(path: str, call: str) -> None:
    """The client joins a path to each registry URL as text: ``https://mesh.example.org`` +
    ``.evil.example/v1/balance`` is another host, and ``keyed_get`` (public) sent the API key
    there (found 2026-12-07, review39); refused before any request. Its own paths go out."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with MeshClient("https://mesh.example.org", api_key=SECRET, http_client=http) as c:
        with pytest.raises(ValueError, match="a path on the registry starts with /"):
            if call == "keyed_get":
                await c.keyed_get(path)
            else:
                await _drain(c.stream(path, {"model": "m"}))
        assert await c.keyed_get("/v1/balance") == {}  # its own: sent there
    await http.aclose()
    assert [(r.url.host, r.url.path) for r in sent] == [("mesh.example.org", "/v1/balance")]
