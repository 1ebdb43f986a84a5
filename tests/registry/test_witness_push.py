"""``registry/witness_push.py``: the registry pushes its checkpoints to C2SP tlog-witnesses.

In process: the registry app (a SQLite database in ``tmp_path``) pushes over an ASGI
transport to ``witness/server.py``'s app or to a mock witness. On loopback: it pushes to
a real ``llm-mesh ledger witness --listen`` process. Either way ``ledger verify
--witness`` then reads the stored cosignatures from the database, unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from LLM_Mesh.config import Settings
from LLM_Mesh.core.tlog_witness import MAX_ANSWER
from LLM_Mesh.core.witness import witness_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.witness_push import WitnessPusher
from LLM_Mesh.witness.server import WitnessService, witness_app
from tests.cli.test_ledger_witness import LOG_KEY, _db, _grow, cli
from tests.registry.helpers import make_settings
from tests.waiting import SOON_S, scaled

NAME = "witness.test/push"
WKEY = Ed25519PrivateKey.generate()
WK = witness_key(WKEY, NAME)
LOG_PUB = LOG_KEY.public_key().public_bytes_raw()
ORIGIN = Settings().ledger_origin


@asynccontextmanager
async def registry(
    reg: Path, urls: tuple[str, ...], client: httpx.AsyncClient | None, **kw: Any
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        reg, admin_key=None, pool_daily_budget=0, reward_rate=0,
        ledger_witnesses=kw.pop("accepted", (WK.vkey,)), ledger_witness_urls=urls, **kw,
    )  # fmt: skip
    app = create_registry_app(
        settings, store=SqlStore(_db(reg)), gateway_key=LOG_KEY, witness_client=client
    )
    async with app.router.lifespan_context(app):
        yield app


async def _settled(app: FastAPI) -> dict[str, str]:
    """What the app's pusher said, once its first round (at start) is done."""
    p = app.state.witness_pusher
    assert isinstance(p, WitnessPusher)
    deadline = time.monotonic() + scaled(SOON_S)
    while p.rounds == 0 or p._round.locked():
        assert time.monotonic() < deadline, "no push round in time"
        await asyncio.sleep(0.01)
    return p.said


@asynccontextmanager
async def pusher_on(
    reg: Path, client: httpx.AsyncClient, urls: tuple[str, ...] = ("http://w",), **kw: Any
) -> AsyncIterator[WitnessPusher]:
    """A pusher on ``reg``'s ledger, its loop not started (each round the test's)."""
    async with SqlStore(_db(reg)) as store:

        async def engine() -> Any:
            return store.engine

        yield WitnessPusher(SqlLedger(engine), urls, [WK], client, **kw)


def _asgi(service: WitnessService, seen: list[bytes] | None = None) -> httpx.AsyncClient:
    inner = httpx.ASGITransport(app=witness_app(service))

    class Counting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if seen is not None:
                seen.append(await request.aread())
            return await inner.handle_async_request(request)

    return httpx.AsyncClient(transport=Counting())


def _verify(home: Path, reg: Path) -> tuple[int, str]:
    return cli(home, "ledger", "verify", "--database-url", _db(reg), "--witness", WK.vkey)


async def test_each_new_checkpoint_is_pushed_and_verify_witness_passes(tmp_path: Path) -> None:
    reg, w = tmp_path / "reg", tmp_path / "w"
    await asyncio.to_thread(_grow, reg, (10, 20, 30))
    assert (await asyncio.to_thread(_verify, tmp_path / "v", reg))[0] == 1  # unwitnessed
    service = WitnessService(WKEY, NAME, w / "witness_state.json", {ORIGIN: [LOG_PUB]})
    seen: list[bytes] = []
    async with registry(reg, ("http://witness.test/",), _asgi(service, seen)) as app:
        # pushed at start, from 0 (this process knows no witness size yet)
        assert await _settled(app) == {"http://witness.test": "cosigned size 3 (1 stored)"}
        assert seen[0].startswith(b"old 0\n\n" + ORIGIN.encode())
        assert await app.state.witness_pusher.push_all() == {}  # nothing new: nothing sent
    code, out = await asyncio.to_thread(_verify, tmp_path / "v", reg)
    assert code == 0 and "cosigned by 1 of 1 trusted witnesses" in " ".join(out.split()), out

    await asyncio.to_thread(_grow, reg, (40, 50))  # a new checkpoint: pushed with the proof from 3
    async with registry(reg, ("http://witness.test",), _asgi(service, seen)) as app:
        said = await _settled(app)
    assert said == {"http://witness.test": "cosigned size 5 (1 stored)"}
    # a fresh process knows no size: 0 first, the witness's 409 says 3, then from 3
    assert [b.split(b"\n", 1)[0] for b in seen[1:]] == [b"old 0", b"old 3"]
    assert service.state[ORIGIN].size == 5
    code, out = await asyncio.to_thread(_verify, tmp_path / "v", reg)
    assert code == 0 and "checkpoint at size 5 cosigned by witness.test/push" in " ".join(
        out.split()
    )


