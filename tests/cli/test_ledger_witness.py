"""``llm-mesh ledger witness`` and ``ledger verify --witness``, in process.

A registry database is served by the registry app over an ASGI transport; the witness
round talks to it as it would over HTTP; ``ledger verify --database-url`` reads the same
database (the cosignatures come with the checkpoints from the store)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_witness
from LLM_Mesh.cli.ledger_witness import (
    KEY_FILE,
    NOT_HANDED_IN,
    Round,
    load_or_create_witness_key,
    load_state,
    run_witness,
    witness_round,
)
from LLM_Mesh.cli.main import app as cli_app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.witness import ROLLBACK, SPLIT_VIEW, witness_key
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.store import SqlStore
from tests.http_bodies import Endless
from tests.registry.helpers import make_settings

runner = CliRunner()
LOG_KEY = Ed25519PrivateKey.generate()  # the registry's one ledger key
NAME = "witness.test/w1"


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = runner.invoke(cli_app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    return out.exit_code, out.output


def flat(text: str) -> str:
    """``text`` with the console's line wrapping undone."""
    return " ".join(text.split())


def _db(home: Path) -> str:
    return Settings(home=home).effective_database_url


def _grow(home: Path, amounts: tuple[int, ...]) -> None:
    """Grants (ledger entries) in ``home``'s database, then a checkpoint by ``LOG_KEY``."""
    for n in amounts:
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0

    async def sign() -> None:
        async with SqlStore(_db(home)) as store:

            async def engine() -> object:
                return store.engine

            ledger = SqlLedger(engine)  # type: ignore[arg-type]
            assert await Checkpointer(ledger, LOG_KEY, Settings().ledger_origin).checkpoint()

    asyncio.run(sign())


