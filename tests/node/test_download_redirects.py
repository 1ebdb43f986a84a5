"""Where a model download's redirects may lead (node/downloads.py).

An ``https://`` URL is taken without a sha256 because TLS vouches for its bytes; a
redirect to ``http://`` (a mirror's CDN, a misconfigured site) let anyone on the path of
that hop hand the operator another GGUF for llama.cpp's C++ loader to read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.node.downloads import DownloadError, download_model

DATA = fake_gguf(3, tensors=1, kvs=2, payload=os.urandom(4096))


def mirror(hops: dict[str, str]) -> httpx.AsyncClient:
    """``hops``: url -> where it redirects; any other url serves ``DATA``."""

    def handle(request: httpx.Request) -> httpx.Response:
        target = hops.get(str(request.url))
        if target is not None:
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=DATA)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=True)


async def test_an_https_download_redirected_to_http_needs_its_sha256(tmp_path: Path) -> None:
    hops = {"https://mirror.example/m.gguf": "http://cdn.example/m.gguf"}
    async with mirror(hops) as client:
        with pytest.raises(DownloadError, match="plain http"):
            await download_model("https://mirror.example/m.gguf", tmp_path / "m.gguf",
                                 client=client)  # fmt: skip
        assert not (tmp_path / "m.gguf").exists()
        assert not (tmp_path / "m.gguf.part").exists()
        # with the file's sha256 the bytes are checked, wherever they came from
        sha = hashlib.sha256(DATA).hexdigest()
        got = await download_model("https://mirror.example/m.gguf", tmp_path / "m.gguf",
                                   client=client, sha256=sha)  # fmt: skip
        assert got.read_bytes() == DATA
    # https all the way: as before
    async with mirror({"https://mirror.example/a.gguf": "https://cdn.example/a.gguf"}) as client:
        got = await download_model("https://mirror.example/a.gguf", tmp_path / "a.gguf",
                                   client=client)  # fmt: skip
        assert got.read_bytes() == DATA


async def test_a_redirect_loop_is_a_download_error(tmp_path: Path) -> None:
    hops = {
        "https://m.example/a": "https://m.example/b",
        "https://m.example/b": "https://m.example/a",
    }
    async with mirror(hops) as client:
        with pytest.raises(DownloadError, match="redirect"):
            await download_model("https://m.example/a", tmp_path / "m.gguf", client=client)