async def test_only_cosignatures_by_accepted_keys_are_stored(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10,))
    stranger = Ed25519PrivateKey.generate()  # a witness whose key the operator did not list
    service = WitnessService(stranger, NAME, tmp_path / "w.json", {ORIGIN: [LOG_PUB]})
    async with pusher_on(reg, _asgi(service)) as p:
        assert await p.push_all() == {"http://w": "cosigned size 1 (0 stored)"}
    assert (await asyncio.to_thread(_verify, tmp_path / "v", reg))[0] == 1


def _mock(handler: Callable[[httpx.Request], Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (httpx.Response(302, headers={"Location": "http://169.254.169.254/"}), "redirect"),
        (httpx.Response(200, content=b"\xe2\x80\x94 w x\n" * (MAX_ANSWER // 8 + 1)), "longer than"),
        (httpx.Response(200, content=b"not a cosignature\n"), "signature lines"),
        (httpx.Response(200, content=b"x", headers={"Content-Encoding": "gzip"}), "Encoding"),
        (httpx.Response(422, content=b"bad proof\n"), "422"),
        (httpx.Response(409, content=b"another root\n"), "another root"),
        (
            httpx.Response(409, content=b"0\n", headers={"Content-Type": "text/x.tlog.size"}),
            "naming the size 0",
        ),
    ],
)
async def test_a_bad_answer_is_a_failure_retried_later(
    tmp_path: Path, answer: httpx.Response, why: str
) -> None:
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10,))
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return answer

    async with pusher_on(reg, _mock(handler)) as p:
        said = await p.push_all()
        assert said["http://w"].startswith("failed") and why in said["http://w"], said
        assert calls == ["http://w/add-checkpoint"]  # the redirect was not followed
        assert p.targets[0].not_before > 0  # backing off: not tried again at once
        assert await p.push_all() == {}
        p.targets[0].not_before = 0.0  # the backoff over: the same checkpoint again
        assert (await p.push_all())["http://w"].startswith("failed")
        assert len(calls) == 2
    assert (await asyncio.to_thread(_verify, tmp_path / "v", reg))[0] == 1


async def test_a_witness_that_never_answers_holds_up_nothing(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10,))

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError

    async with pusher_on(reg, _mock(hang), timeout_s=0.2) as p:
        t0 = time.monotonic()
        said = await p.push_all()
        assert said == {"http://w": "failed: TimeoutError"} and time.monotonic() - t0 < 2
    # in the app, the checkpointer only wakes the pusher: signing never waits for a witness
    async with registry(reg, ("http://w",), _mock(hang)) as app:
        cp = app.state.runtime.checkpointer
        await app.state.runtime.ledger.append_one(_grant())
        t0 = time.monotonic()
        await cp.checkpoint()  # signs, or finds the size signed by the loop (its wake-up)
        latest = await app.state.runtime.ledger.latest_checkpoint()
        size, _ = await app.state.runtime.ledger.head()
        assert latest is not None and latest.tree_size == size and time.monotonic() - t0 < 1


def _grant() -> Any:
    from LLM_Mesh.core.ledger_entry import Transfer

    return Transfer(kind="grant", from_account="mint", to_account="pool", amount=5)


def test_witness_urls_are_checked_and_need_accepted_keys() -> None:
    env = {"LLM_MESH_LEDGER_WITNESSES": WK.vkey}
    urls = "https://w1.example/tlog/, http://127.0.0.1:8810"
    s = Settings.from_env({**env, "LLM_MESH_LEDGER_WITNESS_URLS": urls})
    assert s.ledger_witness_urls == ("https://w1.example/tlog", "http://127.0.0.1:8810")
    assert Settings.from_env(env).ledger_witness_urls == ()  # default: none
    for bad in ("ftp://w", "http://user:pw@w", "http://w/?q=1", "http://w/#f"):
        with pytest.raises(ValueError, match="LLM_MESH_LEDGER_WITNESS_URLS"):
            Settings.from_env({**env, "LLM_MESH_LEDGER_WITNESS_URLS": bad})
    with pytest.raises(ValueError, match="needs LLM_MESH_LEDGER_WITNESSES"):
        Settings.from_env({"LLM_MESH_LEDGER_WITNESS_URLS": "http://w"})