class Witness:
    """A witness (its own home: key and state) that cosigns what a registry serves."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.key, made = load_or_create_witness_key(home / KEY_FILE)
        assert made
        self.wk = witness_key(self.key, NAME)
        self.state = home / "witness_state.json"

    def one_round(
        self, served: Path, accepted: tuple[str, ...], clock: Callable[[], float] = time.time
    ) -> Callable[[], object]:
        """One round against a registry app serving ``served``'s database (a fresh app per
        round, as a registry restart would be; the database is what persists)."""

        async def go() -> Round:
            settings = make_settings(
                served,
                admin_key=None,
                pool_daily_budget=0,
                reward_rate=0,
                ledger_witnesses=accepted,
            )
            app = create_registry_app(settings, store=SqlStore(_db(served)), gateway_key=LOG_KEY)
            async with app.router.lifespan_context(app):
                t = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=t, base_url="http://reg") as client:
                    return await witness_round(
                        client,
                        self.key,
                        NAME,
                        self.state,
                        Settings().ledger_origin,
                        wall_clock=clock,
                    )

        return go

    def run(
        self,
        served: Path,
        accepted: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> int:
        accepted = (self.wk.vkey,) if accepted is None else accepted
        return run_witness(
            self.state, self.home / "witness.lock", self.one_round(served, accepted, clock), None
        )


def test_a_witness_cosigns_and_verify_witness_passes_then_needs_the_newest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, verifier = tmp_path / "reg", tmp_path / "v"
    w = Witness(tmp_path / "w")
    _grow(reg, (10, 20, 30))
    db = _db(reg)
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, "--witness", w.wk.vkey)
    assert code == 1 and "unwitnessed" in out, out  # nothing cosigned yet
    assert not (verifier / "ledger_seen.json").exists()  # an unwitnessed view is not kept

    assert w.run(reg) == 0
    said = flat(capsys.readouterr().out)
    assert "cosigned" in said and "the first checkpoint this witness cosigns" in said
    assert load_state(w.state)[Settings().ledger_origin].size == 3
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, "--witness", w.wk.vkey)
    assert code == 0, out
    out = flat(out)
    assert "witnessed: checkpoint at size 3 cosigned by witness.test/w1" in out
    # when, as a person reads it (it said POSIX seconds)
    assert re.search(r"witness.test/w1 at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out), out
    assert "cosigned by 1 of 1 trusted witnesses" in out

    _grow(reg, (40, 50))  # a newer checkpoint the witness has not seen yet: fine a while
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, "--witness", w.wk.vkey)
    assert code == 0, out
    out = flat(out)
    assert "witnessed: checkpoint at size 3" in out
    # entries named by their seq, as GET /v1/ledger and every other finding name them
    assert "not witnessed yet: 1 newer checkpoint(s), up to size 5 (entries 3-4)" in out
    assert w.run(reg) == 0
    assert "extends the cosigned size 3" in flat(capsys.readouterr().out)
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, "--witness", w.wk.vkey)
    assert code == 0, out

    # two trusted witnesses, one cosigned: all are needed unless told otherwise
    other = witness_key(Ed25519PrivateKey.generate(), "witness.test/w2").vkey
    both = ("--witness", w.wk.vkey, "--witness", other)
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, *both)
    assert code == 1 and "1 of the trusted witnesses, 2 needed" in flat(out), out
    code, out = cli(
        verifier, "ledger", "verify", "--database-url", db, *both, "--witnesses-needed", "1"
    )
    assert code == 0, out
    code, out = cli(verifier, "ledger", "verify", "--database-url", db, "--witness", "junk")
    assert code == 1 and "--witness" in out and "not a witness key" in out


def test_checkpoints_after_a_witnessed_one_pass_only_while_its_cosignature_is_recent(
    tmp_path: Path,
) -> None:
    """A witness that cosigned two hours ago and not since (it stopped, or it refused the
    history this verifier is shown): the newer checkpoints are not accepted on that old
    cosignature unless the verifier allows that age."""
    reg, verifier = tmp_path / "reg", tmp_path / "v"
    w = Witness(tmp_path / "w")
    _grow(reg, (10, 20, 30))
    assert w.run(reg, clock=lambda: time.time() - 7200) == 0
    db = _db(reg)
    args = ("ledger", "verify", "--database-url", db, "--witness", w.wk.vkey)
    assert cli(verifier, *args)[0] == 0  # the newest checkpoint is the witnessed one
    _grow(reg, (40, 50))
    code, out = cli(verifier, *args)
    out = flat(out)
    assert code == 1 and "unwitnessed" in out, out
    assert "newest witnessed checkpoint (size 3) was cosigned 72" in out
    assert "more than --witness-max-age 900 s" in out and "up to size 5" in out
    code, out = cli(verifier, *args, "--witness-max-age", "10000")
    assert code == 0 and "not witnessed yet" in flat(out), out


def test_a_registry_showing_the_witness_a_fork_is_refused_and_verify_witness_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attack: the registry (its database and key) shows the witness history A, then a
    fork B that shares only the first entry, signed with its own key and with B's own
    consistency proof. The witness refuses B loudly, keeps its state, and a verifier
    shown B cannot get it past ``--witness``."""
    a, b = tmp_path / "reg-a", tmp_path / "reg-b"
    _grow(a, (10, 20, 30))
    _grow(b, (10, 2, 30, 40, 50))
    w = Witness(tmp_path / "w")
    assert w.run(a) == 0
    capsys.readouterr()
    before = w.state.read_bytes()

    assert w.run(b) == 1  # before the witness existed: nothing refused anything
    said = capsys.readouterr().err
    told = flat(said)
    assert f"REFUSED ({SPLIT_VIEW})" in told and "does not verify" in told
    assert "cosigned before (size 3)" in told and "offered now" in told
    origin = Settings().ledger_origin
    note_a = load_state(w.state)[origin].note
    assert note_a.split("\n")[2] in said  # the evidence: both signed notes, verbatim
    assert said.count(f"\u2014 {origin} ") == 2
    assert w.state.read_bytes() == before  # the state did not move
    code, out = cli(
        tmp_path / "v", "ledger", "verify", "--database-url", _db(b), "--witness", w.wk.vkey
    )
    assert code == 1 and "unwitnessed" in out, out  # alone, B checks out in every other way
    assert cli(tmp_path / "v2", "ledger", "verify", "--database-url", _db(b))[0] == 0

    # the same size with another root: a split view too
    c = tmp_path / "reg-c"
    _grow(c, (10, 20, 31))
    assert w.run(c) == 1
    assert "two roots for size 3" in flat(capsys.readouterr().err)


