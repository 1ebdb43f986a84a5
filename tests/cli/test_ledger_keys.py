"""``ledger verify`` and ``ledger statement`` remember the ledger keys they trusted
(``cli/ledger_keys.py``, ``core/ledger_keys.py``; found 2026-12-05: without ``--key`` or
``--witness`` each run took whatever keys ``GET /v1/ledger/keys`` listed, so a new key
signing a forged extension of the log passed).

A real registry runs in process, in the CLI's own event loop (``ledger_commands._source``
starts it and hands the verifier an ``HttpSource`` over ASGI): with its home's
``registry.key`` (rotated as docs/deploy.md "Rotating registry.key" says: the old key
moved to ``registry.key.previous``, a new one made at start), or with a stranger's key
(a compromised registry, or a man in the middle) that no rotation links."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app as cli_app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.witness import cosign, witness_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger_signer import public_key_text
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings

URL = "http://registry.test"
WITNESS = Ed25519PrivateKey.generate()


class Registry:
    """The registry the verifier reaches: its home, the key it signs with (None: its
    home's ``registry.key``) and the grants it writes and signs before it answers."""

    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home, self.key = home, None
        self.key: Ed25519PrivateKey | None
        self.grants: tuple[int, ...] = (10, 20)
        self.witness: Ed25519PrivateKey | None = None  # cosigns each new checkpoint

        @contextlib.asynccontextmanager
        async def source(
            url: str, db: object, origin: str, ca: object = None, api_key: str | None = None
        ) -> AsyncIterator[HttpSource]:
            witnesses = (witness_key(WITNESS, "w").vkey,)
            settings = make_settings(self.home, pool_daily_budget=0, ledger_witnesses=witnesses)
            store = SqlStore(Settings(home=self.home).effective_database_url)
            app = create_registry_app(settings, store=store, gateway_key=self.key)
            async with app.router.lifespan_context(app):
                rt = app.state.runtime
                cp = None
                if self.grants:
                    await rt.ledger.append([Transfer("grant", MINT, POOL, n) for n in self.grants])
                    cp = await rt.checkpointer.checkpoint()
                    assert cp is not None
                    self.grants = ()
                t = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=t, base_url=URL) as client:
                    if cp is not None and self.witness is not None:  # its round, as it runs
                        line = cosign(self.witness, "w", cp.note, int(time.time()))
                        body = {"tree_size": cp.tree_size, "cosignature": line}
                        r = await client.post("/v1/ledger/cosignatures", json=body)
                        assert r.status_code == 200, r.text
                    yield HttpSource(client, api_key)

        async def first(urls: object, verify: object) -> str:
            return URL

        self.source = source
        monkeypatch.setattr(ledger_commands, "_source", source)
        monkeypatch.setattr(ledger_commands, "first_answering", first)

    def serve(self) -> None:
        """Start, write and sign the grants, stop: no verifier asks."""

        async def run() -> None:
            async with self.source(URL, None, ""):
                pass

        asyncio.run(run())

    def rotate(self, *grants: int) -> None:
        """The operator's rotation: the key moved aside, a new one made at the next start,
        which writes and signs ``grants``."""
        os.replace(self.home / "registry.key", self.home / "registry.key.previous")
        self.grants = grants

    def stranger_signs(self, *grants: int) -> Ed25519PrivateKey:
        """From the next start on, a stranger's key (no rotation links it) signs, first
        ``grants`` (an extension of the log): that key."""
        stranger = Ed25519PrivateKey.generate()
        self.key, self.grants = stranger, grants
        return stranger

    def current(self) -> str:
        from LLM_Mesh.registry.gateway_key import load_or_create_registry_key

        return public_key_text(load_or_create_registry_key(self.home / "registry.key"))


def _ok(out: str) -> bool:
    """The verdict ``OK`` as a word of its own (a base64 key may hold the letters)."""
    return re.search(r"(?:^|\s)OK(?::|\s|$)", out) is not None


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    return Registry(tmp_path / "registry", monkeypatch)


