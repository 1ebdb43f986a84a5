"""The ledger's public endpoints, and ``ledger verify`` over HTTP against them."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.cli.ledger_commands import HttpSource, audit
from LLM_Mesh.core.checkpoint import open_checkpoint
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer, pseudonym
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings

ALICE = pseudonym("user", "alice")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")


async def test_endpoints_prove_what_they_publish(tmp_path: Path, store: object) -> None:
    # no pool budget: the registry mints nothing at start, so the ledger starts empty
    settings = make_settings(tmp_path, ledger_checkpoint_every=4, pool_daily_budget=0)
    app = create_registry_app(settings, store=store)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        t = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
            empty = (await client.get("/v1/ledger")).json()
            assert empty == {"object": "list", "data": [], "has_more": False, "tree_size": 0}
            await rt.ledger.append([Transfer("grant", MINT, ALICE, 100)])
            await rt.ledger.append([Transfer("settle", ALICE, POOL, 3, f"r{i}") for i in range(8)])
            await rt.checkpointer.checkpoint()

            page = (await client.get("/v1/ledger", params={"limit": 4})).json()
            assert page["object"] == "list" and page["has_more"] and page["tree_size"] == 9
            assert [e["seq"] for e in page["data"]] == [0, 1, 2, 3]
            assert page["data"][0]["from"] == MINT and page["data"][1]["request_id"] == "r0"
            rest = (await client.get("/v1/ledger", params={"after": 3, "limit": 100})).json()
            assert [e["seq"] for e in rest["data"]] == list(range(4, 9)) and not rest["has_more"]

            keys = (await client.get("/v1/ledger/keys")).json()["data"]
            assert len(keys) == 1 and keys[0]["current"]
            cps = (await client.get("/v1/ledger/checkpoints")).json()["data"]
            assert cps and cps[-1]["tree_size"] == 9
            pub = base64.b64decode(keys[0]["public_key"])
            signed = open_checkpoint(cps[-1]["note"], keys[0]["origin"], pub)

            r = (
                await client.get("/v1/ledger/proof/inclusion", params={"index": 6, "tree_size": 9})
            ).json()
            leaf = bytes.fromhex(rest["data"][2]["leaf_hash"])
            proof = [bytes.fromhex(p) for p in r["proof"]]
            assert verify_inclusion(6, 9, leaf, proof, signed.root_hash)

            first = cps[0]
            c = (
                await client.get(
                    "/v1/ledger/proof/consistency",
                    params={"first": first["tree_size"], "second": 9},
                )
            ).json()
            proof = [bytes.fromhex(p) for p in c["proof"]]
            assert verify_consistency(
                first["tree_size"], 9, bytes.fromhex(first["root_hash"]), signed.root_hash, proof
            )

            bad = await client.get(
                "/v1/ledger/proof/inclusion", params={"index": 9, "tree_size": 9}
            )
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "index"
            bad = await client.get(
                "/v1/ledger/proof/inclusion", params={"index": 0, "tree_size": 10}
            )
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "tree_size"
            bad = await client.get(
                "/v1/ledger/proof/consistency", params={"first": 5, "second": 99}
            )
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "second"
            bad = await client.get("/v1/ledger", params={"limit": 0})
            assert bad.status_code == 400

            report = await audit(HttpSource(client), page=2)
            assert report.ok, report.findings
            assert report.entries == 9 and report.balances[POOL] == 24
            assert report.inclusion_proofs == 1


async def test_registry_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for _ in range(2):
        app = create_registry_app(settings, store=MemoryStore())
        async with app.router.lifespan_context(app):
            pk = app.state.runtime.checkpointer.public_key
    key = tmp_path / "registry.key"
    assert key.stat().st_mode & 0o777 == 0o600
    app = create_registry_app(settings, store=MemoryStore())
    async with app.router.lifespan_context(app):
        assert app.state.runtime.checkpointer.public_key == pk
