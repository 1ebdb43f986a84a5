"""``llm-mesh registry nodes clear`` releases a node's held earnings, ``nodes revoke`` and
``operators revoke`` forfeit them; ``ledger verify`` passes after either. In process, on a
SQLite store in the test's home (the store a registry there would use); the held entries
are written as settlement writes them (``hold``: payer → the node's held account)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer, pseudonym
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.held import store_ledger
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import held_account, operator_account
from tests.registry.test_store import node

runner = CliRunner()
USER = pseudonym("user", "key-1")
ALICE = operator_account("alice")


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    return out.exit_code, out.output


def _db(home: Path) -> str:
    return Settings(home=home).effective_database_url


def _setup(home: Path, held: dict[str, int]) -> None:
    """Operator alice with nodes n1, n2, quarantined (a failed probe) and holding ``held``."""
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0

    async def go() -> None:
        async with SqlStore(_db(home)) as s:
            now = datetime.now(timezone.utc)
            ledger = store_ledger(s)
            await ledger.append_one(Transfer("grant", MINT, USER, 100_000))
            for node_id, amount in held.items():
                await s.claim_node_key(node_id, f"pk-{node_id}", "alice", 1, now)
                await s.record_canary(node_id, "m", ok=False, reason="canary: token", at=now)
                await ledger.append_one(
                    Transfer("hold", USER, held_account(node_id), amount, f"r-{node_id}")
                )

    asyncio.run(go())


def _balances(home: Path) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with SqlStore(_db(home)) as s:
            return await store_ledger(s).balances()

    return asyncio.run(go())


def test_clear_releases_the_held_earnings_to_the_operator(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _setup(home, {"n1": 900})
    code, out = cli(home, "registry", "nodes", "clear", "n1")
    assert code == 0, out
    assert "cleared for: m" in out and f"released 900 µNT of held earnings to {ALICE}" in out
    b = _balances(home)
    assert b[ALICE] == 900 and b[held_account("n1")] == 0
    code, out = cli(home, "registry", "nodes", "clear", "n1")  # nothing left to do
    assert code == 0 and "was not quarantined" in out and "released" not in out
    code, out = cli(home, "ledger", "verify", "--database-url", _db(home))
    assert code == 0 and "OK" in out, out


def test_revoke_forfeits_the_held_earnings_to_the_network(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _setup(home, {"n1": 700, "n2": 300})
    code, out = cli(home, "registry", "nodes", "revoke", "n1")
    assert code == 0 and "700 µNT, forfeited to the network" in out, out
    assert _balances(home)[NETWORK] == 700
    code, out = cli(home, "registry", "operators", "revoke", "alice")
    assert code == 0 and "node n2's held earnings, 300 µNT, forfeited" in out, out
    assert "node n1's" not in out  # forfeited already
    b = _balances(home)
    assert b[NETWORK] == 1000 and b.get(ALICE, 0) == 0
    assert b[held_account("n1")] == b[held_account("n2")] == 0
    code, out = cli(home, "ledger", "verify", "--database-url", _db(home))
    assert code == 0 and "OK" in out, out


def test_clear_releases_the_operators_other_nodes_once_none_is_quarantined(
    tmp_path: Path,
) -> None:
    """alice's n1 and n2 are quarantined, her spare n3 held with them: clearing n1 releases
    nothing yet and says why; clearing n2 releases all three nodes' held earnings."""
    home = tmp_path / "mesh"
    _setup(home, {"n1": 700, "n2": 300})

    async def spare() -> None:
        async with SqlStore(_db(home)) as s:
            await s.claim_node_key("n3", "pk-n3", "alice", 1, datetime.now(timezone.utc))
            await store_ledger(s).append_one(Transfer("hold", USER, held_account("n3"), 50, "r"))

    asyncio.run(spare())
    code, out = cli(home, "registry", "nodes", "clear", "n1")
    assert code == 0 and "cleared for: m" in out and "µNT" not in out, out
    assert "still has quarantined nodes (n2)" in out
    assert _balances(home).get(ALICE, 0) == 0
    code, out = cli(home, "registry", "nodes", "clear", "n2")
    assert code == 0 and f"released 1050 µNT of held earnings to {ALICE}" in out, out
    assert "still has" not in out
    b = _balances(home)
    assert b[ALICE] == 1050 and b[held_account("n1")] == b[held_account("n3")] == 0
    code, out = cli(home, "ledger", "verify", "--database-url", _db(home))
    assert code == 0 and "OK" in out, out


A, B = "a" * 64, "b" * 64


def _verifiers(home: Path) -> dict[str, dict[str, str]]:
    async def go() -> dict[str, dict[str, str]]:
        async with SqlStore(_db(home)) as s:
            return {v.node_id: v.models for v in await s.list_verifiers()}

    return asyncio.run(go())


def _registered(home: Path, *node_ids: str, models: dict[str, str | None] | None = None) -> None:
    """The nodes as their registration stores them, serving ``models`` (model -> sha256)."""
    served = {"gemma-3-270m": A} if models is None else models

    async def go() -> None:
        async with SqlStore(_db(home)) as s:
            for n in node_ids:
                rows = [{"id": m, "engine": "llama-cpp", "sha256": h} for m, h in served.items()]
                await s.upsert_node(node(n, models=rows))

    asyncio.run(go())