@pytest.fixture
def me(tmp_path: Path) -> Path:
    """The verifier's home."""
    return tmp_path / "verifier"


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = CliRunner().invoke(
        cli_app, [*args, "--registry", URL, "--home", str(home)], env={"COLUMNS": "400"}
    )
    return out.exit_code, " ".join(out.output.split())


def test_a_new_key_no_rotation_links_signing_a_forged_extension_fails(
    tmp_path: Path, reg: Registry, me: Path
) -> None:
    code, out = cli(me, "ledger", "verify")
    assert code == 0 and _ok(out), out
    first = reg.current()
    assert f"trusting key {first} on first use" in out
    seen = me / "ledger_seen.json"
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600
    assert first in json.dumps(json.loads(seen.read_text()))
    # the registry now signs with a stranger's key an extension of the log
    stranger = reg.stranger_signs(1_000_000)
    code, out = cli(me, "ledger", "verify")
    assert code == 1, out  # before: 0, OK
    assert f"error: the registry lists ledger key {public_key_text(stranger)}, which no " in out
    # the verdict word, not "OK" inside a base64 key (found in CI 2026-12-05: a key began "OK")
    assert "the registry serves no signed rotation statement" in out and not _ok(out)
    assert out.count("error:") == 1 and "--accept-new-key" in out
    assert public_key_text(stranger) not in seen.read_text()  # nothing remembered of it
    # ledger statement refuses it too (the same memory)
    code, out = cli(me, "ledger", "statement", "--account", "user:" + "a" * 24)
    assert code == 1 and "error: the registry lists ledger key" in out, out
    # a verifier meeting this registry for the first time trusts what it lists (first use)
    code, out = cli(tmp_path / "newcomer", "ledger", "verify")
    assert code == 0 and f"trusting key {public_key_text(stranger)} on first use" in out, out


def test_accept_new_key_says_what_it_trusts_and_keeps_it(reg: Registry, me: Path) -> None:
    assert cli(me, "ledger", "verify")[0] == 0
    stranger = reg.stranger_signs(5)
    code, out = cli(me, "ledger", "verify", "--accept-new-key")
    assert code == 0, out
    assert f"--accept-new-key: trusting key {public_key_text(stranger)}, which no earlier" in out
    code, out = cli(me, "ledger", "verify")
    assert code == 0 and "trusting" not in out, out  # remembered now


def test_a_key_given_explicitly_works_as_before(reg: Registry, me: Path) -> None:
    """``--key``: the checkpoints must be that key's, whatever the registry lists."""
    assert cli(me, "ledger", "verify")[0] == 0
    first = reg.current()
    reg.stranger_signs()  # listed now, signs nothing yet
    assert cli(me, "ledger", "verify")[0] == 1
    code, out = cli(me, "ledger", "verify", "--key", first)
    assert code == 0 and _ok(out) and "trusting" not in out, out


def test_the_registrys_own_rotations_are_followed(reg: Registry, me: Path) -> None:
    assert cli(me, "ledger", "verify")[0] == 0
    first = reg.current()
    reg.rotate(30)
    code, out = cli(me, "ledger", "verify")
    second = reg.current()
    assert code == 0 and _ok(out), out
    assert (
        f"trusting key {second}: the registry's signed rotation chain leads to it from the "
        f"remembered key {first} (1 link)"
    ) in out
    # two more rotations while this verifier is away: the chain is followed from a
    # remembered key
    for amount in (40, 50):
        reg.rotate(amount)
        reg.serve()
    code, out = cli(me, "ledger", "verify")
    assert code == 0 and _ok(out) and f"to it from the remembered key {first} (3 links)" in out
    code, out = cli(me, "ledger", "verify")
    assert code == 0 and "trusting" not in out, out


