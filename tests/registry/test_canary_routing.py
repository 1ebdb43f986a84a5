"""Canary verdicts and routing: a quarantined node leaves routing for that model, trusted-only
requests, verdicts made elsewhere, a stale poll, and trust per model."""

from __future__ import annotations

from LLM_Mesh.registry.quality import QualityWatcher
from tests.registry.canary_mesh import (
    MODEL,
    SHA,
    LogprobNodes,
    canned,
    honest,
    mesh,
    register,
    run_round,
    trust,
)
from tests.registry.helpers import Harness, funded_key

__all__ = ["mesh"]  # the fixture


async def test_quarantined_node_leaves_routing_for_that_model_and_clear_brings_it_back(
    mesh: Harness,
) -> None:
    await register(mesh, "verifier")
    await register(mesh, "liar", canned)
    await trust(mesh, "verifier")
    await run_round(mesh, node="liar")
    mesh.nodes.nodes["liar:8801"].calls.clear()
    for _ in range(20):
        r = await mesh.client.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
        assert r.status_code == 200
        assert r.json()["mesh"]["node_id"] == "verifier"
    assert mesh.nodes.nodes["liar:8801"].calls == []
    only_liar = {"model": MODEL, "prompt": "x", "allow_nodes": ["liar"]}
    r = await mesh.client.post("/v1/completions", json=only_liar)
    assert r.status_code == 503
    q = mesh.runtime.quality
    assert q is not None
    assert await q.clear("liar") == [MODEL]
    r = await mesh.client.post("/v1/completions", json=only_liar)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "liar"


async def test_trusted_only_routes_to_trusted_nodes(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "proven")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    # nobody has passed a canary yet: only the verifier, the admin's reference, is trusted
    # (until 2026-12-07 this was a 503: a verifier scored as unverified, user41b)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "verifier"
    await run_round(mesh, node="proven")
    seen = set()
    for _ in range(20):
        r = await mesh.client.post("/v1/completions", json=body)
        assert r.status_code == 200
        seen.add(r.json()["mesh"]["node_id"])
    assert seen <= {"verifier", "proven"} and "proven" in seen  # never "new"
    bad = await mesh.client.post("/v1/completions", json={**body, "trusted_only": "yes"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "trusted_only"
    # the extension is stripped before forwarding
    node = mesh.nodes.nodes["proven:8801"]
    assert "trusted_only" not in node.calls[-1]["body"]


async def test_trusted_only_from_the_api_key(mesh: Harness) -> None:
    from LLM_Mesh.registry.api_keys import create_api_key

    await register(mesh, "verifier")
    await register(mesh, "proven")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    await run_round(mesh, node="proven")
    made = await create_api_key(mesh.store, name="careful", trusted_only=True)
    assert made is not None
    key, rec = made
    assert (await mesh.store.api_key_by_hash(rec.key_hash)).trusted_only  # type: ignore[union-attr]
    from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym

    ledger = mesh.runtime.ledger
    assert ledger is not None  # a keyed user pays (settlement): grant it a balance first
    await ledger.append([Transfer("grant", MINT, pseudonym("user", rec.key_id), 10_000_000)])
    auth = {"Authorization": f"Bearer {key}"}
    for _ in range(15):
        r = await mesh.client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "x"}, headers=auth
        )
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] in {"proven", "verifier"}


