"""``llm-mesh registry grant`` and ``llm-mesh ledger verify --database-url``, in process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.checkpoint import open_checkpoint
from LLM_Mesh.core.ledger_entry import MINT, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    return out.exit_code, out.output


def _db(home: Path) -> str:
    return Settings(home=home).effective_database_url


async def _balances(home: Path) -> dict[str, int]:
    async with SqlStore(_db(home)) as store:

        async def engine() -> object:
            return store.engine

        return await SqlLedger(engine).balances()  # type: ignore[arg-type]


def test_grant_writes_ledger_entries(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    code, out = cli(home, "registry", "grant", "alice", "5000000")
    assert code == 0, out
    assert "granted 5,000,000" in out and "ledger entry 0" in out
    code, out = cli(home, "registry", "grant", "pool", "250")
    assert code == 0 and "ledger entry 1" in out
    assert asyncio.run(_balances(home)) == {
        MINT: -5_000_250,
        operator_account("alice"): 5_000_000,
        "pool": 250,
    }
    code, out = cli(home, "registry", "grant", "nobody", "5")
    assert code == 1 and "no API key or operator 'nobody'" in out
    code, out = cli(home, "registry", "grant", "pool", "0")
    assert code == 1 and "micro-NetworkTokens" in out


def test_grant_to_an_api_key_by_name_or_id_pays_its_user(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "keys", "create", "--name", "carol")
    assert code == 0, out

    async def key_id() -> str:
        async with SqlStore(_db(home)) as store:
            (key,) = await store.list_api_keys()
            return key.key_id

    kid = asyncio.run(key_id())
    assert cli(home, "registry", "grant", "carol", "700")[0] == 0
    assert cli(home, "registry", "grant", kid, "300")[0] == 0
    assert asyncio.run(_balances(home))[pseudonym("user", kid)] == 1000
    assert cli(home, "registry", "operators", "add", "carol")[0] == 0  # now ambiguous
    code, out = cli(home, "registry", "grant", "carol", "1")
    assert code == 1 and "both an API key and an operator" in out


def test_verify_passes_then_names_a_changed_amount(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    for n in (10, 20, 30):
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0
    db = _db(home)
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 0, out
    assert "3 entries" in out and "OK" in out and "60 micro-NetworkTokens issued" in out
    # nothing signed them (grants sign no checkpoint): the OK must not claim signatures
    said = " ".join(out.split())
    assert "no signed checkpoint covers these entries yet" in said, out
    assert "every hash, signature" not in said

    async def tamper() -> None:
        async with SqlStore(db) as store, store.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
            await conn.execute(text("UPDATE ledger_entries SET amount = 99 WHERE seq = 1"))

    asyncio.run(tamper())
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1
    assert "changed: entry 1 was changed" in out and "MISMATCH" in out


def test_verify_names_a_balance_credited_in_the_store_without_an_entry(tmp_path: Path) -> None:
    """Tampering as the task's auditor would: credit an account by SQL, then verify.
    Until 2026-12-03 this passed (the entries were all intact)."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "grant", "pool", "10")[0] == 0
    db = _db(home)

    async def tamper() -> None:
        async with SqlStore(db) as store, store.engine.begin() as conn:
            await conn.execute(
                text("UPDATE balances SET balance = 10000010 WHERE account = 'pool'")
            )

    asyncio.run(tamper())
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1, out
    said = " ".join(out.split())
    assert "stored: account pool: the store's balance is 10000010" in said
    assert "the first 1 entries add up to 10" in said and "MISMATCH" in said


def test_verify_says_why_when_no_registry_answers(tmp_path: Path) -> None:
    """Found 2026-12-02: it said only "error: All connection attempts failed"."""
    code, out = cli(tmp_path, "ledger", "verify", "--registry", "http://127.0.0.1:9")
    said = " ".join(out.split())
    assert code == 1 and "no LLM Mesh registry answered at http://127.0.0.1:9" in said, out


