"""``--api-key`` of ``ledger verify`` and ``ledger statement`` (found 2026-12-06, ux34:
"No such option", while ``ask`` and ``balance`` take it). ``LLM_MESH_API_KEY`` is never
sent to a registry named by ``--registry``; a key given by flag is the user's choice for
the registry named, ``--registry`` too, as ``ask --api-key`` and ``balance --api-key``
send it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.cli.test_ledger_api_key import _a_key_with_credit, _verify_against_a_registry
from tests.cli.test_ledger_statement import Paid, _serve
from tests.inprocess_mesh import InProcessMesh

runner = CliRunner()


def test_verify_sends_a_key_given_by_flag_to_a_registry_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, account = _a_key_with_credit(tmp_path)
    code, out = _verify_against_a_registry(
        tmp_path, monkeypatch, None, "--registry", "http://other.test", "--api-key", key
    )
    said = " ".join(out.split())
    assert code == 0, out
    assert f"--api-key's account {account}: its balance, 300 µNT at ledger size 1" in said
    assert key not in out


def test_verify_without_the_flag_says_how_to_send_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _account = _a_key_with_credit(tmp_path)
    code, out = _verify_against_a_registry(
        tmp_path, monkeypatch, key, "--registry", "http://other.test"
    )
    assert code == 0, out
    assert "--api-key KEY sends it" in " ".join(out.split())


@pytest.fixture
def paid(inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paid:
    p = Paid(inprocess_mesh, tmp_path)
    _serve(monkeypatch, p)
    return p


def _statement(p: Paid, *args: str, env_key: bool = False) -> tuple[int, str]:
    env = {"LLM_MESH_HOME": str(p.home / "user"), "COLUMNS": "300",
           "LLM_MESH_API_KEY": p.key if env_key else ""}  # fmt: skip
    res = runner.invoke(app, ["ledger", "statement", "--receipts", str(p.folder), *args], env=env)
    return res.exit_code, " ".join(res.output.split())


def test_statement_with_a_key_given_by_flag_to_a_registry_named(paid: Paid) -> None:
    code, out = _statement(paid, "--registry", paid.mesh.registry_url, "--api-key", paid.key)
    assert code == 0, out
    assert paid.account in out and paid.key not in out


def test_statement_with_the_environment_key_and_a_registry_says_the_flag(paid: Paid) -> None:
    code, out = _statement(paid, "--registry", paid.mesh.registry_url, env_key=True)
    assert code == 1
    assert "not sent to" in out and "pass --api-key KEY to send it there" in out


def test_statement_refuses_a_key_and_another_account(paid: Paid) -> None:
    code, out = _statement(paid, "--api-key", paid.key, "--account", paid.account)
    assert code == 1
    assert "give one account: --api-key, --account or --operator" in out


def test_statement_refuses_an_operator_token_as_the_key(paid: Paid) -> None:
    code, out = _statement(paid, "--api-key", "lmo_" + "a" * 40)
    assert code == 1
    assert "--api-key: that is an operator token" in out
