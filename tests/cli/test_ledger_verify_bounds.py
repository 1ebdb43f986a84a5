"""``llm-mesh ledger verify`` does not trust the registry it checks with its memory or its
time (``cli/ledger_http.HttpSource``): a page, proof or key list answered without
end, as a gzip bomb or a byte at a time, and an export line without end, are cut off
with an error naming the URL and the limit. See docs/security.md, "Ledger rewrites"."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands, ledger_http, ledger_statement
from LLM_Mesh.cli.ledger_commands import audit
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.ledger_signer import public_key_text
from tests.http_bodies import CHUNK, Endless, Reads, peak_bytes

KEYS = {
    "object": "list",
    "has_more": False,
    "data": [{"public_key": public_key_text(Ed25519PrivateKey.generate()), "origin": "t/l"}],
}
LIMIT = 64 << 20  # MAX_ANSWER, spelled out: the test must fail on code without it
PAGE = re.escape("GET http://reg/v1/ledger/checkpoints?after=-1&limit=1000's answer")


async def _audit(
    attack: httpx.Response | None = None, export: httpx.Response | None = None
) -> None:
    """``audit`` against a registry publishing a key and answering ``attack`` to the
    checkpoints page, ``export`` to the export (an empty ledger otherwise)."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/ledger/keys":
            return httpx.Response(200, json=KEYS)
        if path == "/v1/ledger/checkpoints" and attack is not None:
            return attack
        if path == "/v1/ledger/export" and export is not None:
            return export
        if path == "/v1/ledger/export":
            return httpx.Response(200, content=b"")
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    t = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=t, base_url="http://reg") as client:
        await audit(HttpSource(client))


async def test_the_fake_registry_serves_an_empty_ledger_that_checks_out() -> None:
    await _audit()  # what the attacks below change is one answer, nothing else


