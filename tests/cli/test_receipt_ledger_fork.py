"""``receipt verify --ledger`` against a fork signed for it alone (attack32, 2026-12-05).

The registry holds the ledger key: it can sign a checkpoint of another history than its
log (a split view), show the receipt's holder a page of entries from it and prove them
in it. Before: the checkpoint was taken on its signature alone, so the command said
"proven: those entries are in the registry's log" of entries the log does not hold. Now
it is held to the log an earlier ``ledger verify`` here checked (``ledger_seen.json``) by
a consistency proof (``core/receipt_ledger.seen_finding``).
"""

from __future__ import annotations

import base64
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli import receipt_ledger
from LLM_Mesh.cli.common import settings_from
from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.cli.ledger_seen import SEEN_FILE, save_seen
from LLM_Mesh.core.b64url import decode as b64url_decode
from LLM_Mesh.core.b64url import encode as b64url_encode
from LLM_Mesh.core.b64url import length_prefixed
from LLM_Mesh.core.checkpoint import key_hash, sign_checkpoint
from LLM_Mesh.core.ledger_entry import GENESIS_PREV, LedgerEntry, Transfer, make_entry
from LLM_Mesh.core.merkle import largest_power_of_two_below, root_of
from LLM_Mesh.core.receipt_ledger import seen_finding, seen_sizes
from LLM_Mesh.core.registry_identity import IDENTITY_DOMAIN
from LLM_Mesh.registry.runtime import Runtime
from tests.cli.test_receipt_ledger import _verify, paid
from tests.inprocess_mesh import InProcessMesh

__all__ = ["paid"]  # the fixture, shared with test_receipt_ledger.py

