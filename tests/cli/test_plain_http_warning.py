"""A user's credential over plain http to another machine (``cli/common.warn_plain_http``):
``llm-mesh ask``, ``balance``, ``ledger verify`` and ``ledger statement`` send the API key,
``earnings`` and ``ledger statement --operator`` the operator token, and ``receipt verify``
trusts the keys it reads. Over plain http to another host anyone on the network path reads
the credential (and spends the user's balance) or answers with keys of their own: each
says so once on stderr (found 2026-12-05: not a word; a node refuses such a registry for
its first key). https and loopback registries are not warned about."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import receipt_commands
from LLM_Mesh.cli.main import app

runner = CliRunner()
FAR = "http://h29.invalid"  # another machine (the name fails fast: nothing is answered)
KEY_WORDS = "your API key goes over plain http to http://h29.invalid"
TOKEN_WORDS = "your operator token goes over plain http to http://h29.invalid"
ADMIN_WORDS = "warning: the admin key goes over plain http to http://h29.invalid"


def _run(tmp_path: Path, argv: list[str], url: str, **env: str) -> str:
    home = {"LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_REGISTRY_URL": url}
    res = runner.invoke(app, argv, env={**home, "COLUMNS": "300", **env})
    return " ".join(res.output.split())


COMMANDS = {
    "ask": (["ask", "hi", "--model", "m"], {"LLM_MESH_API_KEY": "sk-h29"}, KEY_WORDS),
    "balance": (["balance"], {"LLM_MESH_API_KEY": "sk-h29"}, KEY_WORDS),
    "ledger verify": (["ledger", "verify"], {"LLM_MESH_API_KEY": "sk-h29"}, KEY_WORDS),
    "ledger statement": (["ledger", "statement"], {"LLM_MESH_API_KEY": "sk-h29"}, KEY_WORDS),
    "earnings": (["earnings"], {"LLM_MESH_OPERATOR_TOKEN": "lmo_h29"}, TOKEN_WORDS),
    "statement --operator": (
        ["ledger", "statement", "--operator"],
        {"LLM_MESH_OPERATOR_TOKEN": "lmo_h29"},
        TOKEN_WORDS,
    ),
    # found 2026-12-05: the admin key only in the client's log line (Python's last-resort
    # handler printed it bare; any logging set up, as here, hid it)
    "canary run": (["registry", "canary", "run"], {"LLM_MESH_ADMIN_KEY": "h29-admin"}, ADMIN_WORDS),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_credential_sent_over_plain_http_to_another_machine_is_warned_about(
    tmp_path: Path, command: str
) -> None:
    argv, env, words = COMMANDS[command]
    out = _run(tmp_path, argv, FAR, **env)
    assert words in out
    assert out.count("goes over plain http") == 1, out  # once
    for url in ("https://h29.invalid", "http://127.0.0.1:9", "http://localhost:9"):
        assert "plain http" not in _run(tmp_path, argv, url, **env), url


def test_no_credential_no_warning(tmp_path: Path) -> None:
    assert "plain http" not in _run(tmp_path, ["balance"], FAR)
    assert "plain http" not in _run(tmp_path, ["ask", "hi", "--model", "m"], FAR)


def test_receipt_keys_read_over_plain_http_from_another_machine_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever answered there could have given keys of their own, and a receipt they
    made verifies with them: the OK stands only as far as those keys are the registry's."""
    answered: list[str] = []

    def keys_at(urls: object, **kw: object) -> tuple[str, list[str]]:
        return answered[0], []

    monkeypatch.setattr(receipt_commands, "fetch_keys_at", keys_at)
    for url, warned in ((FAR, True), ("https://h29.invalid", False), ("http://[::1]:9", False)):
        answered[:] = [url]
        out = _run(tmp_path, ["receipt", "verify", "-"], url)
        said = f"the registry's keys were read over plain http from {url}"
        assert (said in out) is warned, out