def test_the_users_key_goes_only_to_the_configured_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LLM_MESH_API_KEY`` is sent (to check its balance) to the registry configured with
    it, never to one named by ``--registry``: auditing another registry handed it the key
    (found 2026-12-03, this session's review)."""
    from LLM_Mesh.cli import ledger_commands

    given: list[tuple[str, str | None]] = []

    @contextlib.asynccontextmanager
    async def source(url: str, db: object, origin: str, ca: object, key: str | None) -> Any:
        given.append((url, key))
        raise RuntimeError("stop here")
        yield  # pragma: no cover

    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setenv("LLM_MESH_API_KEY", "sk-mine")
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://127.0.0.1:9")
    cli(tmp_path, "ledger", "verify")
    cli(tmp_path, "ledger", "verify", "--registry", "http://127.0.0.1:10")
    assert given == [("http://127.0.0.1:9", "sk-mine"), ("http://127.0.0.1:10", None)]


def test_verify_names_a_key_that_is_not_a_key(tmp_path: Path) -> None:
    """Found 2026-12-02: ``--key garbage`` said "error: Incorrect padding"."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "grant", "pool", "10")[0] == 0
    for bad in ("garbage", "AAAA", "not base64!"):
        code, out = cli(home, "ledger", "verify", "--database-url", _db(home), "--key", bad)
        said = " ".join(out.split())
        assert code == 1 and "--key" in said and "Ed25519 public key" in said, out
        assert "padding" not in said


def test_a_ledger_rewritten_whole_fails_against_what_an_earlier_verify_saw(
    tmp_path: Path,
) -> None:
    """The registry (or whoever holds its database and key) replaces the whole history
    with another one, every hash, chain and checkpoint consistent: alone it verifies; to
    a verifier that checked the real one before, it does not."""
    home, forger = tmp_path / "mesh", tmp_path / "forger"
    for n in (10, 20, 30, 40):
        assert cli(forger, "registry", "grant", "pool", str(n if n != 20 else 2))[0] == 0
    for n in (10, 20, 30):
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0
    db = _db(home)
    assert cli(home, "ledger", "verify", "--database-url", db)[0] == 0
    assert (home / "ledger_seen.json").exists()
    assert cli(home, "registry", "grant", "pool", "40")[0] == 0  # an honest append
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 0, out
    (home / "registry.db").write_bytes((forger / "registry.db").read_bytes())
    code, out = cli(forger, "ledger", "verify", "--database-url", db)
    assert code == 0, out  # self-consistent: nothing to see without a memory
    code, out = cli(home, "ledger", "verify", "--database-url", db)
    assert code == 1, out  # before: 0, OK
    assert "root: checkpoint at size 4" in out and "MISMATCH" in out
    # what to do when the ledger was started over on purpose
    said = " ".join(out.split())  # the console wraps long lines
    assert "ledger_seen.json)" in said and "remove that file and verify again" in said


# -- split views: verifiers comparing the checkpoints they verified ----------------------


KEY = Ed25519PrivateKey.generate()  # the registry's one ledger key


def _history(home: Path, amounts: tuple[int, ...], key: Ed25519PrivateKey = KEY) -> Path:
    """A registry's database with one grant per amount and a checkpoint of it signed by
    ``key`` (the registry's: each history below is one the same registry signed)."""
    for n in amounts:
        assert cli(home, "registry", "grant", "pool", str(n))[0] == 0

    async def sign() -> None:
        async with SqlStore(_db(home)) as store:

            async def engine() -> object:
                return store.engine

            ledger = SqlLedger(engine)  # type: ignore[arg-type]
            assert await Checkpointer(ledger, key, Settings().ledger_origin).checkpoint()

    asyncio.run(sign())
    return home / "registry.db"


class _Served:
    """One registry database that shows whichever history it is told to (per verifier)."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "served"
        self.home.mkdir()
        self.db = _db(self.home)

    def show(self, history: Path) -> None:
        (self.home / "registry.db").write_bytes(history.read_bytes())

    def verify(self, verifier: Path, *compare: Path) -> tuple[int, str]:
        args = [a for c in compare for a in ("--compare", str(c))]
        return cli(verifier, "ledger", "verify", "--database-url", self.db, *args)

    def export(self, verifier: Path, out: Path) -> dict[str, object]:
        code, text = cli(verifier, "ledger", "checkpoint", "--database-url", self.db, "--out",
                         str(out))  # fmt: skip
        assert code == 0, text
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_a_registry_showing_two_histories_to_two_verifiers_is_a_split_view(
    tmp_path: Path,
) -> None:
    """The attack: verifier 1 is shown history A, verifier 2 a different history B of the
    same size, re-signed with the registry's own key. Each alone checks out (and its
    memory of what it saw does not help); comparing their checkpoints names the split view,
    with both signed notes as evidence."""
    a = _history(tmp_path / "reg-a", (10, 20, 30))
    b = _history(tmp_path / "reg-b", (10, 2, 30))
    served, v1, v2 = _Served(tmp_path), tmp_path / "v1", tmp_path / "v2"
    served.show(a)
    code, out = served.verify(v1)
    assert code == 0 and "OK" in out, out
    one = served.export(v1, tmp_path / "v1.json")
    served.show(b)
    code, out = served.verify(v2)
    assert code == 0 and "OK" in out, out  # alone, nothing to see
    two = served.export(v2, tmp_path / "v2.json")
    assert one["tree_size"] == two["tree_size"] == 3 and one["root_hash"] != two["root_hash"]
    assert one["public_key"] == two["public_key"]  # one registry key signed both

    code, out = served.verify(v2, tmp_path / "v1.json")
    assert code == 1, out  # before: no --compare, nothing compared the two views
    assert "split view" in out and "the registry signed two roots for size 3" in out
    assert str(one["note"]) in out and str(two["note"]) in out  # the evidence, verbatim
    assert "MISMATCH" in out
    served.show(a)
    code, out = served.verify(v1, tmp_path / "v2.json")
    assert code == 1 and "split view" in out, out

    # the evidence checks out offline with the registry's key alone
    pub = base64.b64decode(str(one["public_key"]))
    roots = {open_checkpoint(str(cp["note"]), str(cp["origin"]), pub).root_hash
             for cp in (one, two)}  # fmt: skip
    assert len(roots) == 2


def test_a_split_view_at_another_size_fails_its_consistency_proof(tmp_path: Path) -> None:
    a = _history(tmp_path / "reg-a", (10, 20, 30))
    b = _history(tmp_path / "reg-b", (10, 2, 30, 40, 50))
    served, v1, v2 = _Served(tmp_path), tmp_path / "v1", tmp_path / "v2"
    served.show(a)
    assert served.verify(v1)[0] == 0
    served.export(v1, tmp_path / "v1.json")
    served.show(b)
    code, out = served.verify(v2, tmp_path / "v1.json")
    assert code == 1, out
    assert "split view" in out and "size 3 and 5 are not one history" in out


def test_checkpoints_of_one_history_at_other_sizes_are_consistent(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    early = tmp_path / "early.db"
    early.write_bytes(_history(reg, (10, 20, 30)).read_bytes())
    later = _history(reg, (40, 50))
    served, v1, v2 = _Served(tmp_path), tmp_path / "v1", tmp_path / "v2"
    served.show(early)
    assert served.verify(v1)[0] == 0
    served.export(v1, tmp_path / "v1.json")
    served.show(later)
    code, out = served.verify(v2, tmp_path / "v1.json", tmp_path / "v1.json")
    assert code == 0, out
    said = " ".join(out.split())
    assert "consistent" in said and "is a prefix of this view's size 5" in said
    assert "OK: 2 checkpoints compared: one history" in said
    served.export(v2, tmp_path / "v2.json")
    code, out = served.verify(v1, tmp_path / "v2.json")  # v1 now sees the later ledger too
    assert code == 0 and "the same checkpoint" in out, out
    # found 2026-12-03: "1 checkpoints compared"
    assert "OK: 1 checkpoint compared: one history" in " ".join(out.split()), out


def test_a_forged_or_foreign_checkpoint_is_named_not_taken_for_a_split_view(
    tmp_path: Path,
) -> None:
    a = _history(tmp_path / "reg-a", (10, 20, 30))
    other = _history(tmp_path / "reg-c", (10, 2, 30), Ed25519PrivateKey.generate())
    served, v1, v3 = _Served(tmp_path), tmp_path / "v1", tmp_path / "v3"
    served.show(other)
    assert served.verify(v3)[0] == 0
    served.export(v3, tmp_path / "other.json")
    served.show(a)
    assert served.verify(v1)[0] == 0
    mine = served.export(v1, tmp_path / "v1.json")
    # v1's own checkpoint with another root written into it: the signature no longer holds
    note = str(mine["note"])
    root_line = note.split("\n")[2]
    forged_root = base64.b64encode(bytes(32)).decode()
    (tmp_path / "forged.note").write_text(note.replace(root_line, forged_root))
    code, out = served.verify(v1, tmp_path / "forged.note", tmp_path / "other.json")
    assert code == 1, out
    said = " ".join(out.split())
    assert "signature: " in said and "does not verify" in said
    assert "no signature by the registry's key" in said
    assert "MISMATCH: 2 of 2" in said
    assert "split view" not in said


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such file (check the path)"),
        (b"\xff\xfe not text", "is not UTF-8 text"),
        (b"{ not json", "not JSON"),
        (b'{"tree_size": 3}', "a JSON checkpoint without a 'note' string"),
        (b"hello", "not a signed note"),
        (b"x" * 70_000, "longer than"),
        ("folder", "is a folder, not a file"),
        ("fifo", "not a regular file"),
    ],
)
def test_a_compare_file_that_cannot_be_read_is_an_error_naming_it_not_a_mismatch(
    tmp_path: Path, content: bytes | str | None, why: str
) -> None:
    """Found 2026-12-06 (newuser35): ``--compare missing.json`` printed "MISMATCH: 1 of 1
    checkpoint compared", as if another verifier had seen another ledger: a file that
    cannot be read, or is no checkpoint in shape, is a mistake in the command, said as
    the error it is, before the audit, naming the file."""
    a = _history(tmp_path / "reg-a", (10, 20))
    served, v1 = _Served(tmp_path), tmp_path / "v1"
    served.show(a)
    bad = tmp_path / "theirs.json"
    if content == "folder":
        bad.mkdir()
    elif content == "fifo":  # opening it would wait for a writer for ever
        os.mkfifo(bad)
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    code, out = served.verify(v1, bad)
    said = " ".join(out.split())
    assert code == 1, out
    assert f"error: --compare {bad}" in said and why in said, said
    assert "MISMATCH" not in said and "compared" not in said, said
    assert not (v1 / "ledger_seen.json").exists()  # said before the audit: nothing run


@contextlib.contextmanager
def _peer(status: int, body: bytes) -> Any:
    """A peer's URL on loopback answering every GET with ``status`` and ``body``."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cp.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (404, b"not here", "GET answered 404 Not Found"),
        (200, b"<html>a page</html>", "not a signed note"),
    ],
    ids=["404", "not a checkpoint"],
)
def test_a_compare_url_that_answers_no_checkpoint_is_an_error_not_a_mismatch(
    tmp_path: Path, status: int, body: bytes, why: str
) -> None:
    """Found 2026-12-07 (user41b): ``--compare URL`` answering 404 printed "unreadable ...
    MISMATCH: 1 of 1 checkpoint compared", as if another verifier had seen another ledger
    (a missing file was an ``error:`` already). An error line naming the URL and the
    status; exit 1 (an error, as the command's help says); no mismatch."""
    a = _history(tmp_path / "reg-a", (10, 20))
    served, v1 = _Served(tmp_path), tmp_path / "v1"
    served.show(a)
    with _peer(status, body) as url:
        code, out = served.verify(v1, url)  # type: ignore[arg-type]
    said = " ".join(out.split())
    assert code == 1, out
    assert f"error: --compare {url}: {why}" in said, said
    assert "MISMATCH" not in said and "checkpoint compared" not in said, said