def test_a_rollback_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "reg"
    _grow(reg, (10, 20))
    early = tmp_path / "early.db"
    early.write_bytes((reg / "registry.db").read_bytes())
    _grow(reg, (30, 40))
    w = Witness(tmp_path / "w")
    assert w.run(reg) == 0
    (reg / "registry.db").write_bytes(early.read_bytes())  # the registry goes back to size 2
    # and hides it: an honest registry refuses to serve a store behind the checkpoint it
    # published (registry/ledger_mark.py); a lying one drops its mark, and the witness is
    # what catches it
    (reg / "ledger.checkpoint").unlink()
    assert w.run(reg) == 1
    assert f"REFUSED ({ROLLBACK})" in flat(capsys.readouterr().err)
    assert load_state(w.state)[Settings().ledger_origin].size == 4


def test_a_registry_that_refuses_the_cosignature_fails_the_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "reg"
    _grow(reg, (10,))
    w = Witness(tmp_path / "w")
    assert w.run(reg, accepted=()) == NOT_HANDED_IN  # 3: not 0, and not a refusal's 1
    said = capsys.readouterr()
    assert "refused by the registry (403)" in flat(said.err) and not said.out
    assert "not handed in" in flat(said.err) and "LLM_MESH_LEDGER_WITNESSES" in flat(said.err)
    other = witness_key(Ed25519PrivateKey.generate(), "witness.test/w2").vkey
    assert (
        w.run(reg, accepted=(other,)) == NOT_HANDED_IN
    )  # another witness is accepted, not this one
    said = capsys.readouterr()
    message = flat(said.err)
    assert "'witness.test/w1' is not a witness this registry accepts" in message, message
    assert "LLM_MESH_LEDGER_WITNESSES" in message and '{"error"' not in message


def test_the_witness_key_is_made_once_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "w" / KEY_FILE
    key, made = load_or_create_witness_key(path)
    assert made and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, made = load_or_create_witness_key(path)
    assert not made and witness_key(again, NAME) == witness_key(key, NAME)
    path.write_text("not a key")
    with pytest.raises(ValueError, match="never overwritten"):
        load_or_create_witness_key(path)
    assert path.read_text() == "not a key"


def test_one_witness_per_home_and_a_state_it_did_not_write_is_refused(tmp_path: Path) -> None:
    from LLM_Mesh.secret_files import try_lock

    w = Witness(tmp_path / "w")
    fd = try_lock(w.home / "witness.lock")
    assert fd is not None
    try:
        with pytest.raises(Exception, match="another witness runs on this home"):
            w.run(tmp_path / "reg")
    finally:
        import os

        os.close(fd)
    w.state.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not what the witness wrote"):
        load_state(w.state)


def test_the_command_prints_its_key_and_says_when_no_registry_answers(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "w", "ledger", "witness", "--registry", "http://127.0.0.1:9")
    said = flat(out)
    assert code == 1 and "no LLM Mesh registry answered at http://127.0.0.1:9" in said, out
    assert "made the witness key" in said and "witness key: llm-mesh-witness/" in said
    key, _ = load_or_create_witness_key(tmp_path / "w" / KEY_FILE)
    text = said.split("witness key: ")[1].split()[0]
    assert text == witness_key(key, text.split("+")[0]).vkey  # the key text verifiers pass
    code, out = cli(tmp_path / "w", "ledger", "witness", "--log-key", "junk")
    assert code == 1 and "--log-key" in out


