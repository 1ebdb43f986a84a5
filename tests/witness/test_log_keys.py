"""A witness in rounds without ``--log-key`` keeps the registry's log keys it trusted
(``witness/log_keys.py``, the decision ``core/ledger_keys.judge_keys``'s; found
2026-12-05: the keys ``GET /v1/ledger/keys`` listed were taken each round, so a
compromised registry, or a man in the middle, listing a key of its own had the witness
cosign a checkpoint signed by it).

A real registry runs in process (its app over ASGI, a fresh one per round as a restart
would be; the database and its home's ``registry.key`` persist): with its own key,
rotated as docs/deploy.md "Rotating registry.key" says (the old key moved to
``registry.key.previous``, a new one made and linked at start), or a stranger's key that
no rotation links."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.cli.ledger_witness import Round, load_state, run_witness, witness_round
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.witness import witness_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.gateway_key import load_or_create_registry_key
from LLM_Mesh.registry.ledger_signer import public_key_text
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.witness.log_keys import KEYS_FILE, LogKeyMemory, LogKeyRefused, load_log_keys
from tests.registry.helpers import make_settings

ORIGIN = Settings().ledger_origin
WITNESS = Ed25519PrivateKey.generate()


class Registry:
    """The registry the witness asks: its home and the key it signs with (None: its
    home's ``registry.key``)."""

    def __init__(self, home: Path) -> None:
        self.home, self.key = home, None
        self.key: Ed25519PrivateKey | None

    async def round(self, witness: Path, grant: int, memory: LogKeyMemory | None = None) -> Round:
        """A grant written and signed, then one witness round (its home ``witness``)."""
        accepted = (witness_key(WITNESS, "w").vkey,)
        settings = make_settings(self.home, pool_daily_budget=0, ledger_witnesses=accepted)
        store = SqlStore(Settings(home=self.home).effective_database_url)
        app = create_registry_app(settings, store=store, gateway_key=self.key)
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            await rt.ledger.append([Transfer("grant", MINT, POOL, grant)])
            assert await rt.checkpointer.checkpoint() is not None
            t = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=t, base_url="http://reg") as client:
                state = witness / "witness_state.json"
                kw = {} if memory is None else {"memory": memory}  # (the default: the home's)
                return await witness_round(client, WITNESS, "w", state, ORIGIN, **kw)

    def rotate(self) -> None:
        os.replace(self.home / "registry.key", self.home / "registry.key.previous")

    def current(self) -> str:
        return public_key_text(load_or_create_registry_key(self.home / "registry.key"))


def _size(witness: Path) -> int:
    return load_state(witness / "witness_state.json")[ORIGIN].size


async def test_a_key_no_rotation_links_is_refused_and_nothing_is_cosigned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, me = Registry(tmp_path / "registry"), tmp_path / "witness"
    rnd = await reg.round(me, 10)
    assert rnd.decision is not None and rnd.decision.ok and rnd.submitted.startswith("handed in")
    first = reg.current()
    said = " ".join(capsys.readouterr().err.split())
    assert f"warning: trusting log key {first} on first use" in said  # on stderr, loudly
    assert load_log_keys(me / KEYS_FILE, ORIGIN) == [first]
    assert stat.S_IMODE((me / KEYS_FILE).stat().st_mode) == 0o600
    size = _size(me)
    # the registry (or a man in the middle) now signs an extension with a key of its own
    stranger = Ed25519PrivateKey.generate()
    reg.key = stranger
    with pytest.raises(LogKeyRefused) as refused:  # before: cosigned and handed in
        await reg.round(me, 1_000_000)
    words = " ".join(str(refused.value).split())
    assert f"the registry lists log key {public_key_text(stranger)} for {ORIGIN!r}" in words
    assert "the registry serves no signed rotation statement" in words
    assert "nothing cosigned" in words and "--accept-new-key" in words
    assert _size(me) == size  # the state unchanged
    assert public_key_text(stranger) not in (me / KEYS_FILE).read_text()


def test_rounds_go_on_after_a_refused_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--every`` the refusal is said and the next round comes (one round: raised,
    exit 1 from the command)."""
    reg, me = Registry(tmp_path / "registry"), tmp_path / "witness"
    asyncio.run(reg.round(me, 10))
    reg.key = Ed25519PrivateKey.generate()
    calls = 0

    async def one() -> Round:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the test ends the rounds")
        return await reg.round(me, 5)

    state = me / "witness_state.json"
    with pytest.raises(RuntimeError):
        run_witness(state, me / "witness.lock", one, 0.01)
    assert calls == 3
    said = " ".join(capsys.readouterr().err.split())
    assert said.count("REFUSED (log key): the registry lists log key") == 2
    with pytest.raises(LogKeyRefused):
        run_witness(state, me / "witness.lock", one, None)


async def test_the_registrys_signed_rotations_are_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, me = Registry(tmp_path / "registry"), tmp_path / "witness"
    await reg.round(me, 10)
    first = reg.current()
    reg.rotate()
    rnd = await reg.round(me, 20)
    second = reg.current()
    assert rnd.decision is not None and rnd.decision.ok, rnd
    said = " ".join(capsys.readouterr().out.split())
    assert (
        f"trusting log key {second}: the registry's signed rotation chain leads to it from "
        f"the kept key {first} (1 link(s))"
    ) in said
    assert load_log_keys(me / KEYS_FILE, ORIGIN) == [first, second]
    for grant in (30, 40):  # two more rotations: followed from a kept key
        reg.rotate()
        rnd = await reg.round(me, grant)
        assert rnd.decision is not None and rnd.decision.ok, rnd
    assert len(load_log_keys(me / KEYS_FILE, ORIGIN) or ()) == 4
    assert _size(me) == 4


async def test_accept_new_key_is_said_kept_and_spent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, me = Registry(tmp_path / "registry"), tmp_path / "witness"
    await reg.round(me, 10)
    stranger = Ed25519PrivateKey.generate()
    reg.key = stranger
    memory = LogKeyMemory(me / KEYS_FILE, accept_new=True)
    rnd = await reg.round(me, 20, memory)
    assert rnd.decision is not None and rnd.decision.ok, rnd
    said = " ".join(capsys.readouterr().err.split())
    assert f"--accept-new-key: trusting log key {public_key_text(stranger)}" in said
    assert public_key_text(stranger) in json.loads((me / KEYS_FILE).read_text())["logs"][ORIGIN]
    assert not memory.accept_new  # spent: the next stranger is refused
    reg.key = Ed25519PrivateKey.generate()
    with pytest.raises(LogKeyRefused):
        await reg.round(me, 30, memory)


def test_a_file_not_the_witnesss_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / KEYS_FILE
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="is not what the witness wrote"):
        load_log_keys(path, ORIGIN)


def test_accept_new_key_is_for_rounds_that_read_the_keys(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from LLM_Mesh.cli.main import app

    key = public_key_text(Ed25519PrivateKey.generate())
    argv = ["ledger", "witness", "--accept-new-key", "--home", str(tmp_path)]
    for extra in (["--log-key", key], ["--listen", "0"]):
        res = CliRunner().invoke(app, [*argv, *extra], env={"COLUMNS": "200"})
        assert res.exit_code == 1, res.output
        assert "--accept-new-key: for rounds without --log-key only" in res.output
