"""A verifier's trust (``registry/quality.py``, ``core/trust.py``): the admin's reference is
trusted for the models it serves unless quarantined, in routing and in ``GET /mesh/nodes``.

Found 2026-12-07 (user41b): a verifier is not probed against itself, so it scored 0.5
(unverified) and ``trusted_only`` never routed to it; the listing said ``trusted: false``.
"""

from __future__ import annotations

from typing import Any

from tests.registry.canary_mesh import MODEL, mesh, register, trust
from tests.registry.helpers import Harness

__all__ = ["mesh"]


def listed(h: Harness, rows: list[dict[str, Any]], node_id: str) -> dict[str, Any]:
    return next(n for n in rows if n["node_id"] == node_id)


async def test_a_verifier_alone_serves_a_trusted_only_request(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await register(mesh, "new")
    await trust(mesh, "verifier")
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    for _ in range(5):
        r = await mesh.client.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "verifier"
    q = mesh.runtime.quality
    assert q is not None
    assert q.trusted_nodes(MODEL) == {"verifier"}
    assert q.trusted_nodes("another-model") == frozenset()  # not a model it serves
    rows = (await mesh.client.get("/mesh/nodes")).json()["nodes"]
    v = listed(mesh, rows, "verifier")
    assert v["verifier"] is True and v["trusted"] is True and v["trust_score"] == 1.0
    assert listed(mesh, rows, "new")["trusted"] is False


async def test_a_quarantined_verifier_does_not(mesh: Harness) -> None:
    await register(mesh, "verifier")
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    await q.record("verifier", MODEL, ok=False, reason="usage audit: too many", probe=False)
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    r = await mesh.client.post("/v1/completions", json=body)
    assert r.status_code == 503
    assert q.trusted_nodes(MODEL) == frozenset()
    v = listed(mesh, (await mesh.client.get("/mesh/nodes")).json()["nodes"], "verifier")
    assert v["trusted"] is False and v["trust_score"] == 0.0


async def test_a_verifier_is_not_trusted_for_a_file_it_declares_no_sha256_of(
    mesh: Harness,
) -> None:
    # no verifier can check a model without a sha256 (docs/security.md: trusted_only avoids
    # them), the verifier itself included
    await register(mesh, "verifier", sha=None)
    await trust(mesh, "verifier")
    q = mesh.runtime.quality
    assert q is not None
    assert q.trusted_nodes(MODEL) == frozenset()
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    assert (await mesh.client.post("/v1/completions", json=body)).status_code == 503
