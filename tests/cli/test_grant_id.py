"""``llm-mesh registry grant --id``: a grant re-run after its answer was lost grants once
(found 2026-12-04: a second run granted again; ``registry/ledger_grant.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from LLM_Mesh.core.ledger_entry import MINT
from LLM_Mesh.registry.ledger_grant import GRANT_ID_MAX, grant
from LLM_Mesh.registry.store import SqlStore
from tests.cli.test_ledger_commands import _balances, _db, cli
from tests.keyed import operator_account


def test_a_grant_run_again_with_its_id_grants_once(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    code, out = cli(home, "registry", "grant", "alice", "5000", "--id", "2026-12 bonus")
    assert code == 0 and "granted 5,000" in out and "ledger entry 0" in out, out
    code, out = cli(home, "registry", "grant", "alice", "5000", "--id", "2026-12 bonus")
    assert code == 0, out
    assert "already granted (grant id '2026-12 bonus'): 5,000" in out and "ledger entry 0" in out
    assert asyncio.run(_balances(home)) == {MINT: -5000, operator_account("alice"): 5000}
    # another id, or none: a new grant
    assert "ledger entry 1" in cli(home, "registry", "grant", "alice", "5000", "--id", "2")[1]
    assert "ledger entry 2" in cli(home, "registry", "grant", "alice", "5000")[1]
    assert asyncio.run(_balances(home))[operator_account("alice")] == 15000


def test_a_grant_id_names_one_grant(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    assert cli(home, "registry", "grant", "alice", "5000", "--id", "x")[0] == 0
    code, out = cli(home, "registry", "grant", "alice", "6000", "--id", "x")
    assert code == 1 and "grant id 'x' was used for 5,000" in out, out
    code, out = cli(home, "registry", "grant", "pool", "5000", "--id", "x")
    assert code == 1 and "a grant id names one grant" in out, out
    assert asyncio.run(_balances(home)) == {MINT: -5000, operator_account("alice"): 5000}


@pytest.mark.parametrize("bad", ["", " x", "x ", "a\nb", "y" * (GRANT_ID_MAX + 1)])
def test_odd_grant_ids_are_refused(tmp_path: Path, bad: str) -> None:
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "grant", "pool", "5", "--id", bad)
    assert code == 1 and "a grant id is 1 to 100 printable characters" in out, out


def test_concurrent_grants_of_one_id_write_one_entry(tmp_path: Path) -> None:
    """Two runs at once (two admins, a retry racing the first): appends are serialised at
    the ledger's head, the id checked inside that transaction."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "grant", "pool", "1")[0] == 0  # the store exists

    async def race() -> list[tuple[object, bool]]:
        async with SqlStore(_db(home)) as store:
            return list(
                await asyncio.gather(*(grant(store, "pool", 700, "same") for _ in range(6)))
            )

    results = asyncio.run(race())
    assert sorted(new for _, new in results) == [False] * 5 + [True]
    assert len({entry.seq for entry, _ in results}) == 1  # type: ignore[attr-defined]
    assert asyncio.run(_balances(home))["pool"] == 701


def test_a_grant_to_a_probe_account_is_a_users_grant(tmp_path: Path) -> None:
    """``probe:N`` names the Nth account keyed-class canary probes are paid from
    (registry/canary.py): its grant is an entry like any user's (a ``user:`` account)."""
    from LLM_Mesh.core.ledger_entry import PROBE_ACCOUNTS
    from tests.keyed import KEYED

    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "grant", "probe:2", "5000")
    said = f"granted 5,000 micro-NetworkTokens to probe:2, account {KEYED.probe(2)} "
    assert code == 0 and said in out, out
    for bad in ("probe:0", f"probe:{PROBE_ACCOUNTS + 1}", "probe:x", "probe:"):
        code, out = cli(home, "registry", "grant", bad, "5000")
        assert code == 1 and f"a probe account is probe:1 to probe:{PROBE_ACCOUNTS}" in out, out
    assert asyncio.run(_balances(home)) == {MINT: -5000, KEYED.probe(2): 5000}


def test_a_grant_names_what_the_admin_named_and_its_account(tmp_path: Path) -> None:
    """Found 2026-12-05 (newuser31): ``registry grant ci 5000000`` and ``registry grant
    probe:1 1000`` said only ``granted ... to user:a781d2804bc179dead9133b6``: which key's,
    or which probe account's, the admin had to take on trust. The name given is said with
    its account; a ledger account given as such is said once."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "keys", "create", "--name", "ci")[0] == 0
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    code, out = cli(home, "registry", "grant", "ci", "5000")
    assert code == 0 and "granted 5,000 micro-NetworkTokens to ci, account user:" in out, out
    code, out = cli(home, "registry", "grant", "probe:1", "7")
    assert code == 0 and "to probe:1, account user:" in out, out
    code, out = cli(home, "registry", "grant", "alice", "9")
    assert code == 0 and f"to alice, account {operator_account('alice')} " in out, out
    code, out = cli(home, "registry", "grant", "pool", "11")
    assert code == 0 and "to pool (ledger entry" in out, out


@pytest.mark.parametrize("amount", ["-5", "0"])
def test_a_grant_of_no_positive_amount_says_amounts_are_positive(
    tmp_path: Path, amount: str
) -> None:
    """Found 2026-12-07 (money41b): ``registry grant NAME -5`` answered "No such option: -5"."""
    code, out = cli(tmp_path / "mesh", "registry", "grant", "pool", amount)
    assert code != 0 and "No such option" not in out, out
    assert f"AMOUNT {amount}: a grant's amount must be positive" in out, out


@pytest.mark.parametrize(
    ("args", "unknown"),
    [
        (("pool", "5", "--xyz"), "--xyz"),
        (("pool", "5", "--xyz=1"), "--xyz"),
        (("pool", "--xyz", "5"), "--xyz"),
        (("pool", "5", "-q"), "-q"),
    ],
    ids=["after", "with_value", "between", "short"],
)
def test_a_mistyped_option_is_said_as_no_such_option(
    tmp_path: Path, args: tuple[str, ...], unknown: str
) -> None:
    """Found 2026-12-07 (cli42): ``registry grant pool 5 --xyz`` said "Got unexpected extra
    argument (--xyz)", where every other command says click's "No such option: --xyz": grant
    ignored unknown options (money41b's way to take ``-5`` as AMOUNT), so one became an
    argument. Only a negative number is an argument now; nothing is granted."""
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "grant", *args)
    said = " ".join(out.split())
    assert code == 2 and f"No such option: {unknown}" in said, said
    assert "extra argument" not in said, said
    assert not home.exists()  # refused before the command ran: no store made


def test_a_negative_amount_beside_the_id_option_is_still_the_amount(tmp_path: Path) -> None:
    """``-5`` after ``--id``'s value, or before it: AMOUNT, refused as such (money41b)."""
    for args in (("pool", "-5", "--id", "x"), ("pool", "--id", "-5", "-7")):
        code, out = cli(tmp_path / "mesh", "registry", "grant", *args)
        assert code == 1 and "No such option" not in out, out
        want = "AMOUNT -7" if "-7" in args else "AMOUNT -5"
        assert f"{want}: a grant's amount must be positive" in out, out
