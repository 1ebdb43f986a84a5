"""Canary probes and the ids clients give their requests (tell (f), docs/security.md).

A node learns the public ledger's key of each request it answered (the key is its own
``req-`` id, or for a request whose client named it ``c-…`` with the first 16 hex digits of
that ``req-`` id: ``ledger statement --served``). Had no probe carried a client's id, every
``c-…`` request would be a user's; probes carry one as often as the model's anonymous
requests do (core/priority_mix.py), drawn as clients draw theirs (core/probe_ids.py).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path

import pytest

from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD
from LLM_Mesh.core.served import ledger_suffix
from LLM_Mesh.registry.store import SqlStore
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

Paid = dict[str, list[tuple[str, str, str, int]]]


def named_share(h: Harness, named: int, plain: int) -> None:
    """Anonymous requests of the model, ``named`` of them with their client's own id; and
    keyed ones with an id (not counted in the anonymous share: keyed probes match them,
    ``test_canary_accounts.py``)."""
    for i in range(named + plain):
        h.runtime.traffic.note(MODEL, False, i < named)
    for _ in range(10):
        h.runtime.traffic.note(MODEL, True, True)


def ledger_key(paid: Paid, node_request_id: str) -> str:
    """The ledger's key of the request the node got as ``node_request_id``, found as its
    node's operator finds it."""
    if node_request_id in paid:
        return node_request_id
    suffix = ledger_suffix(node_request_id)
    keys = [k for k in paid if k.startswith("c-") and k.split("~")[1].startswith(suffix + ".")]
    assert len(keys) == 1, (node_request_id, keys)
    return keys[0]


def form(key: str) -> str:
    """A ledger key with every hex digit an ``x``: its form, not its value."""
    return re.sub(r"[0-9a-f]", "x", key)


@pytest.mark.parametrize("lone", [False, True])
async def test_a_named_probe_is_settled_and_recorded_like_a_named_users_request(
    tmp_path: Path, lone: bool
) -> None:
    """Every anonymous request of the model named itself: so does the probe, and the node's
    view (a fresh ``req-`` id) and the ledger (a ``c-…`` key of the same form, the same
    entries from the pool) are a named user's. Before: the probe's key was always the
    node's own ``req-`` id. ``lone``: a registry on SQLite, whose anonymous named requests'
    keys carry a scoped tag (``.s…``: admit.ScopeAnonymousIds)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'lone.db'}") if lone else None
    async with running(tmp_path, store=store, nodes=LogprobNodes()) as h:
        await _named_probe_and_user(h, lone)


async def _named_probe_and_user(mesh: Harness, lone: bool) -> None:
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    named_share(mesh, 10, 0)
    prompt = "def f():"
    assert (await prober(mesh).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    probe_headers = node.calls[-1]["headers"]
    probe = probe_headers["x-request-id"]
    body = {**json.loads(prober(mesh).body(MODEL, prompt)), "allow_nodes": ["node-a"]}
    r = await mesh.client.post(
        "/v1/completions", json=body, headers={"X-Request-Id": str(uuid.uuid4())}
    )
    assert r.status_code == 200, r.text
    user = node.calls[-1]["headers"]["x-request-id"]
    assert sorted(probe_headers.keys()) == sorted(node.calls[-1]["headers"].keys())
    assert re.fullmatch(r"req-[0-9a-f]{32}", probe) and re.fullmatch(r"req-[0-9a-f]{32}", user)
    paid = await entries_by_request(mesh)
    probe_key, user_key = ledger_key(paid, probe), ledger_key(paid, user)
    assert probe_key.startswith("c-") and user_key.startswith("c-")
    assert form(probe_key) == form(user_key)  # the lone registry's scoped tag too
    assert (".s" in user_key) == lone
    assert paid[probe_key] == paid[user_key]  # the same entries, from the pool
    if not lone:  # the request log keeps the ledger's c- id of either, not the id itself
        await mesh.runtime.writer.flush()
        logged = [rec.request_id for rec in mesh.store.requests]
        assert probe_key.split("~")[0] in logged and user_key.split("~")[0] in logged


@pytest.mark.parametrize(("named", "plain"), [(0, 10), (10, 0), (3, 7)])
async def test_probes_carry_a_client_id_as_often_as_anonymous_requests_do(
    mesh: Harness, named: int, plain: int
) -> None:
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    named_share(mesh, named, plain)
    p = prober(mesh)
    p.rng = random.Random(3)
    for _ in range(40):
        await p.probe("node-a", MODEL)
    paid = await entries_by_request(mesh)
    anonymous = [c for c in node.calls if c["body"].get(PRIORITY_FIELD) != KEYED]
    assert len(anonymous) >= 10
    keys = [ledger_key(paid, c["headers"]["x-request-id"]) for c in anonymous]
    got = sum(k.startswith("c-") for k in keys) / len(keys)
    assert abs(got - named / (named + plain)) <= 0.2, got
    assert len({k.split("~")[0] for k in keys if k.startswith("c-")}) == round(got * len(keys))
