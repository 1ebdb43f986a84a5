"""``llm-mesh registry grant`` and ``llm-mesh ledger verify --database-url``, in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store import SqlStore

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    return out.exit_code, out.output


def _db(home: Path) -> str:
    return Settings(home=home).effective_database_url


async def _balances(home: Path) -> dict[str, int]:
    async with SqlStore(_db(home)) as store:

        async def engine() -> object:
            return store.engine

        return await SqlLedger(engine).balances()  # type: ignore[arg-type]


def test_grant_writes_ledger_entries(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    code, out = cli(home, "registry", "grant", "alice", "5000000")
    assert code == 0, out
    assert "granted 5000000" in out and "ledger entry 0" in out
    code, out = cli(home, "registry", "grant", "pool", "250")
    assert code == 0 and "ledger entry 1" in out
    assert asyncio.run(_balances(home)) == {
        MINT: -5_000_250,
        pseudonym("operator", "alice"): 5_000_000,
        "pool": 250,
    }
    code, out = cli(home, "registry", "grant", "nobody", "5")
    assert code == 1 and "no API key or operator 'nobody'" in out
    code, out = cli(home, "registry", "grant", "pool", "0")
    assert code == 1 and "micro-NetworkTokens" in out


def test_grant_to_an_api_key_by_name_or_id_pays_its_user(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "keys", "create", "--name", "carol")
    assert code == 0, out

    async def key_id() -> str:
        async with SqlStore(_db(home)) as store:
            (key,) = await store.list_api_keys()
            return key.key_id

    kid = asyncio.run(key_id())
    assert cli(home, "registry", "grant", "carol", "700")[0] == 0
    assert cli(home, "registry", "grant", kid, "300")[0] == 0
    assert asyncio.run(_balances(home))[pseudonym("user", kid)] == 1000
    assert cli(home, "registry", "operators", "add", "carol")[0] == 0  # now ambiguous
    code, out = cli(home, "registry", "grant", "carol", "1")
    assert code == 1 and "both an API key and an operator" in out


def test_verify_passes_then_names_a_changed_amount(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    for n in (10, 20, 30):
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0
    db = _db(home)
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 0, out
    assert "3 entries" in out and "OK" in out and "60 micro-NetworkTokens issued" in out

    async def tamper() -> None:
        async with SqlStore(db) as store, store.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
            await conn.execute(text("UPDATE ledger_entries SET amount = 99 WHERE seq = 1"))

    asyncio.run(tamper())
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1
    assert "changed: entry 1 was changed" in out and "MISMATCH" in out


def test_verify_says_why_when_no_registry_answers(tmp_path: Path) -> None:
    """Found 2026-12-02: it said only "error: All connection attempts failed"."""
    code, out = cli(tmp_path, "ledger", "verify", "--registry", "http://127.0.0.1:9")
    said = " ".join(out.split())
    assert code == 1 and "no LLM Mesh registry answered at http://127.0.0.1:9" in said, out


def test_verify_names_a_key_that_is_not_a_key(tmp_path: Path) -> None:
    """Found 2026-12-02: ``--key garbage`` said "error: Incorrect padding"."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "grant", "pool", "10")[0] == 0
    for bad in ("garbage", "AAAA", "not base64!"):
        code, out = cli(home, "ledger", "verify", "--database-url", _db(home), "--key", bad)
        said = " ".join(out.split())
        assert code == 1 and "--key" in said and "Ed25519 public key" in said, out
        assert "padding" not in said


def test_a_ledger_rewritten_whole_fails_against_what_an_earlier_verify_saw(
    tmp_path: Path,
) -> None:
    """The registry (or whoever holds its database and key) replaces the whole history
    with another one, every hash, chain and checkpoint consistent: alone it verifies; to
    a verifier that checked the real one before, it does not."""
    home, forger = tmp_path / "mesh", tmp_path / "forger"
    for n in (10, 20, 30, 40):
        assert cli(forger, "registry", "grant", "pool", str(n if n != 20 else 2))[0] == 0
    for n in (10, 20, 30):
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0
    db = _db(home)
    assert cli(home, "ledger", "verify", "--database-url", db)[0] == 0
    assert (home / "ledger_seen.json").exists()
    assert cli(home, "registry", "grant", "pool", "40")[0] == 0  # an honest append
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 0, out
    (home / "registry.db").write_bytes((forger / "registry.db").read_bytes())
    code, out = cli(forger, "ledger", "verify", "--database-url", db)
    assert code == 0, out  # self-consistent: nothing to see without a memory
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1, out  # before: 0, OK
    assert "root: checkpoint at size 4" in out and "MISMATCH" in out
    # what to do when the ledger was started over on purpose
    said = " ".join(out.split())  # the console wraps long lines
    assert "ledger_seen.json)" in said and "remove that file and verify again" in said
