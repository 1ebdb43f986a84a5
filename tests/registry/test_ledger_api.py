"""The ledger's public endpoints, and ``ledger verify`` over HTTP against them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import audit
from LLM_Mesh.cli.ledger_compare import compare_all
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.core.checkpoint import open_checkpoint, sign_checkpoint
from LLM_Mesh.core.gossip import export
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS, MINT, POOL, Transfer, pseudonym
from LLM_Mesh.core.merkle import leaf_hash, root_of
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings, sign_head

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


async def _filled_app(tmp_path: Path) -> tuple[object, SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    settings = make_settings(tmp_path, ledger_checkpoint_every=10_000, pool_daily_budget=0)
    return create_registry_app(settings, store=store), store


async def _fill(rt: object, n: int) -> None:
    ledger = rt.ledger  # type: ignore[attr-defined]
    await ledger.append([Transfer("grant", MINT, ALICE, 1_000_000)])
    odd = 'q"uo\\te\nline ünï'  # a request id that JSON must escape
    await ledger.append(
        [Transfer("settle", ALICE, POOL, 1 + i, odd if i == 3 else f"r{i}") for i in range(n - 1)]
    )
    await rt.checkpointer.checkpoint()  # type: ignore[attr-defined]


async def test_the_export_is_the_list_as_ndjson_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("LLM_Mesh.registry.ledger_api._EXPORT_CHUNK", 4)  # several reads
    app, _store = await _filled_app(tmp_path)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        await _fill(app.state.runtime, 23)  # type: ignore[attr-defined]
        t = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
            listed = (await client.get("/v1/ledger", params={"limit": 100})).json()["data"]
            r = await client.get("/v1/ledger/export")
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/x-ndjson"
            assert r.headers["x-ledger-tree-size"] == "23"
            lines = r.text.splitlines()
            assert [json.loads(x) for x in lines] == [[e[f] for f in ENTRY_FIELDS] for e in listed]
            assert json.loads(lines[4])[6] == 'q"uo\\te\nline ünï'
            part = await client.get("/v1/ledger/export", params={"after": 5, "limit": 7})
            assert [json.loads(x)[0] for x in part.text.splitlines()] == list(range(6, 13))
            end = await client.get("/v1/ledger/export", params={"after": 22})
            assert end.status_code == 200 and end.text == ""
            bad = await client.get("/v1/ledger/export", params={"limit": 100_001})
            assert bad.status_code == 400


async def test_verify_over_http_reads_the_export_in_several_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("LLM_Mesh.cli.ledger_http.EXPORT_LIMIT", 5)
    app, _store = await _filled_app(tmp_path)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        await _fill(app.state.runtime, 20)  # type: ignore[attr-defined]
        seen: list[str] = []

        async def log(request: httpx.Request) -> None:
            seen.append(request.url.path)

        t = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        hooks = {"request": [log]}
        async with httpx.AsyncClient(transport=t, base_url="http://m", event_hooks=hooks) as c:
            report = await audit(HttpSource(c))
    assert report.ok, report.findings
    assert report.entries == 20 and report.balances[POOL] == sum(range(1, 20))
    assert seen.count("/v1/ledger/export") == 5  # 4 full requests of 5, then an empty one
    assert "/v1/ledger" not in seen


class _NoExport(httpx.AsyncBaseTransport):
    """A registry from before the export: 404 for it, the app for the rest."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/ledger/export":
            return httpx.Response(404, json={"detail": "Not Found"})
        return await self.inner.handle_async_request(request)


async def test_verify_falls_back_to_the_paged_list(tmp_path: Path) -> None:
    app, _store = await _filled_app(tmp_path)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        await _fill(app.state.runtime, 12)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=_NoExport(app), base_url="http://m") as c:
            report = await audit(HttpSource(c), page=5)
    assert report.ok and report.entries == 12


TAMPER = {
    "changed": ["UPDATE ledger_entries SET amount = 2 WHERE seq = 3"],
    "missing": ["DELETE FROM ledger_entries WHERE seq = 4"],
    "reordered": [f"UPDATE ledger_entries SET seq = {b} WHERE seq = {a}"
                  for a, b in ((5, -1), (6, 5), (-1, 6))],
    "amount": ["UPDATE ledger_entries SET amount = 'lots' WHERE seq = 7"],
}  # fmt: skip
SAYS = {
    "changed": "entry 3 was changed",
    "missing": "entry 4 is missing",
    "reordered": "entry 5 is the entry written as 6 (rows reordered)",
    "amount": "entry 7: amount 'lots' is not a whole number >= 1",
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
async def test_verify_over_the_export_names_each_tampering(tmp_path: Path, kind: str) -> None:
    app, store = await _filled_app(tmp_path)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        await _fill(app.state.runtime, 12)  # type: ignore[attr-defined]
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
            await conn.execute(text("DROP TRIGGER ledger_entries_no_delete"))
            for sql in TAMPER[kind]:
                await conn.execute(text(sql))
        t = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=t, base_url="http://m") as c:
            report = await audit(HttpSource(c))
    assert not report.ok
    assert any(f.kind == kind and SAYS[kind] in f.message for f in report.findings), report.findings