def test_nodes_untrust_undoes_nodes_trust(tmp_path: Path) -> None:
    """Found 2026-12-07 (cli42): a node marked a canary verifier (``registry nodes trust``)
    could not be unmarked but by revoking its key; ``registry nodes untrust`` unmarks it,
    said as ``trust`` says it, on the store (running registries learn it at their poll)."""
    home = tmp_path / "mesh"
    _registered(home, "n1", "n2")
    code, out = cli(home, "registry", "nodes", "trust", "n1")
    assert code == 0 and "node n1 is now a canary verifier" in out, out
    assert cli(home, "registry", "nodes", "trust", "n2")[0] == 0
    code, out = cli(home, "registry", "nodes", "untrust", "n1")
    assert code == 0 and "node n1 is no longer a canary verifier" in out, out
    assert list(_verifiers(home)) == ["n2"]
    code, out = cli(home, "registry", "nodes", "untrust", "n1")  # nothing left to do
    assert code == 0 and "node n1 was not a canary verifier" in out, out
    code, out = cli(home, "registry", "nodes", "trust", "n1")  # marked again: as new
    assert code == 0 and "node n1 is now a canary verifier" in out, out
    assert list(_verifiers(home)) == ["n1", "n2"]


def test_nodes_trust_marks_the_models_served_now_or_those_named(tmp_path: Path) -> None:
    """verifier43: the mark names model files (model, sha256 as registered), printed; by
    default every model the node serves with a sha256, else ``--model``; ``untrust
    --model`` unmarks one; ``verifiers`` lists them."""
    home = tmp_path / "mesh"
    _registered(home, "n1", models={"gemma-3-270m": A, "mistral-7b": B, "sim-x": None})
    code, out = cli(home, "registry", "nodes", "trust", "n1", "--model", "mistral-7b")
    assert code == 0 and f"canary verifier for: mistral-7b (sha256 {B[:12]}…)" in out, out
    assert _verifiers(home) == {"n1": {"mistral-7b": B}}
    code, out = cli(home, "registry", "nodes", "trust", "n1")
    assert code == 0 and "is now a canary verifier for: gemma-3-270m (sha256" in out, out
    assert "mistral-7b" in out and "sim-x" not in out
    assert _verifiers(home) == {"n1": {"gemma-3-270m": A, "mistral-7b": B}}
    code, out = cli(home, "registry", "nodes", "verifiers")
    assert code == 0 and f"gemma-3-270m {A}" in out and f"mistral-7b {B}" in out, out
    code, out = cli(home, "registry", "nodes", "untrust", "n1", "--model", "gemma-3-270m")
    assert code == 0 and "node n1 is no longer a canary verifier for gemma-3-270m" in out, out
    assert _verifiers(home) == {"n1": {"mistral-7b": B}}


def test_nodes_trust_refuses_what_it_cannot_mark_in_one_line(tmp_path: Path) -> None:
    """An unregistered node, a model it does not serve with a sha256: one line each, what
    to do, nothing marked."""
    home = tmp_path / "mesh"
    _registered(home, "n1", models={"gemma-3-270m": A, "sim-x": None})
    code, out = cli(home, "registry", "nodes", "trust", "ghost")
    assert code == 1 and "node ghost is not registered on this store" in out, out
    code, out = cli(home, "registry", "nodes", "trust", "n1", "--model", "sim-x")
    assert code == 1 and "does not serve sim-x with a declared sha256" in out, out
    assert "Traceback" not in out and _verifiers(home) == {}


def test_nodes_verifiers_says_a_mark_made_before_0034_covers_no_model(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _registered(home, "n1")
    assert cli(home, "registry", "nodes", "trust", "n1")[0] == 0
    code, out = cli(home, "registry", "nodes", "verifiers")
    assert code == 0 and "none: an older llm-mesh's mark" not in out, out

    assert cli(home, "registry", "nodes", "untrust", "n1")[0] == 0

    async def old_mark() -> None:  # as the code before 0034 marked it (0036 leaves it there)
        async with SqlStore(_db(home)) as s, s.engine.begin() as conn:
            at = datetime.now(timezone.utc)
            await conn.execute(insert(tables.canary_verifiers), {"node_id": "n1", "trusted_at": at})

    asyncio.run(old_mark())
    code, out = cli(home, "registry", "nodes", "verifiers")
    assert code == 0 and "none: an older llm-mesh's mark, mark again" in out, out
    assert "it is the reference for no model until marked again" in out
    assert "llm-mesh registry nodes trust n1" in out


def test_nodes_untrust_needs_the_stores_admin_key(tmp_path: Path) -> None:
    """As ``trust``: without the store's admin key nothing is unmarked."""
    home = tmp_path / "mesh"
    _registered(home, "n1")
    assert cli(home, "registry", "nodes", "trust", "n1")[0] == 0
    out = runner.invoke(
        app,
        ["registry", "nodes", "untrust", "n1", "--home", str(home)],
        env={"COLUMNS": "200", "LLM_MESH_ADMIN_KEY": "lma_" + "x" * 43},
    )
    assert out.exit_code == 1 and "admin key" in out.output, out.output
    assert list(_verifiers(home)) == ["n1"]