OTHER = "operator:" + "e" * 32


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]): the test's own audit path of leaf ``m``."""
    n = len(leaves)
    if n <= 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return [*_path(m, leaves[:k]), root_of(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_of(leaves[:k])]


def _fork(rt: Runtime, mesh: InProcessMesh, receipt_hash: str) -> tuple[list[LedgerEntry], Any]:
    """The registry's log with the request's share paid to another account, every later
    entry chained again, and a checkpoint of it signed with the registry's ledger key."""
    entries, _ = mesh.call(rt.ledger.entries(-1, 10_000))
    out: list[LedgerEntry] = []
    prev = bytes(32)
    for e in entries:
        to = OTHER if e.kind == "settle" and e.receipt_hash == receipt_hash else e.to_account
        t = Transfer(e.kind, e.from_account, to, e.amount, e.request_id, e.receipt_hash)
        made, prev = make_entry(e.seq, e.time_us, t, prev)
        out.append(made)
    assert any(e.to_account == OTHER for e in out), "no share of the request to move"
    leaves = [bytes.fromhex(e.leaf_hash) for e in out]
    cp = rt.checkpointer
    assert cp is not None
    signed = sign_checkpoint(
        cp.key,
        base64.b64decode(cp.public_key),
        cp.origin,
        len(out),
        root_of(leaves),
        int(time.time() * 1e6),
    )
    return out, signed


def _serving(fork: list[LedgerEntry], signed: Any, public_key: str) -> Any:
    leaves = [bytes.fromhex(e.leaf_hash) for e in fork]

    async def forked(
        client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
    ) -> httpx.Response:
        params = kw.get("params") or {}
        if url.endswith("/v1/ledger"):
            rid = params["request_id"]
            data = [e.to_json() for e in fork if e.request_id == rid]
            return httpx.Response(200, json={"data": data, "has_more": False})
        if url.endswith("/v1/ledger/checkpoints/latest"):
            return httpx.Response(200, json={
                "tree_size": signed.tree_size, "root_hash": signed.root_hash.hex(),
                "note": signed.note, "public_key": public_key,
            })  # fmt: skip
        if url.endswith("/v1/ledger/proof/inclusion"):
            m, n = int(params["index"]), int(params["tree_size"])
            proof = [h.hex() for h in _path(m, leaves[:n])]
            return httpx.Response(200, json={"proof": proof})
        return httpx.Response(404, json={"error": {"message": "not in this test"}})

    return forked


def test_a_fork_signed_for_receipt_verify_is_refused_once_ledger_verify_saw_the_log(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It failed before the fix: exit 0 and "proven: those entries are in the registry's
    log" of a share the log pays to another account, with a `ledger verify` of the real
    log remembered beside it."""
    mesh, rt, r = paid
    rh = r.json()["mesh"]["receipt"]["receipt_hash"]
    fork, signed = _fork(rt, mesh, rh)
    monkeypatch.setattr(receipt_ledger, "call", _serving(fork, signed, rt.checkpointer.public_key))
    # no `ledger verify` run here yet: nothing to hold the fork to, and the command says so
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert "not checked: that its checkpoint is of the log everyone reads" in said
    # the user's `ledger verify` of the real log (what every other verifier reads)
    report = mesh.call(audit(StoreSource(rt.ledger, mesh.settings.ledger_origin)))
    assert report.ok, report.findings
    settings = settings_from(None, mesh.registry_url)
    save_seen(settings.home / SEEN_FILE, f"registry:{settings.registry_url}", report)
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 1, said
    assert f"signed checkpoint of size {signed.tree_size} is not the log an earlier" in said
    assert "a split view" in said
    assert "proven: those entries are in the registry's log" not in said


def test_the_real_log_grown_since_ledger_verify_still_passes(paid: tuple[Any, ...]) -> None:
    """An honest registry passes whether its newest checkpoint is older than the log the
    `ledger verify` saw (a proof from the checkpoint to that size) or newer (a proof from
    that size to it), and the command no longer says the checkpoint is unchecked."""
    mesh, rt, r = paid
    settings = settings_from(None, mesh.registry_url)
    seen_path, source = settings.home / SEEN_FILE, f"registry:{settings.registry_url}"
    # the verify read an entry no checkpoint covers yet: the newest checkpoint is older
    # than what it saw, and a proof from that checkpoint to the size seen joins them
    mesh.call(rt.ledger.append_one(Transfer("grant", "mint", "pool", 3)))
    report = mesh.call(audit(StoreSource(rt.ledger, mesh.settings.ledger_origin)))
    assert report.ok and report.checkpoint is not None
    assert report.checkpoint.tree_size < report.entries
    save_seen(seen_path, source, report)
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert "proven: those entries are in the registry's log" in said
    # and the log grew past what the verify saw, under a newer checkpoint
    mesh.call(rt.ledger.append_one(Transfer("grant", "mint", "pool", 5)))
    mesh.call(rt.checkpointer.checkpoint())
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert "proven: those entries are in the registry's log" in said
    assert "not checked: that its checkpoint" not in said


def test_seen_finding_both_ways_and_at_the_same_size() -> None:
    leaves, prev = [], GENESIS_PREV
    for i in range(7):
        _e, prev = make_entry(i, i, Transfer("grant", "mint", "pool", i + 1), prev)
        leaves.append(prev)
    other = [*leaves[:3], bytes(32), *leaves[4:]]

    def proof(m: int, n: int, tree: list[bytes]) -> list[bytes]:  # RFC 9162 §2.1.4.1
        def sub(m: int, d: list[bytes], b: bool) -> list[bytes]:
            if m == len(d):
                return [] if b else [root_of(d)]
            k = largest_power_of_two_below(len(d))
            if m <= k:
                return [*sub(m, d[:k], b), root_of(d[k:])]
            return [*sub(m - k, d[k:], False), root_of(d[:k])]

        return sub(m, tree[:n], True)

    assert seen_sizes((5, b""), 7) == (5, 7) and seen_sizes((7, b""), 5) == (5, 7)
    assert seen_sizes((7, b""), 7) is None and seen_sizes((0, b""), 7) is None
    seen = (5, root_of(leaves[:5]))
    assert seen_finding(seen, 7, root_of(leaves), proof(5, 7, leaves)) is None
    assert seen_finding(seen, 3, root_of(leaves[:3]), proof(3, 5, leaves)) is None
    assert seen_finding(seen, 5, root_of(leaves[:5]), []) is None
    assert seen_finding(seen, 7, root_of(other), proof(5, 7, other)) is not None
    assert seen_finding(seen, 5, root_of(other[:5]), []) is not None
    assert seen_finding(seen, 3, root_of(leaves[:3]), []) is not None  # no proof: nothing joins
    assert seen_finding((0, b""), 7, root_of(other), []) is None  # nothing seen


def _checkpoint_from_identity(mesh: InProcessMesh, size: int, root: bytes) -> Any:
    """What anyone without the key makes of the registry's public ``GET /mesh/identity``
    (its key's signature of a nonce of the caller's choosing): a note spelling a checkpoint
    of ``size`` and ``root`` (``tests/core/test_checkpoint.py``'s, through the real app)."""
    nonce = f"\n{size}\n{base64.b64encode(root).decode()}\ntime 1\n"  # at most 64 bytes
    with mesh.sync_client() as c:
        got = c.get(
            "/mesh/identity",
            params={"origin": mesh.registry_url, "nonce": b64url_encode(nonce.encode())},
        )
    assert got.status_code == 200, got.text
    answer = got.json()
    sig, pub = b64url_decode(answer["signature"]), b64url_decode(answer["public_key"])
    assert sig is not None and pub is not None
    body = (IDENTITY_DOMAIN + length_prefixed(answer["origin"].encode())
            + length_prefixed(nonce.encode())).decode()  # fmt: skip
    origin = body.split("\n", 1)[0]
    line = f"\u2014 {origin} " + base64.b64encode(key_hash(origin, pub) + sig).decode()
    note = body + "\n" + line + "\n"
    return SimpleNamespace(tree_size=size, root_hash=root, note=note)


def test_an_identity_proof_served_as_the_checkpoint_proves_nothing(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """found 2026-12-05 (attack32): whoever answers `receipt verify --ledger`'s questions
    (a man in the middle of a plain-http registry URL, a proxy or mirror given as
    --registry), holding no key, shows the receipt's holder a page of entries of its own
    (here: the share paid to another account), a tree of them, and as its "signed
    checkpoint" a note made of the registry's public identity proof. It failed before the
    fix: exit 0, "proven: those entries are in the registry's log"."""
    mesh, rt, r = paid
    rh = r.json()["mesh"]["receipt"]["receipt_hash"]
    fork, _ = _fork(rt, mesh, rh)
    leaves = [bytes.fromhex(e.leaf_hash) for e in fork]
    forged = _checkpoint_from_identity(mesh, len(fork), root_of(leaves))
    monkeypatch.setattr(receipt_ledger, "call", _serving(fork, forged, rt.checkpointer.public_key))
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 1, said
    assert "the newest checkpoint does not check out: not a checkpoint" in said
    assert "proven: those entries are in the registry's log" not in said