async def test_verifiers_compare_checkpoints_over_http_with_the_registrys_proofs(
    tmp_path: Path,
) -> None:
    """``ledger verify --compare`` over HTTP: a peer's checkpoint published at a URL, a
    consistency proof from ``GET /v1/ledger/proof/consistency``."""
    settings = make_settings(tmp_path, ledger_checkpoint_every=1000, pool_daily_budget=0)
    app = create_registry_app(settings, store=MemoryStore())
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        cp = rt.checkpointer
        await rt.ledger.append([Transfer("grant", MINT, ALICE, 100)])
        await rt.ledger.append([Transfer("settle", ALICE, POOL, 3, f"r{i}") for i in range(4)])
        early = await sign_head(cp)  # what a peer verified at size 5
        await rt.ledger.append([Transfer("settle", ALICE, POOL, 3, f"s{i}") for i in range(4)])
        await sign_head(cp)
        # the same registry key signing another history at size 5 (shown to someone else)
        other = sign_checkpoint(cp.key, base64.b64decode(cp.public_key), cp.origin, 5,
                                root_of([leaf_hash(b"x%d" % i) for i in range(5)]), 1)  # fmt: skip
        ahead = sign_checkpoint(cp.key, base64.b64decode(cp.public_key), cp.origin, 12,
                                root_of([leaf_hash(b"y%d" % i) for i in range(12)]), 2)  # fmt: skip
        published = {
            "/honest.json": json.dumps(export(early, cp.public_key, "http://mesh")),
            "/other.note": other.note,
            "/ahead.note": ahead.note,  # a tree this verifier is not shown: no proof for it
        }

        def peer(request: httpx.Request) -> httpx.Response:
            body = published.get(request.url.path)
            return httpx.Response(200, text=body) if body else httpx.Response(404)

        t = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=t, base_url="http://mesh") as client,
            httpx.AsyncClient(transport=httpx.MockTransport(peer)) as peers,
        ):
            source = HttpSource(client)
            report = await audit(source)
            assert report.ok and report.checkpoint is not None
            assert report.checkpoint.tree_size == 9 and report.checkpoint_key == cp.public_key
            keys = (await source.keys())[0]
            urls = [f"https://peer.example/{p}" for p in
                    ("honest.json", "other.note", "ahead.note", "gone.json")]  # fmt: skip
            got = await compare_all(urls, report.checkpoint, keys, source.consistency, peers)
    assert [c.kind for c in got] == ["consistent", "split view", "unproven", "unreadable"]
    assert "no consistency proof from size 9 to 12" in got[2].message
    assert "answered 400" in got[2].message
    assert "is a prefix of this view's size 9" in got[0].message
    assert "size 5 and 9 are not one history" in got[1].message
    assert "404" in got[3].message


async def test_verify_over_http_checks_the_balance_the_registry_charges_against(
    tmp_path: Path,
) -> None:
    """``GET /v1/balance`` says the balance settlement admits against and the tree size it
    read it at; ``ledger verify`` holds it against the entries up to that size: the pool's
    (no key), a user's (``LLM_MESH_API_KEY``). A balance changed in the store without an
    entry is named ``stored`` (until 2026-12-03 a verify over HTTP read no balance)."""
    from LLM_Mesh.registry.api_keys import create_api_key

    app, store = await _filled_app(tmp_path)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        rt = app.state.runtime  # type: ignore[attr-defined]
        await _fill(rt, 6)
        made = await create_api_key(store)
        assert made is not None
        user = pseudonym("user", made[1].key_id)
        await rt.ledger.append([Transfer("grant", MINT, user, 300)])
        t = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=t, base_url="http://m") as c:
            for key, account, entries in ((None, POOL, 15), (made[0], user, 300)):
                source = HttpSource(c) if key is None else HttpSource(c, key)
                report = await audit(source)
                assert report.ok, report.findings
                async with store.engine.begin() as conn:
                    await conn.execute(
                        text("UPDATE balances SET balance = balance + 500 WHERE account = :a"),
                        {"a": account},
                    )
                # the pool's row answered without a key is kept 1 s (balance_api): read anew
                app.state.pool_row = None  # type: ignore[attr-defined]
                report = await audit(source)
                assert [(f.kind, f.message) for f in report.findings] == [
                    (
                        "stored",
                        f"account {account}: the store's balance is {entries + 500}, the first "
                        f"7 entries add up to {entries} (+500 without an entry)",
                    )
                ]


async def test_the_key_list_carries_the_signed_rotation_chain(tmp_path: Path) -> None:
    """``GET /v1/ledger/keys``' ``key_rotations``: the chain ``registry.key.rotations``
    keeps (the one registration answers carry), ending at the key that signs now; none
    before any rotation. What a verifier follows from a key it remembered."""
    import os

    from LLM_Mesh.core.key_chain import follow_chain
    from LLM_Mesh.core.key_rotation import vouches_for

    async def keys_answer() -> dict[str, object]:
        settings = make_settings(tmp_path, pool_daily_budget=0)
        app = create_registry_app(settings, store=MemoryStore())
        async with app.router.lifespan_context(app):
            t = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
                answer: dict[str, object] = (await client.get("/v1/ledger/keys")).json()
                return answer

    def url(std: str) -> str:
        return base64.urlsafe_b64encode(base64.b64decode(std)).rstrip(b"=").decode()

    before = await keys_answer()
    assert before["key_rotations"] == []
    old = url(before["data"][0]["public_key"])  # type: ignore[index]
    os.replace(tmp_path / "registry.key", tmp_path / "registry.key.previous")  # deploy.md
    after = await keys_answer()
    new = url(after["data"][0]["public_key"])  # type: ignore[index]
    chain = after["key_rotations"]
    assert isinstance(chain, list) and len(chain) == 1 and vouches_for(chain[0], old, new)
    assert follow_chain(chain, old, new) == [old, new]
    assert json.loads((tmp_path / "registry.key.rotations").read_text()) == chain
