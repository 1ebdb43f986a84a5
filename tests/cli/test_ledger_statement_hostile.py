"""``llm-mesh ledger statement`` against a registry whose log lies in what the statement
prints: rows of the user's account altered on their way (``tests/inprocess_mesh.py``: the
real registry, settlement and a SIMULATED sim node; the rows changed at the CLI's source,
as a hostile registry or a man in the middle of a plain-http one would send them)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from LLM_Mesh.cli import ledger_commands, ledger_statement
from LLM_Mesh.cli.ledger_http import HttpSource, Row
from LLM_Mesh.cli.main import app
from tests.cli.test_ledger_statement import Paid, runner
from tests.inprocess_mesh import InProcessMesh


def _serve(monkeypatch: pytest.MonkeyPatch, p: Paid, change: Callable[[Row], Row]) -> None:
    """The CLI's registry is the in-process one, each row of its log through ``change``."""

    @contextlib.asynccontextmanager
    async def source(url: str, db: object, origin: str, ca: object, key: str | None) -> Any:
        async with p.mesh.client() as c:
            src = HttpSource(c, key)
            honest = src.entries

            async def entries(page: int) -> AsyncIterator[list[Row]]:
                async for batch in honest(page):
                    yield [change(r) for r in batch]

            src.entries = entries  # type: ignore[method-assign]
            yield src

    async def first(urls: object, verify: object) -> str:
        return p.mesh.registry_url

    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setattr(ledger_statement, "first_answering", first)


def _invoke(p: Paid) -> Result:
    env = {"LLM_MESH_HOME": str(p.home / "user"), "LLM_MESH_API_KEY": p.key,
           "LLM_MESH_REGISTRY_URL": p.mesh.registry_url, "COLUMNS": "300"}  # fmt: skip
    return runner.invoke(app, ["ledger", "statement", "--receipts", str(p.folder)], env=env)


@pytest.fixture
def paid(inprocess_mesh: InProcessMesh, tmp_path: Path) -> Paid:
    return Paid(inprocess_mesh, tmp_path)


@pytest.mark.parametrize("time_us", [2**63 - 1, -(2**63)])
def test_an_entry_dated_out_of_any_calendar_is_a_finding_not_a_traceback(
    paid: Paid, monkeypatch: pytest.MonkeyPatch, time_us: int
) -> None:
    """A row of the user's account dated 292,000 years away (an int64 the log's leaf
    encoding holds): the statement prints every row of the account with its date."""

    def change(r: Row) -> Row:
        return (r[0], time_us, *r[2:]) if paid.account in (r[3], r[4]) else r

    _serve(monkeypatch, paid, change)
    res = _invoke(paid)
    out = " ".join(res.output.split())
    assert not isinstance(res.exception, ValueError | OverflowError | OSError), out
    assert res.exit_code == 1, out
    assert "MISMATCH" in out and "debit" not in out.split("statement of")[0], out
    # the account's 5 rows, each listed (a grant, two settles and their fees: 1 µNT each
    # since the fee is rounded up, money34)
    assert out.count("(out of range)") == 5, out


@pytest.mark.parametrize("value", [[1], {"a": 1}])
def test_an_entry_naming_a_receipt_by_a_list_or_object_is_a_finding_not_a_traceback(
    paid: Paid, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    """Found 2026-12-05: an entry whose ``receipt_hash`` (or ``request_id``) is a JSON list
    or object ended the statement in ``TypeError: unhashable type`` while the audit read
    it (the receipts held are looked up by it), before any verdict."""

    def change(r: Row) -> Row:
        return (*r[:6], value, value, *r[8:]) if r[0] == 1 else r

    _serve(monkeypatch, paid, change)
    res = _invoke(paid)
    out = " ".join(res.output.split())
    assert not isinstance(res.exception, TypeError), out
    assert res.exit_code == 1 and "MISMATCH" in out, out
