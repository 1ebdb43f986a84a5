"""``POST /v1/ledger/cosignatures`` and ``GET /v1/ledger/checkpoints/latest``: witnesses'
cosignatures accepted (only valid ones, by configured witnesses), stored, served."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.checkpoint import open_checkpoint
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.witness import cosign, cosigners, witness_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger_cosign import MAX_BODY
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings, sign_head

WITNESS = Ed25519PrivateKey.generate()
WK = witness_key(WITNESS, "witness.test/w1")
NOW = 1_800_000_000.0


@asynccontextmanager
async def _registry(
    tmp_path: Path, database_url: str, witnesses: tuple[str, ...] = (WK.vkey,)
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(tmp_path, pool_daily_budget=0, ledger_witnesses=witnesses)
    app = create_registry_app(settings, store=SqlStore(database_url), wall_clock=lambda: NOW)
    async with app.router.lifespan_context(app):
        # the tests sign checkpoints themselves (``_signed``): the registry's loop, woken by
        # the first append, could sign one first and ``checkpoint()`` answer None (flaky)
        await app.state.runtime.checkpointer.stop()
        t = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
            yield app.state.runtime, client


async def _signed(rt: Any, n: int) -> str:
    await rt.ledger.append([Transfer("grant", MINT, POOL, 10 + i) for i in range(n)])
    cp = await sign_head(rt.checkpointer)
    return str(cp.note)


def _post(size: int, line: str) -> dict[str, object]:
    return {"tree_size": size, "cosignature": line}


async def test_a_witness_cosignature_is_stored_once_and_served_with_the_checkpoint(
    tmp_path: Path, database_url: str
) -> None:
    async with _registry(tmp_path, database_url) as (rt, client):
        assert (await client.get("/v1/ledger/checkpoints/latest")).status_code == 404
        note = await _signed(rt, 3)
        line = cosign(WITNESS, WK.name, note, int(NOW) - 5)
        r = await client.post("/v1/ledger/cosignatures", json=_post(3, line))
        assert r.status_code == 200, r.text
        assert r.json() == {"object": "ledger.cosignature", "tree_size": 3,
                            "witness": WK.vkey, "time": int(NOW) - 5, "stored": True}  # fmt: skip
        again = await client.post("/v1/ledger/cosignatures", json=_post(3, line))
        assert again.status_code == 200 and again.json()["stored"] is False

        latest = (await client.get("/v1/ledger/checkpoints/latest")).json()
        assert latest["tree_size"] == 3 and latest["note"] == note + line
        listed = (await client.get("/v1/ledger/checkpoints")).json()["data"]
        assert listed[-1]["note"] == note + line
        # the registry's own signature still opens; the cosignature verifies by the spec
        keys = (await client.get("/v1/ledger/keys")).json()["data"]
        pub = base64.b64decode(keys[0]["public_key"])
        assert open_checkpoint(latest["note"], rt.checkpointer.origin, pub).tree_size == 3
        assert cosigners(latest["note"], [WK]) == {WK.vkey: int(NOW) - 5}

        # a newer checkpoint is served without the older one's cosignature
        note5 = await _signed(rt, 2)
        latest = (await client.get("/v1/ledger/checkpoints/latest")).json()
        assert latest["tree_size"] == 5 and latest["note"] == note5


async def test_bogus_cosignatures_are_refused_and_not_stored(
    tmp_path: Path, database_url: str
) -> None:
    async with _registry(tmp_path, database_url) as (rt, client):
        note3 = await _signed(rt, 3)
        note5 = await _signed(rt, 2)

        async def post(body: object) -> httpx.Response:
            return await client.post("/v1/ledger/cosignatures", json=body)

        stranger = Ed25519PrivateKey.generate()
        ts = int(NOW)
        cases = {
            # not a witness this registry accepts (another name; the same name, another key)
            403: [
                _post(3, cosign(stranger, "stranger.test/w", note3, ts)),
                _post(3, cosign(stranger, WK.name, note3, ts)),
                # the witness's own line, but on the checkpoint at 5, handed in for 3
                _post(3, cosign(WITNESS, WK.name, note5, ts)),
                # from the future
                _post(3, cosign(WITNESS, WK.name, note3, ts + 3600)),
            ],
            400: [
                _post(4, cosign(WITNESS, WK.name, note3, ts)),  # no checkpoint at 4
                _post(3, "not a signature line"),
                _post(3, cosign(WITNESS, WK.name, note3, ts) + "\u2014 x y\n"),  # two lines
                {"tree_size": 3},
                {"tree_size": -1, "cosignature": cosign(WITNESS, WK.name, note3, ts)},
            ],
        }
        for status, bodies in cases.items():
            for body in bodies:
                r = await post(body)
                assert r.status_code == status, (body, r.text)
        # a signature whose bytes were flipped: the witness's key ID, a bad signature
        good = cosign(WITNESS, WK.name, note3, ts)
        raw = bytearray(base64.b64decode(good.split(" ")[-1]))
        raw[-1] ^= 1
        flipped = f"\u2014 {WK.name} {base64.b64encode(bytes(raw)).decode()}"
        r = await post(_post(3, flipped))
        assert r.status_code == 403 and "does not verify" in r.text
        huge = await client.post(
            "/v1/ledger/cosignatures", content=b'{"tree_size": 3, "x": "' + b"a" * MAX_BODY + b'"}'
        )
        assert huge.status_code == 413
        cps = (await client.get("/v1/ledger/checkpoints")).json()["data"]
        assert [c["note"] for c in cps] == [note3, note5]  # nothing was stored


async def test_a_registry_with_no_witnesses_configured_accepts_none(
    tmp_path: Path, database_url: str
) -> None:
    async with _registry(tmp_path, database_url, witnesses=()) as (rt, client):
        note = await _signed(rt, 2)
        r = await client.post(
            "/v1/ledger/cosignatures", json=_post(2, cosign(WITNESS, WK.name, note, int(NOW)))
        )
        assert r.status_code == 403 and "LLM_MESH_LEDGER_WITNESSES" in r.text
