"""A hostile (or broken) download mirror cannot fill the operator's disk (node/downloads.py).

``llm-mesh node models add`` downloads from the catalog's URL or one the operator gives;
whoever answers there chooses the size it declares and how much it sends.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.catalog import ModelSpec, get_spec
from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.node import downloads
from LLM_Mesh.node.downloads import DownloadError, download_model, ensure_catalog_model, part_path

DATA = fake_gguf(3, tensors=1, kvs=2, payload=os.urandom(300_000))
BLOCK = 64 << 10
#: where a mirror's endless body ends in these tests (before the fix it was all written)
SENT_AT_MOST = 48 << 20


class Mirror:
    """A mirror that sends the file, then never stops (up to ``SENT_AT_MOST``); or declares
    ``declared`` bytes."""

    def __init__(self, declared: int | None = None) -> None:
        self.declared = declared
        self.sent = 0

    async def handler(self, _request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            self.sent += len(DATA)
            yield DATA
            while self.sent < SENT_AT_MOST:
                self.sent += BLOCK
                yield b"\0" * BLOCK

        headers = {} if self.declared is None else {"content-length": str(self.declared)}
        return httpx.Response(200, headers=headers, content=body())


def small_catalog_model() -> ModelSpec:
    """A catalog entry with a URL and no sha256 (as ``mistral-7b``), of ``DATA``'s size."""
    spec = get_spec("mistral-7b")
    assert spec is not None and spec.sha256 is None and spec.url
    return replace(spec, size_bytes=len(DATA), url="https://mirror.test/m.gguf")


@pytest.mark.parametrize("declared", [None, 10**13], ids=["endless", "declares_10_tb"])
async def test_a_mirror_cannot_send_a_catalog_model_far_larger_than_the_catalog_says(
    tmp_path: Path, declared: int | None
) -> None:
    mirror = Mirror(declared)
    async with httpx.AsyncClient(transport=httpx.MockTransport(mirror.handler)) as c:
        with pytest.raises(DownloadError, match="expected"):
            await ensure_catalog_model(small_catalog_model(), tmp_path, client=c)
    bound = int(len(DATA) * downloads.CATALOG_SIZE_SLACK)
    assert mirror.sent <= bound + BLOCK + len(DATA)  # cut off at the bound, not read on
    if declared is not None:
        assert mirror.sent == 0  # refused on its declared size, before a byte was read
    target = tmp_path / small_catalog_model().file_name
    assert not target.exists() and not part_path(target).exists()  # nothing left behind


async def test_an_honest_catalog_download_within_its_size_is_kept(tmp_path: Path) -> None:
    """(no attack) a file up to the slack over the catalog's rounded size downloads."""

    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=DATA)  # Content-Length: the file's size

    spec = replace(small_catalog_model(), size_bytes=int(len(DATA) / 1.2))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        path = await ensure_catalog_model(spec, tmp_path, client=c)
    assert path.read_bytes() == DATA


@pytest.mark.parametrize("declared", [None, 10**13], ids=["endless", "declares_10_tb"])
async def test_any_download_leaves_room_on_the_disk(tmp_path: Path, declared: int | None) -> None:
    """An operator's own URL (no size known): the download stops before the disk is full."""
    mirror = Mirror(declared)
    reserve, room = 1 << 30, 40 << 20
    dest = tmp_path / "custom.gguf"

    def free(_folder: Path) -> int:  # the disk: `room` bytes above the reserve, then less
        return reserve + room - downloads._size(part_path(dest))

    bounds = downloads.Bounds(min_free=reserve, free=free)
    sha = hashlib.sha256(DATA).hexdigest()
    async with httpx.AsyncClient(transport=httpx.MockTransport(mirror.handler)) as c:
        with pytest.raises(DownloadError, match="free on the disk"):
            await download_model(
                "https://mirror.test/custom.gguf", dest, client=c, sha256=sha, bounds=bounds
            )
    kept = downloads._size(part_path(dest))
    assert kept <= room  # the reserve is never written into
    assert mirror.sent < SENT_AT_MOST  # and the mirror was not read on
    if declared is None:
        assert kept > 0  # stopped on the way, the part kept to resume once there is room
    else:
        assert mirror.sent == 0 and kept == 0  # refused on its declared size