def test_checkpoint_export_needs_a_verified_ledger_and_prints_the_note(tmp_path: Path) -> None:
    a = _history(tmp_path / "reg-a", (10, 20))
    served, v1 = _Served(tmp_path), tmp_path / "v1"
    served.show(a)
    code, out = cli(v1, "ledger", "checkpoint", "--database-url", served.db)
    assert code == 1 and "run `llm-mesh ledger verify` first" in " ".join(out.split())
    assert served.verify(v1)[0] == 0
    code, out = cli(v1, "ledger", "checkpoint", "--database-url", served.db)
    assert code == 0 and json.loads(out)["tree_size"] == 2
    code, note = cli(v1, "ledger", "checkpoint", "--database-url", served.db, "--note")
    assert code == 0 and note == json.loads(out)["note"]


def test_compare_needs_a_signed_checkpoint_here_and_a_view_that_checks_out(
    tmp_path: Path,
) -> None:
    reg = tmp_path / "reg"
    assert cli(reg, "registry", "grant", "pool", "5")[0] == 0  # nothing signed yet
    served, v1 = _Served(tmp_path), tmp_path / "v1"
    served.show(reg / "registry.db")
    # a signed note in shape (a file that is none is an error before any check)
    (tmp_path / "peer.note").write_text("origin\n1\nroot\ntime 1\n\n\u2014 origin AAAA\n")
    code, out = served.verify(v1, tmp_path / "peer.note")
    said = " ".join(out.split())
    assert code == 1 and "unproven: " in said and "no signed checkpoint yet" in said, out
    v2 = tmp_path / "v2"
    served.show(_history(tmp_path / "reg-a", (10, 20)))
    assert served.verify(v2)[0] == 0  # remembers this history
    served.show(_history(tmp_path / "reg-b", (10,)))  # cut short: this view fails
    code, out = served.verify(v2, tmp_path / "peer.note")
    assert code == 1 and "truncated" in out and "comparisons skipped" in out, out


