"""Settings that size what settlement writes are bounded, so no setting makes a settle batch
or a balance that the ledger cannot take (found 2026-12-04, review of the money path:
``LLM_MESH_MAX_ATTEMPTS=17`` made a batch of paid requests exceed one ledger append, retried
for ever; a ``LLM_MESH_POOL_DAILY_BUDGET`` past 2^63 failed every top-up)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from LLM_Mesh.config import MAX_ATTEMPTS_TOP, POOL_DAILY_BUDGET_TOP, Settings
from LLM_Mesh.registry.ledger import MAX_BATCH, SqlLedger
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_ledger import transfers
from LLM_Mesh.registry.settle_upkeep import MAX_SETTLE
from LLM_Mesh.registry.settlement import Settlement


def test_max_attempts_is_one_to_sixteen() -> None:
    assert Settings.from_env({"LLM_MESH_MAX_ATTEMPTS": "16"}).max_attempts == 16
    for raw in ("17", "1000"):
        with pytest.raises(
            ValueError, match=r"LLM_MESH_MAX_ATTEMPTS must be a whole number \(1 to 16\)"
        ):
            Settings.from_env({"LLM_MESH_MAX_ATTEMPTS": raw})


def test_the_pool_budget_has_a_top_far_inside_64_bits() -> None:
    top = str(POOL_DAILY_BUDGET_TOP)
    assert Settings.from_env({"LLM_MESH_POOL_DAILY_BUDGET": top}).pool_daily_budget == 10**13
    for raw in (str(10**13 + 1), str(2**63)):
        with pytest.raises(
            ValueError, match=r"LLM_MESH_POOL_DAILY_BUDGET .*\(0 to 10000000000000\)"
        ):
            Settings.from_env({"LLM_MESH_POOL_DAILY_BUDGET": raw})
    # a century of top-ups at the top is still far from 2^63
    assert POOL_DAILY_BUDGET_TOP * 366 * 100 < 2**63


def test_settings_built_in_code_are_held_to_the_top_too() -> None:
    rt = Runtime.__new__(Runtime)
    rt.settings = Settings(max_attempts=1000)
    assert rt.max_attempts == MAX_ATTEMPTS_TOP


def _part(i: int, operator: str) -> PaidPart:
    return PaidPart(node_id=f"node-{i}", operator=operator, amount=1000, fee=50)


def test_a_settle_batch_at_the_top_fits_one_ledger_append() -> None:
    """Every part at most three entries (share, forfeit of a held share, fee); a batch of
    MAX_SETTLE answers with MAX_ATTEMPTS_TOP parts each fits MAX_BATCH."""
    held = "held:node-0"
    parts = [_part(i, held if i % 2 else f"operator:op-{i}") for i in range(MAX_ATTEMPTS_TOP)]
    answer = Answer(key="k", payer="user:x", model="m", estimate=10**6, parts=tuple(parts))
    revoked = {p.node_id for p in parts}
    per_answer = len(transfers(answer, revoked))
    assert per_answer == 3 * MAX_ATTEMPTS_TOP // 2 + 2 * MAX_ATTEMPTS_TOP // 2  # held: 3, else 2
    assert MAX_SETTLE * 3 * MAX_ATTEMPTS_TOP <= MAX_BATCH


@pytest.mark.parametrize("fee", [10_001, -1, 10**6])
def test_a_fee_past_100_percent_built_in_code_stops_the_settlement(fee: int) -> None:
    """Found 2026-12-06 (``money33``): ``LLM_MESH_NETWORK_FEE_BPS`` is held to 0 to 10000,
    but settings built in code were not: a registry with ``network_fee_bps=10_001`` (or -1)
    started and ran every paid request on a node, then answered 500 when it priced the fee
    (``pricing.network_fee`` refused it): the node's work unpaid, the client's retries run
    again, its estimate held. Now the settlement refuses the setting as the registry starts."""
    with pytest.raises(ValueError, match=r"network_fee_bps must be a whole number \(0 to 10000\)"):
        Settlement(SqlLedger(_no_engine), fee_bps=fee, pool_daily_budget=0, wall_clock=time.time)


async def _no_engine() -> Any:  # pragma: no cover - the settlement refuses before any use
    raise AssertionError("not reached")
