"""A canary probe is paid like a user request, and one the pool cannot pay for is not sent."""

from __future__ import annotations

import json
from pathlib import Path

from tests.keyed import held_account
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    entries_by_request,
    mesh,
    prober,
    register,
    trust,
)
from tests.registry.helpers import Harness, running

__all__ = ["mesh"]  # the fixture


async def test_a_probe_is_paid_like_a_user_request(mesh: Harness) -> None:
    """The same parts, the same entries towards the node's operator, from the same payer
    (the pool, as every request without a key), priced from the catalog; and while the
    node is quarantined (for any model) both are held alike."""
    from LLM_Mesh.core.ledger_entry import NETWORK, POOL

    verifier = await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    prompt = "def f():"
    assert (await prober(mesh).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    probe_id = node.calls[-1]["headers"]["x-request-id"]
    ref_id = verifier.calls[-1]["headers"]["x-request-id"]
    user = await mesh.client.post(
        "/v1/completions", json={**json.loads(prober(mesh).body(MODEL, prompt)),
                                 "allow_nodes": ["node-a"]},
    )  # fmt: skip
    assert user.status_code == 200, user.text
    user_id = user.json()["mesh"]["request_id"]
    paid = await entries_by_request(mesh)
    probe, by_user = paid[probe_id], paid[user_id]
    assert probe[0][:2] == ("settle", POOL) and probe[0][3] > 0
    assert probe == by_user  # same kinds, payer, operator account and amounts (fee too)
    assert probe[0][2] not in (NETWORK, POOL)
    assert paid[ref_id][0][0] == "settle"  # the verifier is paid for its reference too
    # a quarantine for another model: the node's earnings are held, probes' and users' alike
    q = mesh.runtime.quality
    assert q is not None
    await q.record("node-a", "other-model", ok=False, reason="canary: token")
    assert (await prober(mesh).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    held_probe = node.calls[-1]["headers"]["x-request-id"]
    user = await mesh.client.post(
        "/v1/completions", json={"model": MODEL, "prompt": prompt, "allow_nodes": ["node-a"]}
    )
    paid = await entries_by_request(mesh)
    held = held_account("node-a")
    held_user = paid[user.json()["mesh"]["request_id"]]
    assert paid[held_probe] == held_user
    assert held_user[0][:3] == ("hold", POOL, held)
    assert [e[0] for e in held_user[1:]] == [e[0] for e in probe[1:]]  # the fee as before


async def test_a_probe_the_pool_cannot_pay_for_is_not_sent(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=LogprobNodes(), pool_daily_budget=1) as h:
        await register(h, "verifier")
        node = await register(h, "node-a")
        await trust(h, "verifier")
        result = await prober(h).probe("node-a", MODEL, prompt="def f():")
        assert result.verdict == "error" and "pool" in result.detail
        assert node.calls == []
        q = h.runtime.quality
        assert q is not None and not q.quarantined("node-a", MODEL)
