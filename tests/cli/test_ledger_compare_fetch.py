"""``ledger verify --compare`` reads a stranger's checkpoint (``cli/ledger_compare.py``): a
URL or file that is huge, endless, slow, compressed or redirecting costs the verifier at
most ``MAX_NOTE`` bytes and ``FETCH_S`` seconds. See docs/security.md, "Ledger rewrites"."""

from __future__ import annotations

import base64
import gzip
import time
from pathlib import Path

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.cli import ledger_compare
from LLM_Mesh.cli.ledger_compare import compare_all
from LLM_Mesh.core import checkpoint
from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, sign_checkpoint
from LLM_Mesh.core.gossip import MAX_NOTE, open_foreign
from LLM_Mesh.core.merkle import leaf_hash, root_of
from tests.http_bodies import CHUNK, Endless

ORIGIN = "test.local/ledger"


def _ours() -> Checkpoint:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sign_checkpoint(key, pub, ORIGIN, 1, root_of([leaf_hash(b"a")]), 1)


async def _no_proof(first: int, second: int) -> list[bytes]:
    raise AssertionError("no proof should be asked for")


async def _compare(handler: httpx.MockTransport) -> ledger_compare.Compared:
    async with httpx.AsyncClient(transport=handler) as client:
        (result,) = await compare_all(["https://peer.example/cp"], _ours(), [], _no_proof, client)
    return result


async def test_a_huge_answer_is_read_no_further_than_a_note_can_be() -> None:
    """200 MB: before, ``client.get`` held all of it in memory before its size was checked
    (found 2026-12-02)."""
    body = Endless(chunks=3_200)
    result = await _compare(httpx.MockTransport(lambda r: httpx.Response(200, stream=body)))
    assert result.kind == "unreadable" and "longer than" in result.message
    assert body.pulled <= MAX_NOTE + CHUNK  # before: 209,715,200


async def test_a_trickling_answer_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bytes every 0.1 s stay within any read timeout: before, one URL held the verifier
    for as long as its server liked (found 2026-12-02: 20 s here, 2.4 h at httpx's 30 s
    read timeout with a byte each 29 s). Only the whole fetch's deadline stops it."""
    monkeypatch.setattr(ledger_compare, "FETCH_S", 0.5)
    body = Endless(chunks=200, gap_s=0.1, size=1)
    body_small = httpx.Response(200, stream=body)
    started = time.monotonic()
    result = await _compare(httpx.MockTransport(lambda r: body_small))
    assert time.monotonic() - started < 5
    assert result.kind == "unreadable" and "took longer than 0.5 s" in result.message


async def test_a_compressed_answer_is_not_inflated() -> None:
    """50 MB of zeros gzipped is 50 kB on the wire: before, httpx inflated all of it
    (found 2026-12-02); the verifier asks for ``identity`` and refuses another encoding."""
    bomb = gzip.compress(b"0" * 50_000_000)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept-encoding", ""))
        return httpx.Response(200, content=bomb, headers={"content-encoding": "gzip"})

    result = await _compare(httpx.MockTransport(handler))
    assert seen == ["identity"]
    assert result.kind == "unreadable" and "Content-Encoding 'gzip'" in result.message


async def test_a_redirect_is_not_followed() -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    result = await _compare(httpx.MockTransport(handler))
    assert result.kind == "unreadable" and "302" in result.message
    assert hops == ["https://peer.example/cp"]


async def test_a_file_that_never_ends_is_read_no_further_than_a_note_can_be(
    tmp_path: Path,
) -> None:
    """``/dev/zero`` (or a FIFO) says 0 bytes in its stat: before, read to the end, which
    never came (found 2026-12-02); since cli36 (2026-12-06) not a regular file, not read."""
    with anyio.fail_after(10):
        (result,) = await compare_all(["/dev/zero"], _ours(), [], _no_proof)
    assert result.kind == "unreadable" and "is not a regular file" in result.message


def _signed(size_line: str | None = None) -> tuple[Checkpoint, str]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    cp = sign_checkpoint(key, pub, ORIGIN, 1, root_of([leaf_hash(b"a")]), 1)
    return cp, base64.b64encode(pub).decode()


def test_a_note_of_many_signatures_costs_one_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """500 signature lines before the real one (other keys' hashes, then the trusted key's
    hash with bad signatures): lines of other keys are skipped unverified, and the first line
    of the trusted key's hash decides (one Ed25519 verify in all)."""
    cp, key = _signed()
    body, _, sig = cp.note.partition("\n\n")
    want = base64.b64decode(sig.rsplit(" ", 1)[1])[:4]
    calls: list[int] = []
    make = checkpoint.Ed25519PublicKey.from_public_bytes

    class Counting:
        def __init__(self, raw: bytes) -> None:
            self.key = make(raw)

        def verify(self, signature: bytes, data: bytes) -> None:
            calls.append(1)
            self.key.verify(signature, data)

    monkeypatch.setattr(checkpoint.Ed25519PublicKey, "from_public_bytes", Counting)
    for prefix in (bytes(4), want):  # another key's hash / the trusted key's, bad signature
        junk = "".join(
            f"\u2014 {ORIGIN} {base64.b64encode(prefix + bytes([i % 256]) * 64).decode()}\n"
            for i in range(500)
        )
        note = f"{body}\n\n{junk}{sig}"
        assert len(note) < MAX_NOTE
        calls.clear()
        if prefix == want:
            with pytest.raises(BadCheckpoint, match="does not verify"):
                open_foreign(note, ORIGIN, [key])
        else:
            assert open_foreign(note, ORIGIN, [key]).tree_size == 1
        assert len(calls) == 1


def test_a_size_of_4000_digits_is_malformed() -> None:
    cp, key = _signed()
    lines = cp.note.split("\n")
    lines[1] = "9" * 4_000
    with pytest.raises(BadCheckpoint):
        open_foreign("\n".join(lines), ORIGIN, [key])
