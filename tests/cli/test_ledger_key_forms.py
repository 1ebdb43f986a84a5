"""The Ed25519 public keys the ledger commands take (``ledger verify --key``, ``ledger
witness --log-key``) in base64url, as ``/mesh/...`` endpoints, the logs and the docs print
them, as well as in the standard base64 of ``GET /v1/ledger/keys`` (found 2026-12-04: the
base64url form was refused); a key that is neither is one clear line, not a traceback."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli.ledger_witness import parse_log_keys
from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.b64url import ed25519_key, ed25519_key_problem, encode
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.store import SqlStore
from tests.core.key_forms import REFUSED

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str, BaseException | None]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    error = out.exception if not isinstance(out.exception, SystemExit) else None
    return out.exit_code, " ".join(out.output.split()), error


def _url(std: str) -> str:
    return encode(base64.b64decode(std))


async def _signed(home: Path) -> str:
    """A checkpoint of the ledger signed by a ledger key; that key, as GET /v1/ledger/keys
    gives it (standard base64)."""
    key = Ed25519PrivateKey.generate()
    async with SqlStore(Settings(home=home).effective_database_url) as store:

        async def engine() -> object:
            return store.engine

        ledger = SqlLedger(engine)  # type: ignore[arg-type]
        assert await Checkpointer(ledger, key, Settings().ledger_origin).checkpoint()
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def test_the_two_forms_are_one_key() -> None:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    for text in (
        base64.b64encode(raw).decode(),
        encode(raw),
        encode(raw) + "=",
        f" {encode(raw)}\n",
    ):
        assert ed25519_key(text) == raw, text
    std = base64.b64encode(b"\xfb\xff" + bytes(30)).decode()  # '+' and '/' in it
    mixed = std.replace("+", "-", 1)
    assert "/" in mixed and ed25519_key(mixed) is None  # one alphabet or the other
    for bad in ("", "junk", encode(raw)[:-1], encode(raw + b"x"), "A" * 43 + "==", "é" * 43):
        assert ed25519_key(bad) is None, bad


def test_verify_pins_a_key_given_as_base64url(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "grant", "pool", "10")[0] == 0
    db = Settings(home=home).effective_database_url
    key = asyncio.run(_signed(home))
    for form in (key, _url(key)):
        code, out, error = cli(home, "ledger", "verify", "--database-url", db, "--key", form)
        assert code == 0 and error is None, out
    other = encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    code, out, error = cli(home, "ledger", "verify", "--database-url", db, "--key", other)
    assert code == 1 and error is None, out  # the pin holds: another key is not the ledger's
    assert "signed by another key than the pinned one" in out, out
    code, out, error = cli(home, "ledger", "verify", "--database-url", db, "--key", key[:-3])
    assert code == 1 and error is None, out
    assert "is not an Ed25519 public key (32 bytes in base64 or base64url)" in out, out


def test_witness_takes_a_log_key_as_base64url(tmp_path: Path) -> None:
    origin = Settings().ledger_origin
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert parse_log_keys([encode(raw)], origin) == {origin: [raw]}
    assert parse_log_keys([base64.b64encode(raw).decode()], origin) == {origin: [raw]}
    with pytest.raises(typer.Exit):
        parse_log_keys([encode(raw)[:-2]], origin)
    # the command goes on to the registry with it (none answers here)
    args = ("ledger", "witness", "--registry", "http://127.0.0.1:9", "--log-key", encode(raw))
    code, out, error = cli(tmp_path / "w", *args)
    assert code == 1 and error is None and "no LLM Mesh registry answered" in out, out
    code, out, error = cli(tmp_path / "w", "ledger", "witness", "--log-key", encode(raw)[:-2])
    assert code == 1 and error is None and "32 bytes in base64 or base64url" in out, out


@pytest.mark.parametrize(("text", "why"), [f[1:] for f in REFUSED], ids=[f[0] for f in REFUSED])
def test_a_refused_key_is_told_in_the_words_receipt_verify_uses(
    tmp_path: Path, text: str, why: str
) -> None:
    """The shared table (``tests/core/key_forms.py``): ``ledger verify --key`` and
    ``ledger witness --log-key`` say ``core/b64url.ed25519_key_problem``'s line."""
    problem = " ".join(str(ed25519_key_problem(text)).split())
    assert why in problem
    db = f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"
    code, out, error = cli(tmp_path / "m", "ledger", "verify", "--database-url", db, "--key", text)
    assert code == 1 and error is None and f"--key {problem}" in out, out
    if "+" not in text:  # else it is read as a log's key text
        code, out, error = cli(tmp_path / "w", "ledger", "witness", "--log-key", text)
        assert code == 1 and error is None and f"--log-key {problem}" in out, out


def test_an_api_key_given_as_the_registry_key_is_not_printed(tmp_path: Path) -> None:
    """Found 2026-12-06 (newuser34, a user whose `ledger statement --api-key` typer refused,
    offering ``--key``): the key went back to the terminal whole. Each --key option says
    what it is given instead (``core/b64url.ed25519_key_problem``)."""
    secret = "lmk_jz9NwOphBLFz1IvZFyIhUkJmNIBgvxwsKRbZk_u1yuyd"
    db = f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"
    said = "--key (not shown: a secret) is an API key"
    for args in (("verify", "--database-url", db), ("statement",)):
        code, out, error = cli(tmp_path / "m", "ledger", *args, "--key", secret)
        assert code == 1 and error is None, out
        assert secret not in out and said in " ".join(out.split()), out