async def test_watcher_applies_quarantines_and_clears_made_elsewhere(mesh: Harness) -> None:
    from datetime import datetime, timezone

    await register(mesh, "a")
    await register(mesh, "b")
    q = mesh.runtime.quality
    assert q is not None
    watcher = QualityWatcher(q)
    now = datetime.now(timezone.utc)
    await mesh.store.record_canary("a", MODEL, ok=False, reason="canary: token at 0", at=now)
    await mesh.store.trust_verifier("b", {MODEL: SHA}, now)
    await watcher.poll()
    assert q.quarantined("a", MODEL) and q.verifiers["b"] == {MODEL: SHA}
    assert q.vouches("b", MODEL, SHA)
    assert mesh.runtime.routing.quarantined == {"a": frozenset({MODEL})}
    await mesh.store.clear_quarantine("a", now)
    await watcher.poll()
    assert not q.quarantined("a", MODEL) and mesh.runtime.routing.quarantined == {}
    # a model marked or unmarked on the store (verifier43: marks name models) is learnt too
    assert await mesh.store.trust_verifier("b", {"mistral-7b": "b" * 64}, now)
    await watcher.poll()
    assert q.verifiers["b"] == {MODEL: SHA, "mistral-7b": "b" * 64}
    assert await mesh.store.untrust_verifier("b", [MODEL])
    await watcher.poll()
    assert not q.vouches("b", MODEL, SHA) and q.vouches("b", "mistral-7b", "b" * 64)
    # a verifier unmarked on the store (``registry nodes untrust``, cli42) is one no more
    assert await mesh.store.untrust_verifier("b")
    await watcher.poll()
    assert "b" not in q.verifiers


async def test_a_stale_poll_does_not_undo_a_newer_verdict(mesh: Harness) -> None:
    from dataclasses import replace
    from datetime import timedelta

    await register(mesh, "verifier")
    await register(mesh, "liar", canned)
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    before = (await mesh.store.canary_records()) or []
    await run_round(mesh, node="liar")
    assert q.quarantined("liar", MODEL)
    rec = q.records["liar"][MODEL]
    assert rec.updated_at is not None
    # what a poll that read the store just before the verdict would bring back
    stale = replace(rec, quarantined_at=None, reason=None, failed=0)
    stale.updated_at = rec.updated_at - timedelta(seconds=1)
    q.apply(stale)
    assert q.quarantined("liar", MODEL) and mesh.runtime.routing.quarantined
    assert before == []


async def test_trust_earned_on_one_model_does_not_carry_to_an_unverified_one(
    mesh: Harness,
) -> None:
    """A node passes its probes for the model a verifier hosts and also lists a model no
    verifier can check: ``trusted_only`` must not send that model's requests to it on the
    strength of the other's probes (found 2026-12-02: the node's passes for any model made
    it trusted for all of them, so an unverifiable model was served as "trusted")."""
    nodes = mesh.nodes
    assert isinstance(nodes, LogprobNodes)
    await register(mesh, "verifier")
    nodes.add("proven")
    nodes.answers["proven"] = honest
    reg = {
        "node_id": "proven",
        "url": "http://proven:8801",
        "models": [{"id": MODEL, "engine": "llama-cpp", "sha256": SHA},
                   {"id": "my-org/unchecked-7b", "engine": "llama-cpp", "sha256": "b" * 64}],
        "max_concurrency": 2,
    }  # fmt: skip
    assert (await mesh.client.post("/mesh/nodes", json=reg)).status_code == 200
    await trust(mesh, "verifier")
    verdicts = {(r["model"], r["verdict"]) for r in await run_round(mesh, node="proven")}
    assert verdicts == {(MODEL, "pass"), ("my-org/unchecked-7b", "unverified")}
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    # the verifier, the admin's reference for MODEL, is trusted too (since 2026-12-07)
    assert r.status_code == 200 and r.json()["mesh"]["node_id"] in {"proven", "verifier"}
    q = mesh.runtime.quality
    assert q is not None and q.trusted_nodes(MODEL) == {"proven", "verifier"}
    assert q.trusted_nodes("my-org/unchecked-7b") == frozenset()
    # (with an API key: the community pool pays for catalog models only)
    r = await mesh.client.post("/v1/completions", json={**body, "model": "my-org/unchecked-7b"},
                               headers=await funded_key(mesh))  # fmt: skip
    assert r.status_code == 503, r.text  # nobody passed a probe for it
