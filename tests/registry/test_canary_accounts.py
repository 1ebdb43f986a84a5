"""Canary probes of the keyed class and who pays them (tell (h), docs/security.md).

A node reads the public ledger's entries of each request it answered (found by its
``req-`` id or the ``c-…`` key). A keyed user's request is paid from its key's ``user:``
account; had a keyed-class probe been paid by the ``pool``, every keyed request paid by
the pool would be a probe (found 2026-12-05). Keyed-class probes are paid from probe
accounts (``Pseudonyms.probe``: ``user:`` + 24 hex digits, keyed by the ledger's secret),
funded as users' accounts are, by a grant from the mint; the pool pays only when none
covers the probe.
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, POOL, PROBE_ACCOUNTS
from LLM_Mesh.core.priority import KEYED as KEYED_CLASS
from LLM_Mesh.core.priority import PRIORITY_FIELD
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import KEYED
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    entries_by_request,
    mesh,
    prober,
    register,
    trust,
)
from tests.registry.helpers import Harness, fund, running
from tests.registry.test_canary_ids import form, ledger_key

__all__ = ["mesh"]  # the fixture

USER_ACCOUNT = re.compile(r"user:[0-9a-f]{24}")
PROBES = [KEYED.probe(i) for i in range(1, PROBE_ACCOUNTS + 1)]


def keyed_mix(h: Harness, keyed: int, anonymous: int, named: bool = False) -> None:
    """The model's requests here: ``keyed`` of them keyed, all named (or none)."""
    for i in range(keyed + anonymous):
        h.runtime.traffic.note(MODEL, i < keyed, named)


async def fund_probes(h: Harness, amount: int = 10**9) -> None:
    for account in PROBES:
        await fund(h, account, amount)


async def keyed_user(h: Harness) -> tuple[dict[str, str], str]:
    made = await create_api_key(h.store)
    assert made is not None
    account = user_account(made[1].key_id)
    await fund(h, account, 10**9)
    return {"Authorization": f"Bearer {made[0]}"}, account


def payer(entries: list[tuple[str, str, str, int]]) -> str:
    payers = {e[1] for e in entries}
    assert len(payers) == 1, entries
    return payers.pop()