def test_grant_and_verify_print_amounts_grouped_as_balance_does(tmp_path: Path) -> None:
    """found 2026-12-04 (a new user's walk): ``registry grant ci 5000000`` said ``granted
    5000000``, ``ledger verify`` ``105000000 micro-NetworkTokens issued``, where ``balance``
    and ``earnings`` print ``4,999,958``: a digit too many or too few is easy to misread."""
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "grant", "pool", "5000000")
    assert code == 0 and "granted 5,000,000 micro-NetworkTokens" in out, out
    code, out = cli(home, "ledger", "verify", "--database-url", _db(home))
    assert code == 0 and "5,000,000 micro-NetworkTokens issued" in out, out


def test_no_registry_at_a_url_given_by_flag_says_to_check_it_not_to_pass_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (newuser31): ``ledger verify --registry URL`` and ``ledger witness
    --registry URL`` with nothing there said "pass --registry URL or set
    LLM_MESH_REGISTRY_URL" to a user who had passed it: now what to check; without the
    flag, the default's hint as before."""
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL", raising=False)
    for cmd in (["ledger", "verify"], ["ledger", "witness"]):
        code, out = cli(tmp_path / cmd[1], *cmd, "--registry", "http://127.0.0.1:9")
        said = " ".join(out.split())
        assert code == 1 and "pass --registry URL" not in said, said
        assert "is a registry running at http://127.0.0.1:9?" in said, said
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://127.0.0.1:9")
    code, out = cli(tmp_path / "env", "ledger", "verify")
    assert code == 1 and "pass --registry URL or set LLM_MESH_REGISTRY_URL" in " ".join(out.split())


def test_ledger_id_reads_standard_input_to_a_bound() -> None:
    """Found 2026-12-06 (cli36): ``ledger id -`` read standard input whole (``/dev/zero``:
    until memory ran out; failed before: the 1 MiB + 1 byte id was hashed, exit 0). An id
    on stdin is read; more than 1 MiB is one line saying the bound."""
    from LLM_Mesh.core.receipt import client_ledger_id

    ok = runner.invoke(app, ["ledger", "id", "-"], input="my-trace-id\n")
    assert ok.exit_code == 0 and ok.output.strip() == client_ledger_id("my-trace-id")
    big = runner.invoke(app, ["ledger", "id", "-"], input="x" * ((1 << 20) + 1))
    said = " ".join(big.output.split())
    assert big.exit_code == 1 and "Traceback" not in said, said
    assert "standard input: is larger than 1,048,576 bytes, the most read" in said, said
