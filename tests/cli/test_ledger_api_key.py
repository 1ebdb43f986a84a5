"""``llm-mesh ledger verify`` with ``LLM_MESH_API_KEY``: a key no header can carry (a line
break, a control character, a letter that is not ASCII) is refused before any request and
never quoted, as MeshClient refuses it (``client.py``'s ``bearer_header``; found
2026-12-03: ledger verify built its own ``Authorization`` header without the check)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.errors import InvalidApiKey
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings

runner = CliRunner()
BAD_KEYS = ["sk-mine\r\nX-Injected: yes", "sk-mine\nX-Injected: yes", "sk-clé-Injected", "sk mine"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_verify_refuses_a_bad_key_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    calls: list[str] = []

    async def first_answering(urls: Any, verify: Any) -> str:
        calls.append("first_answering")
        return str(urls[0])

    @contextlib.asynccontextmanager
    async def source(*args: Any) -> Any:
        calls.append("source")
        raise RuntimeError("stop here")
        yield  # pragma: no cover

    monkeypatch.setattr(ledger_commands, "first_answering", first_answering)
    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setenv("LLM_MESH_API_KEY", key)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://127.0.0.1:9")
    out = runner.invoke(app, ["ledger", "verify", "--home", str(tmp_path)], env={"COLUMNS": "200"})
    assert out.exit_code == 1
    assert "the API key" in out.output and "not sent" in out.output
    assert "Injected" not in out.output
    assert calls == []


@pytest.mark.parametrize("key", [*BAD_KEYS, "sk-\x00nul"])
async def test_the_balance_check_refuses_a_bad_key_before_sending(key: str) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        with pytest.raises(InvalidApiKey) as exc:
            await HttpSource(c, key).stored()
    assert "Injected" not in str(exc.value) and "nul" not in str(exc.value)
    assert sent == []


async def test_the_balance_check_sends_a_good_key() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        assert await HttpSource(c, "sk-mine").stored() is None
    assert [r.headers["authorization"] for r in sent] == ["Bearer sk-mine"]


def _verify_against_a_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, *args: str
) -> tuple[int, str]:
    """``ledger verify`` (no --registry) against a registry app over this home's store,
    in process: the source the command builds, but over ASGI."""
    home = tmp_path / "mesh"

    @contextlib.asynccontextmanager
    async def source(url: str, db: object, origin: str, ca: object, mine: str | None) -> Any:
        settings = make_settings(home, admin_key=None, pool_daily_budget=0, reward_rate=0)
        registry = create_registry_app(
            settings, store=SqlStore(Settings(home=home).effective_database_url)
        )
        async with registry.router.lifespan_context(registry):  # type: ignore[attr-defined]
            t = httpx.ASGITransport(app=registry)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=t, base_url=url) as c:
                yield HttpSource(c, mine)

    async def first_answering(urls: Any, verify: Any) -> str:
        return str(urls[0])

    monkeypatch.setattr(ledger_commands, "first_answering", first_answering)
    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://registry.test")
    if key is None:
        monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    else:
        monkeypatch.setenv("LLM_MESH_API_KEY", key)
    out = runner.invoke(
        app, ["ledger", "verify", *args, "--home", str(home)], env={"COLUMNS": "200"}
    )
    return out.exit_code, out.output


def _a_key_with_credit(tmp_path: Path) -> tuple[str, str]:
    """A store with a user's key and a grant to its account: (the key, its account)."""
    db = Settings(home=tmp_path / "mesh").effective_database_url

    async def make() -> tuple[str, str]:
        async with SqlStore(db) as store:
            made = await create_api_key(store)
            assert made is not None
            return made[0], user_account(made[1].key_id)

    key, account = asyncio.run(make())
    grant = ["registry", "grant", account, "300", "--home", str(tmp_path / "mesh")]
    assert runner.invoke(app, grant).exit_code == 0
    return key, account


def test_verify_names_the_account_whose_balance_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``LLM_MESH_API_KEY`` the registry's balance of that key's account is checked
    against the entries: the output names the account (its pseudonym, as the registry
    shows it), never the key (found 2026-12-04: checked, but nowhere said)."""
    key, account = _a_key_with_credit(tmp_path)
    code, out = _verify_against_a_registry(tmp_path, monkeypatch, key)
    said = " ".join(out.split())
    assert code == 0, out
    assert f"LLM_MESH_API_KEY's account {account}" in said
    assert "its balance, 300 µNT at ledger size 1, matches the ledger" in said
    assert key not in out


def test_verify_names_the_account_whose_balance_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, account = _a_key_with_credit(tmp_path)

    async def credit() -> None:
        db = Settings(home=tmp_path / "mesh").effective_database_url
        async with SqlStore(db) as store, store.engine.begin() as conn:
            await conn.execute(
                text("UPDATE balances SET balance = balance + 500 WHERE account = :a"),
                {"a": account},
            )

    asyncio.run(credit())
    code, out = _verify_against_a_registry(tmp_path, monkeypatch, key)
    said = " ".join(out.split())
    assert code == 1, out
    assert f"LLM_MESH_API_KEY's account {account}: its balance, 800 µNT at ledger size 1" in said
    assert "checked against the ledger (findings above)" in said and "MISMATCH" in said
    assert key not in out


def test_verify_says_the_key_was_not_sent_to_a_registry_named_by_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key goes only to the registry configured with it: with --registry the pool's
    balance is checked, and the output says the key's account's was not."""
    key, account = _a_key_with_credit(tmp_path)
    code, out = _verify_against_a_registry(
        tmp_path, monkeypatch, key, "--registry", "http://other.test"
    )
    said = " ".join(out.split())
    assert code == 0, out
    assert "LLM_MESH_API_KEY not sent to http://other.test" in said
    assert "its account's balance not checked" in said
    assert account not in out and key not in out


def test_verify_says_nothing_of_an_account_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _key, account = _a_key_with_credit(tmp_path)
    code, out = _verify_against_a_registry(tmp_path, monkeypatch, None)
    assert code == 0, out
    assert "LLM_MESH_API_KEY" not in out and account not in out and "OK" in out


async def test_a_refused_key_is_said_in_words_with_the_way_to_its_books() -> None:
    """Found 2026-12-05 (a new user's try, a key the admin revoked): ``ledger statement``
    (and ``ledger verify``) printed ``GET /v1/balance answered 401:`` and the registry's
    whole JSON body, and no way on. Now the error's own words, and how to list the key's
    account without the key (``--account``, its kept receipts)."""
    from LLM_Mesh.core.key_account import derived_account

    key = "lmk_" + "A" * 44  # the derived form: its account is computed from the key
    error = {"message": "the API key key_x was revoked", "type": "authentication_error",
             "param": None, "code": "invalid_api_key"}  # fmt: skip
    transport = httpx.MockTransport(lambda _: httpx.Response(401, json={"error": error}))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        with pytest.raises(InvalidApiKey) as exc:
            await HttpSource(c, key).stored()
    said = str(exc.value)
    assert "answered 401: the API key key_x was revoked (invalid_api_key):" in said, said
    assert '"error"' not in said and "authentication_error" not in said, said
    assert f"ledger statement --account {derived_account(key)} --receipts " in said, said
