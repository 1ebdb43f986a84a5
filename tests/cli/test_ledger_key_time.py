"""``ledger verify`` holds checkpoints to their key's validity window and entries to their
checkpoints' times and the verifier's clock (``core/ledger_time.py``; found 2026-12-05: a
checkpoint signed by a rotated-out key long after the rotation, and entries dated in the
future, passed). The ledgers are written by real in-process registries (one per key: the
rotation), then verified from the store (the CLI) and over HTTP (``GET /v1/ledger/keys``'s
``created``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli.ledger_commands import audit
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app as cli_app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.ledger_time import ROTATION_GRACE_S, when
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer, public_key_text
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings

runner = CliRunner()
DAY = 86_400
OLD, NEW = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def verify(home: Path) -> tuple[int, str]:
    db = Settings(home=home).effective_database_url
    out = runner.invoke(cli_app, ["ledger", "verify", "--database-url", db, "--home", str(home)],
                        env={"COLUMNS": "300"})  # fmt: skip
    return out.exit_code, " ".join(out.output.split())


async def _introduce(home: Path, key: Ed25519PrivateKey, at: float) -> None:
    """The store's record of ``key`` first published at ``at`` (what the registry started
    with that key writes then: ``Checkpointer.ensure_published``, on the real clock)."""
    async with SqlStore(Settings(home=home).effective_database_url) as store:

        async def engine() -> object:
            return store.engine

        ledger = SqlLedger(engine)  # type: ignore[arg-type]
        await ledger.add_key(public_key_text(key), datetime.fromtimestamp(at, timezone.utc))


async def _serve(home: Path, key: Ed25519PrivateKey, clock: Callable[[], float],
                 amounts: tuple[int, ...]) -> None:  # fmt: skip
    """A registry on ``home``'s store with ``key`` and ``clock``: grants ``amounts`` to
    the pool, and signs a checkpoint of them."""
    settings = make_settings(home, pool_daily_budget=0)
    store = SqlStore(Settings(home=home).effective_database_url)
    app = create_registry_app(settings, store=store, gateway_key=key, wall_clock=clock)
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        await rt.ledger.append([Transfer("grant", MINT, POOL, n) for n in amounts])
        assert await rt.checkpointer.checkpoint()


async def _append(home: Path, clock: Callable[[], float], amount: int) -> None:
    """One more grant written to ``home``'s ledger at ``clock``'s time, not signed yet
    (a registry signs it later: every minute, or every 1,000 entries)."""
    async with SqlStore(Settings(home=home).effective_database_url) as store:

        async def engine() -> object:
            return store.engine

        ledger = SqlLedger(engine, wall_clock=clock)  # type: ignore[arg-type]
        await ledger.append([Transfer("grant", MINT, POOL, amount)])


def _rotated(home: Path) -> float:
    """A ledger that lived through a real rotation: OLD's registry two days ago, NEW's
    (its successor) from one day ago. Returns when NEW was introduced."""
    now = time.time()
    old_at, new_at = now - 2 * DAY, now - DAY
    asyncio.run(_introduce(home, OLD, old_at - 5))
    asyncio.run(_serve(home, OLD, lambda: old_at, (10, 20)))
    asyncio.run(_introduce(home, NEW, new_at - 5))
    asyncio.run(_serve(home, NEW, lambda: new_at, (30,)))
    return new_at - 5


def test_an_honest_ledger_through_a_rotation_passes(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _rotated(home)
    code, out = verify(home)
    assert code == 0 and "OK" in out and "2 checkpoints" in out, out


def test_a_checkpoint_by_the_rotated_out_key_after_the_rotation_fails(tmp_path: Path) -> None:
    """The old key (kept, or leaked) signs the tree as it is now, a day after the rotation
    away from it: every signature checks out, and the key is one the registry publishes."""
    home = tmp_path / "mesh"
    rotated = _rotated(home)
    asyncio.run(_append(home, lambda: rotated + 3_600, 40))

    async def forge() -> float:
        async with SqlStore(Settings(home=home).effective_database_url) as store:

            async def engine() -> object:
                return store.engine

            signer = Checkpointer(SqlLedger(engine), OLD, Settings().ledger_origin)  # type: ignore[arg-type]
            cp = await signer.checkpoint()
            assert cp is not None
            return cp.time_us

    forged_us = asyncio.run(forge())
    code, out = verify(home)
    assert code == 1, out  # before: 0, OK
    assert f"key: checkpoint at size 4: dated {when(forged_us)}" in out
    assert f"signed by key {public_key_text(OLD)}, which was rotated out at" in out
    assert when(int(rotated) * 1_000_000) in out and f"grace {ROTATION_GRACE_S} s" in out


def test_a_future_dated_entry_fails(tmp_path: Path) -> None:
    """A registry whose clock (or whose books) put an entry an hour ahead of the
    verifier's clock, under no checkpoint yet (one dated before it: ``test_ledger_time``)."""
    home = tmp_path / "mesh"
    _rotated(home)
    asyncio.run(_append(home, lambda: time.time() + 3_600, 40))
    code, out = verify(home)
    assert code == 1, out  # before: 0, OK
    assert "time: entry 3 is dated" in out and "ahead of this verifier's clock" in out


def test_over_http_the_published_key_times_hold_too(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    rotated = _rotated(home)
    asyncio.run(_append(home, time.time, 40))

    async def check() -> list[str]:
        settings = make_settings(home, pool_daily_budget=0)
        store = SqlStore(Settings(home=home).effective_database_url)
        app = create_registry_app(settings, store=store, gateway_key=NEW)
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            t = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
                now = int(time.time() * 1_000_000)
                honest = await audit(HttpSource(client), now_us=now)
                assert honest.ok, honest.findings
                signer = Checkpointer(rt.ledger, OLD, settings.ledger_origin)
                assert await signer.checkpoint()  # the rotated-out key, now
                forged = await audit(HttpSource(client), now_us=now)
        return [f.kind + ": " + f.message for f in forged.findings]

    found = asyncio.run(check())
    assert len(found) == 1 and found[0].startswith("key: checkpoint at size 4"), found
    assert when(int(rotated) * 1_000_000) in found[0]