async def test_an_endless_page_is_read_no_further_than_the_limit() -> None:
    """128 MiB of spaces: before, ``client.get`` read all of it into memory, then failed
    as not JSON (found 2026-12-03: any registry could exhaust the verifier's memory)."""
    body = Endless(chunks=(128 << 20) // CHUNK, fill=b" ")
    with pytest.raises(MeshError, match=f"{PAGE} is longer than {LIMIT} bytes"):
        await _audit(httpx.Response(200, stream=body))
    assert body.pulled <= LIMIT + CHUNK  # before: 134,217,728


async def test_a_gzip_bomb_page_counts_as_inflated() -> None:
    """100 MB of zeros gzipped to some 100 kB: before, inflated whole in memory."""
    bomb = gzip.compress(b"0" * 100_000_000)
    attack = httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(MeshError, match=f"{PAGE} is longer than {LIMIT} bytes"):
        await _audit(attack)


async def test_a_trickling_page_is_cut_off_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte every 0.05 s stays within any read timeout: before, the verifier waited for
    as long as the registry liked (here 4 s, then not JSON)."""
    monkeypatch.setattr(ledger_http, "ANSWER_S", 0.3)
    body = Endless(chunks=80, gap_s=0.05, size=1, fill=b" ")
    with pytest.raises(MeshError, match=f"{PAGE} took longer than 0.3 s"):
        await _audit(httpx.Response(200, stream=body))
    assert body.pulled < 80


async def test_an_export_line_without_end_is_read_no_further_than_a_row_can_be() -> None:
    """128 MiB with no newline: before, gathered whole (``rest += chunk``), then refused as
    a line cut short; an entry at its largest is some 1.3 kB (benchmarks/ledger_page_sizes.py)."""
    body = Endless(chunks=(128 << 20) // CHUNK, fill=b"[")
    with pytest.raises(MeshError, match=r"/v1/ledger/export.* a line longer than 65536 bytes"):
        await _audit(export=httpx.Response(200, stream=body))
    assert body.pulled <= (1 << 20) + (65536 + CHUNK)  # one read chunk (1 MiB) and the line


async def test_an_export_refusal_without_end_is_read_no_further_than_the_limit() -> None:
    """A 500 with 128 MiB of body: before, ``r.aread()`` read all of it."""
    body = Endless(chunks=(128 << 20) // CHUNK)
    with pytest.raises(MeshError, match=f"v1/ledger/export.*longer than {LIMIT} bytes"):
        await _audit(export=httpx.Response(500, stream=body))
    assert body.pulled <= LIMIT + CHUNK


async def test_a_stacked_gzip_bomb_export_is_refused_unread() -> None:
    """``Content-Encoding: gzip, gzip``, 256 MiB of newlines in about a kB: before, httpx
    inflated both layers of the read whole, 256 MiB held before a line was looked at
    (found 2026-12-03); now refused unread (only gzip or deflate, once, is read)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    lines = b"\n" * (1 << 20)
    bomb = gzip.compress(b"".join(c.compress(lines) for _ in range(256)) + c.flush(), 9)
    export = httpx.Response(200, stream=Reads([bomb]), headers={"Content-Encoding": "gzip, gzip"})
    raised, peak = await peak_bytes(lambda: _audit(export=export))
    assert isinstance(raised, MeshError) and "Content-Encoding 'gzip, gzip'" in str(raised)
    assert peak < 32 << 20


async def test_a_gzip_bomb_export_is_inflated_a_piece_at_a_time() -> None:
    """64 MiB of newlines (empty lines: no rows) gzipped into one read: before, inflated
    whole at once; now a MiB at a time, each piece split into lines and let go."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    lines = b"\n" * (1 << 20)
    bomb = b"".join(c.compress(lines) for _ in range(64)) + c.flush()
    export = httpx.Response(200, stream=Reads([bomb]), headers={"Content-Encoding": "gzip"})
    raised, peak = await peak_bytes(lambda: _audit(export=export))
    assert raised is None
    assert peak < 32 << 20


@pytest.mark.parametrize("path", ["/v1/ledger/checkpoints", "/v1/ledger"])
async def test_pages_that_do_not_go_forward_are_refused(path: str) -> None:
    """A registry answering "more" with the same page again (or an earlier one): each
    answer within every bound, and before the verifier asked again for ever, holding it
    and gathering the same checkpoints without end (found 2026-12-03: only the export's
    rows had to go forward). Now an error naming the path, at the second page."""
    served = 0
    item = {"tree_size": 5} if path.endswith("checkpoints") else {"seq": 5}

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal served
        p = request.url.path
        if p == "/v1/ledger/keys":
            return httpx.Response(200, json=KEYS)
        if p == "/v1/ledger/export":
            return httpx.Response(404)  # no export: the paged list
        if p == path:
            served += 1
            if served > 50:  # the old verifier would never stop: end the test
                return httpx.Response(500, json={"error": {"message": "looped"}})
            return httpx.Response(200, json={"object": "list", "data": [item], "has_more": True})
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    source = HttpSource(
        httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://reg")
    )
    async with source.client:
        if path.endswith("checkpoints"):
            with pytest.raises(MeshError, match="do not go forward"):
                await source.checkpoints()
        else:
            with pytest.raises(MeshError, match="do not go forward"):
                async for _ in source.entries(100):
                    pass
    assert served == 2


class _SlowRegistry:
    """A registry ``ledger verify`` reaches (``ledger_commands._source``) whose every
    answer is within its bounds and slow: ``/v1/ledger/checkpoints`` a 429 asking to wait
    1 s (``throttle``), or the paged list a page of one entry every 0.2 s, going forward
    (no export)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, throttle: bool) -> None:
        self.asked = 0

        async def answer(request: httpx.Request) -> httpx.Response:
            path = request.url.path
            if path == "/v1/ledger/keys":
                return httpx.Response(200, json=KEYS)
            if path == "/v1/ledger/checkpoints" and throttle:
                self.asked += 1
                return httpx.Response(429, headers={"Retry-After": "1"})
            if path == "/v1/ledger/export":
                return httpx.Response(404)
            if path == "/v1/ledger":
                self.asked += 1
                await asyncio.sleep(0.2)
                after = int(request.url.params["after"])
                row = {"seq": after + 1}  # (never checked: the deadline comes first)
                return httpx.Response(200, json={"object": "list", "data": [row], "has_more": True})
            return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

        @contextlib.asynccontextmanager
        async def source(url: str, *args: object) -> AsyncIterator[HttpSource]:
            t = httpx.MockTransport(answer)
            async with httpx.AsyncClient(transport=t, base_url=url) as client:
                yield HttpSource(client)

        async def first(urls: Sequence[str], verify: object) -> str:
            return urls[-1]

        monkeypatch.setattr(ledger_commands, "_source", source)
        monkeypatch.setattr(ledger_commands, "first_answering", first)
        monkeypatch.setattr(ledger_statement, "first_answering", first)  # (the same source)