def test_receipt_verify_holds_the_registrys_keys_to_those_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``receipt verify`` with the keys read from the registry: a receipt countersigned by
    a stranger's key the registry now lists beside its own is refused (before: valid), one
    by a key the registry's signed rotation leads to is valid."""
    from LLM_Mesh.cli import receipt_commands
    from LLM_Mesh.core.key_rotation import rotation_statement
    from LLM_Mesh.core.receipt import ReceiptSigner
    from tests.core.receipt_verify_fixtures import REGISTRY_KEY, make_receipt

    listing: list[dict[str, object]] = []

    def keys_at(urls: object, **kw: object) -> tuple[str, list[str]]:
        answer = listing[0]
        chain = kw.get("chain")
        if isinstance(chain, list):
            chain.append(answer.get("key_rotations"))
        return URL, [str(k) for k in answer["data"]]  # type: ignore[attr-defined]

    monkeypatch.setattr(receipt_commands, "fetch_keys_at", keys_at)
    monkeypatch.setenv("LLM_MESH_HOME", str(tmp_path / "verifier"))

    def receipt_verify(key: Ed25519PrivateKey, *args: str) -> tuple[int, str]:
        receipt = make_receipt(signer=ReceiptSigner(key, lambda: 1_700_000_000.0))
        out = CliRunner().invoke(
            cli_app, ["receipt", "verify", "-", "--registry", URL, *args],
            input=json.dumps(receipt), env={"COLUMNS": "400"},
        )  # fmt: skip
        return out.exit_code, " ".join(out.output.split())

    mine, stranger, next_key = (
        REGISTRY_KEY,
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
    )
    listing[:] = [{"data": [public_key_text(mine)]}]
    code, out = receipt_verify(mine)
    assert code == 0 and f"trusting key {public_key_text(mine)} on first use" in out, out
    listing[:] = [{"data": [public_key_text(mine), public_key_text(stranger)]}]
    code, out = receipt_verify(stranger)
    assert code == 1, out  # before: 0, the stranger's countersignature valid
    assert f"error: the registry lists ledger key {public_key_text(stranger)}" in out
    code, out = receipt_verify(stranger, "--accept-new-key")
    assert code == 0 and "--accept-new-key: trusting key" in out, out
    # the registry's own rotation, mine -> next_key
    chain = [rotation_statement(mine, next_key)]
    listing[:] = [{"data": [public_key_text(next_key)], "key_rotations": chain}]
    code, out = receipt_verify(next_key)
    assert code == 0 and "signed rotation chain leads to it from the remembered key" in out, out
    # --key: as before, nothing judged
    code, out = receipt_verify(mine, "--key", public_key_text(mine))
    assert code == 0 and "trusting" not in out, out


def test_a_new_key_on_the_witnesses_word_needs_the_newest_checkpoint_cosigned(
    reg: Registry, me: Path
) -> None:
    """``--witness``: a key no earlier run trusted passes only when the newest checkpoint
    itself carries the witnesses' cosignatures, not while it rides (``--witness-max-age``)
    on an older checkpoint's: a man in the middle's new key and its forged extension would
    pass that long."""
    reg.witness = WITNESS
    w = witness_key(WITNESS, "w").vkey
    assert cli(me, "ledger", "verify", "--witness", w)[0] == 0
    stranger = reg.stranger_signs(7)
    reg.witness = None  # not cosigned (yet)
    code, out = cli(me, "ledger", "verify", "--witness", w)
    assert code == 1, out  # riding on the first checkpoint's fresh cosignature: it passed
    assert "if the newest checkpoint itself carries the --witness cosignatures" in out
    assert (
        "unwitnessed" in out
        and public_key_text(stranger) not in (me / "ledger_seen.json").read_text()
    )
    reg.witness, reg.grants = WITNESS, (8,)  # the witnesses saw it and cosigned
    code, out = cli(me, "ledger", "verify", "--witness", w)
    assert code == 0 and _ok(out), out
    code, out = cli(me, "ledger", "verify")
    assert code == 0 and "trusting" not in out, out  # kept
