"""attack44: operator X against ``GET /v1/earnings``'s ``unpaid`` rows (session 43,
migration 0035): another operator's ids, amounts, models and reasons. Each held; the same
walk by hand against ``llm-mesh up`` (sim) with two more operators' nodes: docs/security.md's
"(held, 2026-12-07, attack44)" row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from LLM_Mesh.registry.store_unpaid import Unpaid
from tests.registry.test_earnings_api import NOW, Mesh, mesh

__all__ = ["mesh"]

BOBS = "BOBS-REASON naming req-bob-1"  # what must never reach alice


async def _rows(mesh: Mesh) -> None:
    day = NOW.date().isoformat()
    await mesh.store.record_unpaid([
        Unpaid("r1", "a1", "m", "alices reason", day),
        *(Unpaid(f"req-bob-{i}", "b1", "bobs-model", BOBS, day) for i in range(7)),
    ])  # fmt: skip


def _leaks(text: str) -> bool:
    return any(s in text for s in ("BOBS", "bobs-model", "req-bob", '"b1"'))


@pytest.mark.parametrize(
    "query",
    [
        "", "?days=366", "?node=a1", "?node=a1&node=a1",
        "?node=b1&node=a1",  # a repeated parameter: the last is the one checked and answered
    ],
)  # fmt: skip
async def test_attack_alice_reads_only_her_own_unpaid_rows(mesh: Mesh, query: str) -> None:
    await _rows(mesh)
    r = await mesh.client.get(f"/v1/earnings{query}", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200, r.text
    assert not _leaks(r.text), r.text
    assert r.json()["unpaid_requests"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "?node=b1", "?node=a1&node=b1", "?node=B1", "?node=%20b1", "?node=b1%00",
        "?node=b1%0a", "?node=", "?node=a1,b1", "?node=*", "?node=%25",
    ],
)  # fmt: skip
async def test_attack_alice_naming_bobs_node_is_403_and_tells_nothing_of_it(
    mesh: Mesh, query: str
) -> None:
    await _rows(mesh)
    r = await mesh.client.get(f"/v1/earnings{query}", headers=mesh.auth(mesh.alice))
    assert r.status_code == 403, r.text
    assert "operator bob" not in r.text and "bob's" not in r.text
    assert "BOBS" not in r.text and "bobs-model" not in r.text and "7" not in r.text


@pytest.mark.parametrize(
    "query", ["?operator=bob", "?nodes=b1", "?node[]=b1", "?account=x", "?token=x", "?days=1e3"]
)
async def test_attack_other_parameters_are_400(mesh: Mesh, query: str) -> None:
    await _rows(mesh)
    r = await mesh.client.get(f"/v1/earnings{query}", headers=mesh.auth(mesh.alice))
    assert r.status_code == 400, r.text
    assert not _leaks(r.text)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer lmo_not-a-token"},
        {"Authorization": "bearer x"},
        {"Authorization": "Bearer"},
        {"X-Operator": "bob"},
    ],
)
async def test_attack_a_wrong_or_no_token_reads_no_rows(
    mesh: Mesh, headers: dict[str, str]
) -> None:
    await _rows(mesh)
    r = await mesh.client.get("/v1/earnings?node=b1", headers=headers)
    assert r.status_code == 401 and not _leaks(r.text), r.text


async def test_attack_bobs_revoked_token_reads_no_rows_alices_still_reads_hers(
    mesh: Mesh,
) -> None:
    await _rows(mesh)
    await mesh.store.revoke_operator("bob", NOW + timedelta(seconds=1))
    for query in ("", "?node=b1"):
        r = await mesh.client.get(f"/v1/earnings{query}", headers=mesh.auth(mesh.bob))
        assert r.status_code == 401 and not _leaks(r.text), r.text
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200 and r.json()["unpaid_requests"] == 1 and not _leaks(r.text)


async def test_attack_two_authorization_headers_the_first_decides(mesh: Mesh) -> None:
    await _rows(mesh)
    both = [("Authorization", f"Bearer {mesh.alice}"), ("Authorization", f"Bearer {mesh.bob}")]
    r = await mesh.client.get("/v1/earnings?node=b1", headers=both)
    assert r.status_code == 403 and not _leaks(r.text), r.text
    r = await mesh.client.get("/v1/earnings", headers=both)
    assert r.status_code == 200 and not _leaks(r.text) and r.json()["operator"] == "alice"


async def test_attack_earnings_read_only_the_operators_own_node_keys(mesh: Mesh) -> None:
    """Found 2026-12-07 (attack44): every call read every operator and node key
    (``list_operators``: 20-180 ms at 20,000 keys on SQLite, for any valid token, unbounded);
    now one indexed read of the operator's own (``operator_node_keys``). Failed before: the
    store's ``list_operators`` was called."""
    await _rows(mesh)

    async def refused() -> None:
        raise AssertionError("GET /v1/earnings read every operator's keys")

    mesh.store.list_operators = refused  # type: ignore[method-assign,assignment]
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200 and r.json()["nodes"] == ["a1", "a2"], r.text
    r = await mesh.client.get("/v1/earnings?node=b1", headers=mesh.auth(mesh.alice))
    assert r.status_code == 403, r.text