def entry_form(entries: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
    """The entries with the payer's hex digits as ``x``: kinds, payer's form, payees,
    amounts."""
    return [(k, form(f), t, a) for k, f, t, a in entries]


async def _keyed_probe_and_user(h: Harness, named: bool) -> None:
    await register(h, "verifier")
    node = await register(h, "node-a")
    await trust(h, "verifier")
    keyed_mix(h, 10, 0, named)
    await fund_probes(h)
    prompt = "def f():"
    assert (await prober(h).probe("node-a", MODEL, prompt=prompt)).verdict == "pass"
    probe_call = node.calls[-1]
    headers, account = await keyed_user(h)
    if named:
        headers["X-Request-Id"] = str(uuid.uuid4())
    body = {**json.loads(prober(h).body(MODEL, prompt)), "allow_nodes": ["node-a"]}
    r = await h.client.post("/v1/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    user_call = node.calls[-1]
    assert probe_call["body"].get(PRIORITY_FIELD) == KEYED_CLASS
    assert user_call["body"].get(PRIORITY_FIELD) == KEYED_CLASS
    paid = await entries_by_request(h)
    probe_key = ledger_key(paid, probe_call["headers"]["x-request-id"])
    user_key = ledger_key(paid, user_call["headers"]["x-request-id"])
    assert form(probe_key) == form(user_key)  # c-… (unscoped, as a key's) or req-…
    assert probe_key.startswith("c-") == named
    probe, by_user = paid[probe_key], paid[user_key]
    assert payer(by_user) == account
    assert USER_ACCOUNT.fullmatch(payer(probe)), probe  # before: pool
    assert payer(probe) in PROBES
    assert entry_form(probe) == entry_form(by_user)  # kinds, payees, amounts, fees
    # funded alike: one grant from the mint, no request id, to a user: account
    ledger = h.runtime.ledger
    assert ledger is not None
    entries, _ = await ledger.entries(-1, 10_000)
    grants = {e.to_account: e for e in entries if e.to_account in (payer(probe), account)}
    assert {(e.kind, e.from_account, e.request_id) for e in grants.values()} == {
        ("grant", MINT, None)
    }


async def test_a_keyed_probe_is_paid_like_a_keyed_users_request(mesh: Harness) -> None:
    """The keyed probe's entries and the keyed user's: the same kinds, payees and amounts
    from a ``user:`` account each, funded by a grant each (found 2026-12-05: the probe's
    were from ``pool``, which no keyed user's request ever is)."""
    await _keyed_probe_and_user(mesh, named=False)


async def test_a_named_keyed_probe_has_a_keyed_users_ledger_key(tmp_path: Path) -> None:
    """On a lone registry an anonymous request's own id gets a scoped tag, a keyed one's
    not: a keyed probe that named itself is keyed as a keyed user's (no ``.s`` tag)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'lone.db'}")
    async with running(tmp_path, store=store, nodes=LogprobNodes()) as h:
        await _keyed_probe_and_user(h, named=True)


@pytest.mark.parametrize("keyed", [0, 1, 10])
async def test_probes_carry_a_client_id_as_often_as_their_class_does(
    mesh: Harness, keyed: int
) -> None:
    """Keyed requests all named themselves, anonymous ones never: a keyed probe names
    itself, an anonymous one does not."""
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    for i in range(10):
        mesh.runtime.traffic.note(MODEL, i < keyed, i < keyed)
    await fund_probes(mesh)
    p = prober(mesh)
    p.rng = random.Random(5)
    for _ in range(12):
        await p.probe("node-a", MODEL)
    paid = await entries_by_request(mesh)
    for call in node.calls:
        key = ledger_key(paid, call["headers"]["x-request-id"])
        is_keyed = call["body"].get(PRIORITY_FIELD) == KEYED_CLASS
        assert key.startswith("c-") == is_keyed, (key, call["body"])
        assert (payer(paid[key]) in PROBES) == is_keyed


async def test_the_books_add_up_and_the_admin_sees_what_probes_cost(mesh: Harness) -> None:
    """Half the requests keyed: keyed probes paid from the probe accounts, the others by the
    pool; what the probe accounts were granted less their balances is what their entries
    paid, and the ledger's audit passes."""
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    keyed_mix(mesh, 1, 1)
    await fund_probes(mesh, 10**7)
    p = prober(mesh)
    p.rng = random.Random(7)
    for _ in range(16):
        assert (await p.probe("node-a", MODEL)).verdict == "pass"
    paid = await entries_by_request(mesh)
    payers = []
    for call in node.calls:
        entries = paid[ledger_key(paid, call["headers"]["x-request-id"])]
        keyed = call["body"].get(PRIORITY_FIELD) == KEYED_CLASS
        payers.append(payer(entries))
        assert (payers[-1] in PROBES) == keyed and (payers[-1] == POOL) == (not keyed)
    assert POOL in payers and set(payers) - {POOL}
    rt = mesh.runtime
    assert rt.settlement is not None and rt.ledger is not None
    spent = sum(
        amount for entries in paid.values() for _, src, _, amount in entries if src in PROBES
    )
    balances = await rt.ledger.balances()
    left = sum(balances.get(account, 0) for account in PROBES)
    assert spent > 0 and PROBE_ACCOUNTS * 10**7 - left == spent
    report = await audit(StoreSource(rt.ledger, mesh.settings.ledger_origin))
    assert report.ok, report.findings


async def test_without_funded_probe_accounts_the_pool_pays_and_says_so(
    mesh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """No probe account granted (the default): a keyed probe is still sent, paid by the
    pool as before (the tell stays), and the registry's log says so once."""
    await register(mesh, "verifier")
    node = await register(mesh, "node-a")
    await trust(mesh, "verifier")
    keyed_mix(mesh, 10, 0)
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.registry.canary"):
        for _ in range(2):
            assert (await prober(mesh).probe("node-a", MODEL, prompt="def f():")).verdict == "pass"
    said = [r for r in caplog.records if "no probe account covers" in r.getMessage()]
    assert len(said) == 1, said
    paid = await entries_by_request(mesh)
    call: dict[str, Any] = node.calls[-1]
    assert call["body"].get(PRIORITY_FIELD) == KEYED_CLASS
    assert payer(paid[ledger_key(paid, call["headers"]["x-request-id"])]) == POOL