@pytest.mark.parametrize("throttle", [True, False], ids=["429 again and again", "slow pages"])
def test_a_registry_slow_in_every_answer_is_cut_off_at_the_overall_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, throttle: bool
) -> None:
    """Found 2026-12-05: each answer was bounded (300 s) and 30 429s in a row waited out,
    but not the whole run: a registry answering 429 (30 s a page here) or page after slow
    page, each going forward, held the verifier as long as it liked. Now ``--timeout``
    (an hour by default) ends it: exit 1, an error naming the limit; nothing remembered."""
    reg = _SlowRegistry(monkeypatch, throttle)
    home = tmp_path / "home"
    argv = ["ledger", "verify", "--registry", "http://slow.test", "--home", str(home)]
    start = time.monotonic()
    res = CliRunner().invoke(app, [*argv, "--timeout", "1.5"], env={"COLUMNS": "300"})
    took = time.monotonic() - start
    out = " ".join(res.output.split())
    assert res.exit_code == 1, out
    assert "not done within --timeout 1.5 s: http://slow.test answered too slowly" in out
    assert 1.4 < took < 6, took
    assert 0 < reg.asked < 10
    assert not (home / "ledger_seen.json").exists()


ACCOUNT = "user:" + "a" * 24  # --account: the statement sends no key


@pytest.mark.parametrize("throttle", [True, False], ids=["429 again and again", "slow pages"])
def test_a_statement_from_a_registry_slow_in_every_answer_is_cut_off_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, throttle: bool
) -> None:
    """Found 2026-12-05 (``money30``): ``ledger statement`` reads the whole log as ``ledger
    verify`` does, with no bound on the whole: the same registry held it as long as it
    liked (before the fix: no ``--timeout``, exit 2; without it, 30 s of 429s a page
    again and again). Now the same ``--timeout`` and default, the same one error line,
    exit 1, nothing remembered."""
    reg = _SlowRegistry(monkeypatch, throttle)
    home = tmp_path / "home"
    argv = ["ledger", "statement", "--account", ACCOUNT, "--registry", "http://slow.test"]
    start = time.monotonic()
    res = CliRunner().invoke(
        app, [*argv, "--home", str(home), "--timeout", "1.5"], env={"COLUMNS": "300"}
    )
    took = time.monotonic() - start
    out = " ".join(res.output.split())
    assert res.exit_code == 1, out
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and res.exception is not None, res.output  # one line, no traceback
    assert isinstance(res.exception, SystemExit), res.exception
    assert errors[0].startswith("error: ledger statement: not done within --timeout 1.5 s: "
                                "http://slow.test answered too slowly"), out  # fmt: skip
    assert 1.4 < took < 6, took
    assert 0 < reg.asked < 10
    assert not (home / "ledger_seen.json").exists()


@pytest.mark.parametrize(
    "command", [["ledger", "verify"], ["ledger", "statement"], ["receipt", "verify"]]
)
def test_the_overall_timeout_is_an_hour_by_default_and_0_is_none(command: list[str]) -> None:
    assert ledger_commands.VERIFY_TIMEOUT_S == 3600
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert "--timeout" in res.output and "3600" in res.output
    said = " ".join(res.output.replace("│", " ").split())
    assert "seconds the whole check of a registry may take, then an error (0: no limit;" in said
