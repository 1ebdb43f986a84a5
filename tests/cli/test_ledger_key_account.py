"""``ledger verify`` with ``LLM_MESH_API_KEY`` remembers which account the registry named
for the key (``core/key_account.py``): a registry that later shows the key another
account's balance, whose books add up, is named (found 2026-12-05: "matches the ledger",
exit 0, while the key's own account could be debited unseen)."""

from __future__ import annotations

import contextlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands, ledger_statement
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.key_account import account_change, derived_account, key_tag
from LLM_Mesh.core.ledger_audit import Report

MINE, OTHER = "user:" + "a" * 24, "user:" + "b" * 24


def _registry_showing(
    monkeypatch: pytest.MonkeyPatch, shown: list[str], key: str = "lmk-mine"
) -> None:
    """A registry whose books check out and whose ``GET /v1/balance`` names ``shown[0]``,
    then ``shown[1]``, ... for the key (the audit itself is the tested one elsewhere)."""

    @contextlib.asynccontextmanager
    async def source(url: str, db: object, origin: str, ca: object, key: str | None) -> Any:
        src = HttpSource.__new__(HttpSource)
        src.balance_read = (shown.pop(0), 100, 3)
        yield src

    async def audit(src: object, **kw: object) -> Report:
        return Report()

    async def first(urls: object, verify: object) -> str:
        return "http://registry.test"

    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setattr(ledger_commands, "audit", audit)
    monkeypatch.setattr(ledger_commands, "first_answering", first)
    monkeypatch.setenv("LLM_MESH_API_KEY", key)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://registry.test")


def _verify(home: Path) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["ledger", "verify"], env={"LLM_MESH_HOME": str(home)})
    return res.exit_code, " ".join(res.output.split())


def test_another_account_shown_for_the_key_later_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _registry_showing(monkeypatch, [MINE, MINE, OTHER])
    assert _verify(tmp_path)[0] == 0
    assert _verify(tmp_path)[0] == 0
    code, out = _verify(tmp_path)
    assert code == 1, out
    assert f"the registry named account {OTHER} for LLM_MESH_API_KEY, but {MINE} before" in out
    seen = (tmp_path / "ledger_seen.json").read_text()
    assert "lmk-mine" not in seen and json.loads(seen)  # the key itself is never written
    assert MINE in seen and OTHER not in seen


def test_the_rule() -> None:
    assert account_change(None, MINE) is None
    assert account_change(MINE, MINE) is None
    assert account_change(MINE, OTHER) is not None
    assert key_tag("a") != key_tag("b") and len(key_tag("a")) == 32


def test_a_new_key_shown_another_account_at_its_first_use_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key made since 2026-12-05 names its own account: no first use is trusted (before,
    a registry naming another account, whose books add up, at the first run passed)."""
    key = "lmk_" + secrets.token_urlsafe(33)
    own = derived_account(key)
    assert own is not None
    _registry_showing(monkeypatch, [OTHER, own], key=key)
    code, out = _verify(tmp_path / "a")
    assert code == 1, out
    assert f"the registry named account {OTHER} for LLM_MESH_API_KEY, but the key's own" in out
    assert _verify(tmp_path / "b")[0] == 0


def test_an_older_key_shown_the_pool_at_its_first_use_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-07 (review41d): the pool named for an older key at its first use was
    remembered as its account, and ``ledger statement`` then judged none of its debits."""
    _registry_showing(monkeypatch, ["pool"])
    code, out = _verify(tmp_path)
    assert code == 1, out
    assert "the registry named account pool for LLM_MESH_API_KEY, but a key pays from" in out
    seen = tmp_path / "ledger_seen.json"
    assert not seen.exists() or "pool" not in seen.read_text()


def test_an_older_keys_statement_of_the_pool_is_named_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement with the key (no --account): before, the pool named for it listed the
    pool's debits "not judged" and passed, exit 0 (found 2026-12-07, review41d)."""
    _registry_showing(monkeypatch, ["pool", "pool"])

    async def keys(self: HttpSource) -> tuple[list[str], object]:
        return [], None

    async def first(urls: object, verify: object) -> str:
        return "http://registry.test"

    monkeypatch.setattr(HttpSource, "keys", keys)
    monkeypatch.setattr(ledger_statement, "first_answering", first)
    res = CliRunner().invoke(
        app, ["ledger", "statement"], env={"LLM_MESH_HOME": str(tmp_path), "COLUMNS": "300"}
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 1, out
    assert "the registry named account pool for LLM_MESH_API_KEY, but a key pays from" in out