def test_log_keys_raw_or_as_key_texts_even_with_a_plus_in_the_base64() -> None:
    import base64

    import typer

    from LLM_Mesh.cli.ledger_witness import parse_log_keys
    from LLM_Mesh.core.checkpoint import vkey

    origin = Settings().ledger_origin
    plus = b"\xfb" + bytes(31)  # its base64 starts with '+'
    b64 = base64.b64encode(plus).decode()
    assert "+" in b64
    other = LOG_KEY.public_key().public_bytes_raw()
    got = parse_log_keys([b64, vkey("other.test/log", other)], origin)
    assert got == {origin: [plus], "other.test/log": [other]}
    for bad in ("junk", "x+00+AAAA", vkey("other.test/log", other).replace("other", "othr", 1)):
        with pytest.raises(typer.Exit):
            parse_log_keys([bad], origin)


def test_listen_needs_log_keys_and_is_not_rounds(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "ledger", "witness", "--listen", "0")
    assert code == 1 and "--listen needs the keys of the logs" in flat(out), out
    code, out = cli(tmp_path, "ledger", "witness", "--listen", "0", "--every", "5")
    assert code == 1 and "one or the other" in flat(out), out


def test_a_log_key_as_the_start_log_shows_it_is_taken(tmp_path: Path) -> None:
    # the registry's start log shows its key as base64url ("public key Ku_-9m..."): a new
    # user pasting that into --log-key was told to find another form (until 2026-12-04);
    # it is the same key, taken; a key cut short says which forms it may take, and where
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    logged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    from LLM_Mesh.cli.ledger_witness import parse_log_keys

    origin = Settings().ledger_origin
    assert parse_log_keys([logged], origin) == {origin: [raw]}
    code, out = cli(tmp_path, "ledger", "witness", "--listen", "0", "--log-key", logged[:-4])
    said = flat(out)
    assert code == 1 and "public_key of its GET /v1/ledger/keys" in said, out
    assert "base64 or base64url" in said, out


def test_a_registry_answering_without_end_cannot_exhaust_the_witness(tmp_path: Path) -> None:
    # the watched registry answers the newest checkpoint with an endless body: the witness
    # read it whole (found 2026-12-03); now it stops past MAX_ANSWER and cosigns nothing
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1024):  # 64 MiB
            pulled += 1
            yield b" " * 65536

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    async def go() -> None:
        t = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=t, base_url="http://reg") as client:
            with pytest.raises(MeshError, match="longer than 1048576 bytes"):
                await witness_round(
                    client, Ed25519PrivateKey.generate(), NAME, tmp_path / "state.json",
                    Settings().ledger_origin,
                )  # fmt: skip

    asyncio.run(go())
    assert pulled <= (1 << 20) // 65536 + 2 and not (tmp_path / "state.json").exists()


def test_a_registry_trickling_its_answer_cannot_hold_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the watched registry answers a byte every 0.05 s: within any read timeout, so the
    # round waited for as long as the registry liked (found 2026-12-03: here 4 s, then not
    # JSON; with a byte each 59 s, for ever); now each call ends at CALL_S
    monkeypatch.setattr(ledger_witness, "CALL_S", 0.3, raising=False)
    body = Endless(chunks=80, gap_s=0.05, size=1, fill=b" ")

    async def go() -> None:
        t = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
        async with httpx.AsyncClient(transport=t, base_url="http://reg") as client:
            with pytest.raises(
                MeshError, match=r"checkpoints/latest's answer took longer than 0\.3 s"
            ):
                await witness_round(
                    client, Ed25519PrivateKey.generate(), NAME, tmp_path / "state.json",
                    Settings().ledger_origin,
                )  # fmt: skip

    asyncio.run(go())
    assert body.pulled < 80 and not (tmp_path / "state.json").exists()
