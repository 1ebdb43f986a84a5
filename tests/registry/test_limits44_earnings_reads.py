"""limits44: ``GET /v1/earnings`` with a VALID operator token had no bound (only wrong
tokens were counted): each call a few indexed reads of the ledger's earnings (attack44's
"Next"). Now ``Settings.earnings_reads_per_min`` a minute per token (60 by default,
``LLM_MESH_EARNINGS_READS_PER_MIN``), the dashboard's operator view counted with it, then
429 with ``Retry-After`` before any read (``registry/valid_rates.py``)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from LLM_Mesh.config import DEFAULT_EARNINGS_READS_PER_MIN, Settings
from LLM_Mesh.registry.earnings_api import earnings_reads
from tests.registry.test_earnings_api import Mesh, mesh

__all__ = ["mesh"]

BOUND = DEFAULT_EARNINGS_READS_PER_MIN


@pytest.fixture
def still(mesh: Mesh) -> Mesh:
    """The mesh on a clock that stands still (nothing refills while the test runs)."""
    mesh.runtime.clock = lambda: 5000.0
    return mesh


def test_the_default_and_its_variable() -> None:
    assert Settings().earnings_reads_per_min == BOUND == 60
    assert Settings.from_env({"LLM_MESH_EARNINGS_READS_PER_MIN": "5"}).earnings_reads_per_min == 5
    assert (
        Settings.from_env({"LLM_MESH_EARNINGS_READS_PER_MIN": "0"}).earnings_reads_per_min is None
    )
    with pytest.raises(ValueError, match="LLM_MESH_EARNINGS_READS_PER_MIN"):
        Settings.from_env({"LLM_MESH_EARNINGS_READS_PER_MIN": "-1"})


async def test_a_valid_tokens_reads_are_bounded_and_another_operator_is_unaffected(
    still: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: every read answered, 200."""
    reads: list[int] = []
    from LLM_Mesh.registry import earnings_api

    real = earnings_api.earnings

    async def counted(*args: object, **kw: object) -> object:
        reads.append(1)
        return await real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(earnings_api, "earnings", counted)
    alice = still.auth(still.alice)
    codes = [
        (await still.client.get("/v1/earnings", headers=alice)).status_code for _ in range(BOUND)
    ]
    assert codes == [200] * BOUND and len(reads) == BOUND
    r = await still.client.get("/v1/earnings", headers=alice)
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
    assert set(err) >= {"message", "type", "param", "code"}
    assert int(r.headers["retry-after"]) == 1  # one read's refill: 1 s
    assert len(reads) == BOUND  # nothing read
    # at once too: tries in flight counted one by one
    answers = await asyncio.gather(
        *(still.client.get("/v1/earnings", headers=alice) for _ in range(50))
    )
    assert {a.status_code for a in answers} == {429} and len(reads) == BOUND
    # bob's token: his own count
    bob = still.auth(still.bob)
    assert (await still.client.get("/v1/earnings", headers=bob)).status_code == 200
    # a minute later alice reads again
    still.runtime.clock = lambda: 5060.0
    assert (await still.client.get("/v1/earnings", headers=alice)).status_code == 200


async def test_unknown_tokens_spend_nothing_of_an_operators_count(still: Mesh) -> None:
    for i in range(20):  # under the address's 30 wrong tokens a minute
        r = await still.client.get("/v1/earnings", headers=still.auth(f"lmo_wrong{i}"))
        assert r.status_code == 401
    alice = still.auth(still.alice)
    codes = [
        (await still.client.get("/v1/earnings", headers=alice)).status_code for _ in range(BOUND)
    ]
    assert codes == [200] * BOUND


async def test_the_operator_view_is_counted_with_the_endpoint(still: Mesh) -> None:
    alice = still.auth(still.alice)
    for _ in range(BOUND):
        assert (await still.client.get("/v1/earnings", headers=alice)).status_code == 200
    r = await still.client.get("/dashboard/fragment/operator", headers=alice)
    assert r.status_code == 429, r.text[:300]
    assert "retry-after" in r.headers
    bob = still.auth(still.bob)
    assert (await still.client.get("/dashboard/fragment/operator", headers=bob)).status_code == 200


async def test_zero_is_no_limit(still: Mesh) -> None:
    still.runtime.settings = dataclasses.replace(
        still.runtime.settings, earnings_reads_per_min=None
    )
    assert earnings_reads(still.runtime) is None
    alice = still.auth(still.alice)
    for _ in range(BOUND + 5):
        assert (await still.client.get("/v1/earnings", headers=alice)).status_code == 200
