"""``llm-mesh ledger verify`` of an empty ledger, again (a registry run with
``LLM_MESH_SETTLEMENT=0`` writes no entry, ever).

Found 2026-12-07 (money41): the first verify passed and remembered the size it saw, 0; every
later ``ledger verify`` and ``ledger statement`` of that registry then asked for an inclusion
proof of entry -1 and stopped, exit 1: ``error: GET /v1/ledger/proof/inclusion answered 400:
query.index: Input should be greater than or equal to 0``. A size-0 tree holds no entry to
prove included."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_ledger_commands import _db, cli


def test_an_empty_ledger_verifies_twice(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    db = _db(home)
    for run in range(2):
        code, out = cli(home, "ledger", "verify", "--database-url", db)
        assert code == 0, (run, out)
        assert "0 entries" in out and "OK" in out, (run, out)
    assert (home / "ledger_seen.json").exists()


def test_a_ledger_emptied_after_a_verify_fails_against_what_it_saw(tmp_path: Path) -> None:
    """The other side of the fix (review41c): a registry that empties a ledger an earlier
    verify saw holding entries is not taken for one that never wrote any (the remembered
    size stays a checkpoint the emptied log must still reach)."""
    home, empty = tmp_path / "mesh", tmp_path / "empty"
    for n in (10, 20, 30):
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0
    db = _db(home)
    assert cli(home, "ledger", "verify", "--database-url", db)[0] == 0
    assert cli(empty, "ledger", "verify", "--database-url", _db(empty))[0] == 0
    (home / "registry.db").write_bytes((empty / "registry.db").read_bytes())
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1 and "MISMATCH" in out, out
    assert "truncated" in out and "size 3" in out, out