def test_a_witness_url_with_add_checkpoint_is_refused_with_the_prefix_to_give() -> None:
    # the witness prints its POST URL; the registry wants the submission prefix (it adds
    # /add-checkpoint itself): the whole URL pushed to .../add-checkpoint/add-checkpoint, 404
    env = {"LLM_MESH_LEDGER_WITNESSES": WK.vkey}
    for given in ("http://127.0.0.1:8810/add-checkpoint", "https://w.example/t/add-checkpoint/"):
        with pytest.raises(ValueError, match="without /add-checkpoint") as err:
            Settings.from_env({**env, "LLM_MESH_LEDGER_WITNESS_URLS": given})
        assert given.rstrip("/").removesuffix("/add-checkpoint") + "'" in str(err.value)


@pytest.mark.e2e
def test_the_registry_pushes_to_a_real_witness_process_on_loopback(tmp_path: Path) -> None:
    reg, w = tmp_path / "reg", tmp_path / "w"
    _grow(reg, (10, 20, 30))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
    args = ["ledger", "witness", "--listen", "127.0.0.1:0", "--name", NAME, "--home", str(w),
            "--log-key", base64.b64encode(LOG_PUB).decode()]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "LLM_Mesh.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("add-checkpoint" in x for x in lines):  # printed once it listens
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        vkey = re.search(r"witness key: (\S+)", text)
        url = re.search(r"POST (http://127\.0\.0\.1:\d+)/add-checkpoint", text)
        assert vkey and url, text

        async def push() -> dict[str, str]:
            async with registry(reg, (url.group(1),), None, accepted=(vkey.group(1),)) as app:
                return await _settled(app)  # pushed at start, by the registry's own client

        assert asyncio.run(push()) == {url.group(1): "cosigned size 3 (1 stored)"}
        code, out = cli(
            tmp_path / "v", "ledger", "verify", "--database-url", _db(reg), "--witness",
            vkey.group(1),
        )  # fmt: skip
        assert code == 0, out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert (w / "witness_state.json").exists()


def _two(a: httpx.AsyncClient, b: httpx.AsyncClient) -> httpx.AsyncClient:
    """One client: ``http://a`` answered by ``a``'s transport, ``http://b`` by ``b``'s."""

    class Both(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            client = a if request.url.host == "a" else b
            return await client._transport.handle_async_request(request)

    return httpx.AsyncClient(transport=Both())


def _db_down(*_: object, **__: object) -> Any:
    from sqlalchemy.exc import OperationalError

    raise OperationalError("INSERT ...", {}, Exception("database is locked"))


@pytest.mark.parametrize("where", ["add_cosignature", "consistency_proof"])
async def test_a_database_error_for_one_witness_spoils_no_other(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # witness a: its push meets a database error (storing its cosignature, or building
    # the proof from the size it cosigned); witness b: a stranger's cosignature, nothing
    # stored (no database write), and it fails nothing
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10, 20))
    ours = WitnessService(WKEY, NAME, tmp_path / "a.json", {ORIGIN: [LOG_PUB]})
    stranger = Ed25519PrivateKey.generate()
    theirs = WitnessService(stranger, NAME, tmp_path / "b.json", {ORIGIN: [LOG_PUB]})
    async with pusher_on(reg, _two(_asgi(ours), _asgi(theirs)), ("http://a", "http://b")) as p:
        if where == "consistency_proof":
            p.targets[0].known = 1  # a cosigned size 1 before: a proof from 1 to 2
        setattr(p.ledger, where, _db_down)
        said = await p.push_all()
        assert said["http://b"] == "cosigned size 2 (0 stored)", said
        assert said["http://a"].startswith("failed: database error"), said
        assert "database is locked" in said["http://a"]
        assert p.targets[0].not_before > 0 and p.targets[0].failures == 1  # backing off
        assert p.targets[1].failures == 0 and p.rounds == 1 and p.said == said
    lines = [r.getMessage() for r in caplog.records if "http://a" in r.getMessage()]
    assert any("database error" in x and "again in" in x for x in lines), lines


async def test_a_database_error_before_the_pushes_is_each_witness_failure(
    tmp_path: Path,
) -> None:
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10,))
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(500)

    async with pusher_on(reg, _mock(handler)) as p:
        p.ledger.checkpoint_at = _db_down  # type: ignore[method-assign]
        said = await p.push_all()
        assert said["http://w"].startswith("failed: database error"), said
        assert calls == [] and p.targets[0].not_before > 0 and p.rounds == 1


async def test_a_witness_ahead_of_this_store_is_an_error_naming_a_restored_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The witness cosigned a larger tree than this store holds: the store went back (a
    restored older backup served with --accept-ledger-rollback, or an old home's mark).
    Found 2026-12-05: a WARNING like a timeout's, nothing saying the log forked."""
    reg = tmp_path / "reg"
    await asyncio.to_thread(_grow, reg, (10,))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, content=b"99\n", headers={"Content-Type": "text/x.tlog.size"})

    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.witness_push")
    async with pusher_on(reg, _mock(handler)) as p:
        said = await p.push_all()
    assert "beyond this log's" in said["http://w"], said
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("restored from an older backup" in m and "99" in m for m in errors), errors
