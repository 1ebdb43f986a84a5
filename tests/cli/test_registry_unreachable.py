"""A registry that does not answer, said by every command that reads one in the same words
(``cli/common.no_registry_answered``): its URL and what to check, never httpx's bare "All
connection attempts failed" (found 2026-12-06: ``ledger statement`` said only that)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.core.test_receipt_verify import STD_OK, make_receipt

runner = CliRunner()
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port: refused
DOWN2 = "http://127.0.0.1:7"
CHECK = "is a registry running at"  # the hint for a --registry given
PASS = "pass --registry URL or set LLM_MESH_REGISTRY_URL"  # for none given


def said(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = runner.invoke(
        app,
        [*args, "--home", str(home)],
        env={"COLUMNS": "300", "LLM_MESH_API_KEY": "", **(env or {})},
    )
    return out.exit_code, " ".join(out.output.split())


@pytest.fixture
def receipt(tmp_path: Path) -> Path:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(make_receipt(amounts=[100])))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("ledger", "statement", "--account", "user:abc"),
        ("ledger", "statement", "--account", "user:abc", "--key", STD_OK),
        ("ledger", "statement", "--api-key", "sk-mesh-abc"),
        ("ledger", "verify"),
        ("ledger", "witness"),
    ],
    ids=["statement", "statement-key", "statement-api-key", "verify", "witness"],
)
def test_a_named_registry_that_does_not_answer_is_said_with_what_to_check(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Failed before for the three ``ledger statement`` cases ("error: All connection
    attempts failed", nothing else); ``verify`` and ``witness`` pin the shared words."""
    code, out = said(tmp_path, *args, "--registry", DOWN)
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} (ConnectError" in out, out
    assert f"{CHECK} {DOWN}?" in out, out


def test_every_replica_is_named_when_none_answers(tmp_path: Path) -> None:
    """Failed before: ``ledger statement --registry A,B`` said neither."""
    code, out = said(tmp_path, "ledger", "statement", "--account", "user:abc",
                     "--registry", f"{DOWN},{DOWN2}")  # fmt: skip
    assert code == 1 and f"no LLM Mesh registry answered at {DOWN}, {DOWN2}" in out, out


def test_a_configured_registry_that_does_not_answer_says_how_to_name_one(tmp_path: Path) -> None:
    """Failed before: from ``LLM_MESH_REGISTRY_URL``, no ``--registry``."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "ledger", "statement", "--account", "user:abc", env=env)
    assert code == 1 and f"no LLM Mesh registry answered at {DOWN}" in out and PASS in out, out


def test_receipt_verify_does_not_ask_for_the_registry_it_was_given(
    tmp_path: Path, receipt: Path
) -> None:
    """Failed before: "pass --registry URL, or the keys themselves" to a user who had
    passed --registry (the words of 2026-12-05's fix for `ledger verify`)."""
    code, out = said(tmp_path, "receipt", "verify", str(receipt), "--registry", DOWN)
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} for its keys (ConnectError" in out, out
    assert f"{CHECK} {DOWN}?" in out and "pass --registry" not in out, out
    assert "the keys themselves (--key KEY, --keys FILE) to verify offline" in out, out


def test_receipt_verify_from_the_configured_registry_says_both_ways_on(
    tmp_path: Path, receipt: Path
) -> None:
    """Pins the words with no --registry: name one, or verify offline."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "receipt", "verify", str(receipt), env=env)
    assert code == 1 and PASS in out and "to verify offline" in out, out


def test_receipt_verify_ledger_says_what_to_check_for_its_entries(
    tmp_path: Path, receipt: Path
) -> None:
    """Failed before: the keys given (offline), ``--ledger`` read the configured registry's
    entries and said only "no registry answered at URL for the request's ledger entries
    (ConnectError: ...)", nothing to check."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "receipt", "verify", str(receipt), "--key", STD_OK, "--ledger",
                     env=env)  # fmt: skip
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} for the request's ledger entries" in out
    assert PASS in out, out


HASH = "ab" * 32  # a receipt hash (64 lowercase hex)
ADMIN = {"LLM_MESH_ADMIN_KEY": "admin-key-for-the-test"}


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("receipt", "verify", "RECEIPT"), {}),
        (("receipt", "verify", "RECEIPT", "--key", STD_OK, "--ledger"), {}),
        (("receipt", "fetch", HASH, "--api-key", "lmk_" + "k" * 44), {}),
        (("registry", "canary", "run"), ADMIN),
        (("registry", "usage-audit"), ADMIN),
    ],
    ids=["receipt-verify", "receipt-verify-ledger", "receipt-fetch", "canary-run", "usage-audit"],
)
@pytest.mark.parametrize("given", ["--registry", "LLM_MESH_REGISTRY_URL"])
def test_these_commands_say_where_the_url_came_from(
    tmp_path: Path, receipt: Path, args: tuple[str, ...], env: dict[str, str], given: str
) -> None:
    """Failed before (cli40): "no LLM Mesh registry answered at URL ..." and no word of where
    the URL came from, which ``status``, ``models``, ``ledger ...`` say (``with_source``)."""
    args = tuple(str(receipt) if a == "RECEIPT" else a for a in args)
    if given == "--registry":
        code, out = said(tmp_path, *args, "--registry", DOWN, env=env)
    else:
        code, out = said(tmp_path, *args, env={**env, "LLM_MESH_REGISTRY_URL": DOWN})
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN}" in out, out
    assert out.endswith(f"; the URL came from {given}"), out
