"""The network fee of a small request: wash traffic is never free.

Found 2026-12-06 (``money34``): the fee was ⌊amount × ``fee_bps`` / 10000⌋ of each part,
0 below 10000 / ``fee_bps`` µNT (20 µNT at the default 500 bps), so an operator sending its
own node small requests with its own API key paid itself the whole amount: no fee, no
cost, and its served counts and earnings statistics (anything rewarded by served work)
grew for free. The fee is rounded up now (``core/pricing.network_fee``): a part with an
amount pays at least 1 µNT. The real app with fake nodes (``tests/registry/helpers.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from LLM_Mesh.core.ledger_entry import NETWORK
from LLM_Mesh.core.receipt_verify import parse_receipt
from tests.keyed import operator_account
from tests.registry.helpers import running
from tests.registry.test_charge import CHAT, bearer, new_user, settled, settlement
from tests.registry.test_receipts import MODEL

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ROUNDS = 5


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_operators_own_small_requests_to_its_node_pay_the_fee(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path) as h:
        await h.register("a", models=[MODEL])
        s = settlement(h)
        s.note_operator("a", "mallory")
        key, account = await new_user(h, 10**6)  # the operator's own key
        costs = []
        for _ in range(ROUNDS):
            r = await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=bearer(key))
            assert r.status_code == 200, r.text
            if stream:
                events = [
                    json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")
                ]
                mesh = events[-1]["mesh"]
            else:
                mesh = r.json()["mesh"]
            receipt = parse_receipt(mesh["receipt"])
            assert receipt.money is not None and receipt.version == 4  # fees rounded up
            (part,) = receipt.parts
            assert 0 < (part.amount or 0) < 20  # the attack's size: below 10000 / 500 µNT
            assert part.fee == 1  # before the fix: 0
            costs.append(part.amount or 0)
        await settled(s)
        paid = sum(costs)
        assert (await s.balance(account))[0] == 10**6 - paid
        assert (await s.balance(operator_account("mallory")))[0] == paid - ROUNDS
        assert (await s.balance(NETWORK))[0] >= ROUNDS  # the wash cost the operator a fee each
