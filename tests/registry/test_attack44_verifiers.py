"""attack44: a dishonest node operator against the per-model canary verifier marks
(``core/verifier_marks.py``, migration 0034; session 43). Each held; see docs/security.md's
"(held, 2026-12-07, attack44)" rows."""

from __future__ import annotations

from datetime import datetime, timezone

from LLM_Mesh.registry.revocations import RevocationWatcher
from tests.registry.canary_mesh import (
    MODEL,
    SHA,
    canned,
    mesh,
    prober,
    register,
    run_round,
    trust,
)
from tests.registry.helpers import Harness

__all__ = ["mesh"]

SHA_B = "b" * 64
TRUSTED = {"model": MODEL, "prompt": "x", "trusted_only": True}


async def test_attack_a_node_declaring_a_verifiers_marked_file_is_no_reference(
    mesh: Harness,
) -> None:
    """A liar declares the very model and sha256 a verifier is marked for (both public in
    ``GET /mesh/nodes``), upper-cased too: it is probed against the verifier, never the
    reference itself, and not trusted for it."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    await register(mesh, "liar", canned, sha=SHA.upper())
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    assert not q.vouches("liar", MODEL, SHA)
    assert p.verifiers_for("liar", MODEL) == ["verifier"]  # the same file: checked by it
    assert p.verifiers_for("verifier", MODEL) == []  # the liar is nobody's reference
    (result,) = await run_round(mesh, node="liar", model=MODEL)
    assert (result["verdict"], result["verifier"]) == ("fail", "verifier"), result
    assert q.trusted_nodes(MODEL) == {"verifier"}


async def test_attack_a_marked_verifier_whose_key_is_revoked_is_no_reference(
    mesh: Harness,
) -> None:
    """The admin revokes a marked verifier's key (``registry nodes revoke``), its mark left
    in place: it is nobody's reference and serves no ``trusted_only`` request (held), and is
    listed untrusted (failed before); under a new key (another id, unmarked) it is neither."""
    await register(mesh, "verifier")
    await register(mesh, "peer")
    await trust(mesh, "verifier")
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None and p.verifiers_for("peer", MODEL) == ["verifier"]
    now = datetime.now(timezone.utc)
    await mesh.store.claim_node_key("verifier", "key-v", "op", 1, now)  # (unsigned harness)
    assert await mesh.store.revoke_node("verifier", now)
    await RevocationWatcher(mesh.store, mesh.table, mesh.runtime.routing).poll()
    assert p.verifiers_for("peer", MODEL) == []
    assert (await mesh.client.post("/v1/completions", json=TRUSTED)).status_code == 503
    assert q.trusted_nodes(MODEL) == frozenset()
    # found 2026-12-07 (attack44): the public listing said the revoked key trusted, a
    # verifier, trust 1.0 (its mark outlives its key); now untrusted, 0, no verifier
    listed = {n["node_id"]: n for n in (await mesh.client.get("/mesh/nodes")).json()["nodes"]}
    row = listed["verifier"]
    assert row["revoked"] is True, row
    assert (row["trusted"], row["verifier"], row["trust_score"]) == (False, False, 0.0), row
    (result,) = await run_round(mesh, node="peer", model=MODEL)
    assert result["verdict"] == "unverified", result
    await register(mesh, "verifier-new-key")  # its operator's next key: another id
    assert p.verifiers_for("peer", MODEL) == [] and not q.vouches("verifier-new-key", MODEL, SHA)


async def test_attack_a_verifier_switching_its_file_and_back_is_the_reference_only_for_the_mark(
    mesh: Harness,
) -> None:
    """Marked for ``SHA``, it re-registers with ``SHA_B`` (an accomplice serving the same
    made-up file), then back to ``SHA``: a reference for ``SHA`` only, never ``SHA_B``."""
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    await register(mesh, "accomplice", canned, sha=SHA_B)
    p, q = prober(mesh), mesh.runtime.quality
    assert q is not None
    for sha in (SHA_B, SHA):
        await register(mesh, "verifier", sha=sha)
        assert p.verifiers_for("accomplice", MODEL) == []
        assert q.trusted_nodes(MODEL) == (frozenset() if sha == SHA_B else {"verifier"})
