"""``llm-mesh ledger statement``: a keyed user's account against the real registry's public
ledger and the answers the user saved (``tests/inprocess_mesh.py``: the real registry,
settlement and a sim node, whose answers are SIMULATED). Each attack is a registry
operator writing into the user's account what no receipt explains, or showing a log
without one of its entries: ``ledger verify`` passes the first kind (every entry well
formed, hashed and signed, no balance below zero), and nothing listed a user's entries at
all (found 2026-12-05)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands, ledger_statement
from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.cli.ledger_http import HttpSource, Row
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.settlement import user_account
from tests.inprocess_mesh import InProcessMesh
from tests.keyed import operator_account

runner = CliRunner()
MODEL = "gemma-3-270m"


class Paid:
    """A keyed user with two settled answers saved in ``folder``, under a signed checkpoint."""

    def __init__(self, mesh: InProcessMesh, home: Path) -> None:
        self.mesh, self.home = mesh, home
        mesh.add_node(MODEL)
        assert mesh.app is not None
        self.rt: Runtime = mesh.app.state.runtime
        assert self.rt.ledger is not None and self.rt.settlement is not None
        made = mesh.call(create_api_key(mesh.store, name="dana"))
        assert made is not None
        self.key, self.account = made[0], user_account(made[1].key_id)
        self.ledger = self.rt.ledger
        mesh.call(self.ledger.append_one(Transfer("grant", MINT, self.account, 1_000_000)))
        self.folder = home / "answers"
        self.folder.mkdir(parents=True)
        self.answers = []
        for i in range(2):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"hi {i}"}],
                    "max_tokens": 8}  # fmt: skip
            with mesh.sync_client() as c:
                r = c.post("/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {self.key}"})  # fmt: skip
            assert r.status_code == 200, r.text
            receipt = r.json()["mesh"]["receipt"]
            assert receipt.get("payer") == "user" and receipt.get("cost"), receipt
            (self.folder / f"answer-{i}.json").write_text(r.text)
            self.answers.append(r.json())
        self.settle()

    def settle(self) -> None:
        settlement, cp = self.rt.settlement, self.rt.checkpointer
        assert settlement is not None and cp is not None
        self.mesh.call(settlement.flush())
        self.mesh.call(_give_back(settlement))
        self.mesh.call(settlement.flush())
        self.mesh.call(cp.checkpoint())

    def write(self, t: Transfer) -> None:
        """The registry's operator writes an entry of its own (and signs it in)."""
        self.mesh.call(self.ledger.append_one(t))
        assert self.rt.checkpointer is not None
        self.mesh.call(self.rt.checkpointer.checkpoint())

    def request(self, i: int) -> tuple[str, str]:
        m = self.answers[i]["mesh"]
        return m.get("ledger_request_id") or m["request_id"], m["receipt"]["receipt_hash"]


async def _give_back(s: Any) -> int:
    return int(s.give_back(float("inf")))


@pytest.fixture
def paid(inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paid:
    p = Paid(inprocess_mesh, tmp_path)
    _serve(monkeypatch, p)
    return p


@pytest.fixture
def empty(paid: Paid) -> Path:
    """A receipts folder holding none (an operator's statement)."""
    folder = paid.home / "none"
    folder.mkdir()
    return folder


def _serve(monkeypatch: pytest.MonkeyPatch, p: Paid, drop: Any = None) -> None:
    """The CLI's registry is the in-process one (``drop(row)``: rows it leaves out)."""

    @contextlib.asynccontextmanager
    async def source(url: str, db: object, origin: str, ca: object, key: str | None) -> Any:
        async with p.mesh.client() as c:
            src = HttpSource(c, key)
            if drop is not None:
                honest = src.entries

                async def entries(page: int) -> AsyncIterator[list[Row]]:
                    async for batch in honest(page):
                        yield [r for r in batch if not drop(r)]

                src.entries = entries  # type: ignore[method-assign]
            yield src

    async def first(urls: object, verify: object) -> str:
        return p.mesh.registry_url

    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setattr(ledger_statement, "first_answering", first)


def _statement(p: Paid, *args: str, folder: Path | None = None) -> tuple[int, str]:
    env = {"LLM_MESH_HOME": str(p.home / "user"), "LLM_MESH_API_KEY": p.key,
           "LLM_MESH_REGISTRY_URL": p.mesh.registry_url, "COLUMNS": "300"}  # fmt: skip
    where = str(folder or p.folder)
    res = runner.invoke(app, ["ledger", "statement", "--receipts", where, *args], env=env)
    return res.exit_code, " ".join(res.output.split())


def test_an_honest_history_passes(paid: Paid) -> None:
    code, out = _statement(paid)
    assert code == 0, out
    assert f"statement of {paid.account}:" in out and "2 receipts held" in out
    assert "OK: every debit of the account names a receipt you hold" in out
    assert "NO RECEIPT" not in out
    assert f"LLM_MESH_API_KEY's account {paid.account}: its balance" in out
    assert "matches the ledger" in out
    seen = json.loads((paid.home / "user" / "ledger_seen.json").read_text())
    assert paid.account in json.dumps(seen) and paid.key not in json.dumps(seen)


def test_a_debit_for_a_request_without_a_receipt_fails(paid: Paid) -> None:
    paid.write(Transfer("settle", paid.account, operator_account("inprocess"), 500, "req-x"))
    report = paid.mesh.call(audit(StoreSource(paid.ledger, paid.mesh.settings.ledger_origin)))
    assert report.ok, report.findings  # the log's own audit cannot tell
    code, out = _statement(paid)
    assert code == 1, out
    assert "takes 500 µNT" in out and "names no receipt" in out and "NO RECEIPT" in out


def test_an_extra_fee_under_a_saved_receipt_fails(paid: Paid) -> None:
    lid, rh = paid.request(0)
    paid.write(Transfer("fee", paid.account, NETWORK, 7, lid, rh))
    code, out = _statement(paid)
    assert code == 1, out
    assert "the fees are" in out


def test_a_log_shown_without_one_of_the_accounts_debits_fails(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry leaves one of the user's debits out of what it shows (a per-account
    list would just not name it): the verifier's own tree misses a leaf."""
    _lid, rh = paid.request(0)  # the first debit: the entries after it still come
    dropped: list[object] = []

    def drop(row: Row) -> bool:
        if not dropped and row[7] == rh and row[2] == "settle":
            dropped.append(row[0])
            return True
        return False

    _serve(monkeypatch, paid, drop)
    code, out = _statement(paid)
    assert dropped and code == 1, out
    assert f"entry {dropped[0]} is missing" in out


def test_receipts_paid_from_another_account_than_the_one_listed_fail(paid: Paid) -> None:
    code, out = _statement(paid, "--account", "user:" + "b" * 24)
    assert code == 1, out
    assert f"not user:{'b' * 24}" in out and "one of them is not your key's" in out


def test_a_folder_with_a_file_that_holds_no_receipt_is_refused(paid: Paid) -> None:
    (paid.folder / "notes.txt").write_text("not a receipt")
    code, out = _statement(paid)
    assert code == 1 and "notes.txt: holds no receipt" in out, out


def test_a_huge_file_in_the_folder_is_refused_unread(paid: Paid) -> None:
    with (paid.folder / "huge.json").open("wb") as f:  # sparse: read whole, 64 GiB of memory
        f.truncate(64 * 1024**3)
    code, out = _statement(paid)
    assert code == 1 and "huge.json: holds no receipt (larger than 67,108,864 bytes" in out, out


def test_an_operator_lists_its_account_complete_with_no_receipts(paid: Paid, empty: Path) -> None:
    """``--account operator:...`` (the account ``GET /v1/earnings`` names): every share paid
    to it, from the whole log, summed; an operator account is never debited."""
    op = operator_account("inprocess")
    code, out = _statement(paid, "--account", op, folder=empty)
    assert code == 0, out
    assert f"statement of {op}: 2 entries" in out and "taken out 0 µNT" in out
    assert out.count(" settle ") == 2


def test_an_operator_account_named_for_the_token_is_listed_and_remembered(
    paid: Paid, empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--operator``: the account ``GET /v1/earnings`` names for the operator's token,
    listed from the whole log; a registry naming another one later (one whose entries add
    up) is refused, as for a user's key (``core/key_account.py``)."""
    real = ledger_statement.operator_account
    named: list[str] = []

    async def via_mesh(settings: Any, token: str) -> tuple[str, str | None, str]:
        async with paid.mesh.client() as c:
            acct, old, answered = await real(settings, token, c)
        return (named.pop(0) if named else acct), old, answered

    monkeypatch.setattr(ledger_statement, "operator_account", via_mesh)
    assert paid.mesh.operator_token is not None
    monkeypatch.setenv("LLM_MESH_OPERATOR_TOKEN", paid.mesh.operator_token)
    op = operator_account("inprocess")
    code, out = _statement(paid, "--operator", folder=empty)
    assert code == 0, out
    assert f"statement of {op}: 2 entries" in out
    named.append(operator_account("someone-else"))
    code, out = _statement(paid, "--operator", folder=empty)
    assert code == 1, out
    assert f"named account {operator_account('someone-else')} for your operator token" in out
    assert f"but {op} before" in out


class _Hung(httpx.AsyncBaseTransport):
    """``hung.test`` takes the connection and never answers (its ``ReadTimeout``); every
    other host is the in-process mesh."""

    def __init__(self, inner: httpx.AsyncBaseTransport, asked: list[str]) -> None:
        self.inner, self.asked = inner, asked

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "hung.test":
            self.asked.append(request.url.path)
            raise httpx.ReadTimeout("no answer within the timeout", request=request)
        return await self.inner.handle_async_request(request)


def test_an_operator_statement_waits_on_a_hung_first_replica_once(
    paid: Paid, empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new operator's try, ``LLM_MESH_REGISTRY_URL=HUNG,LIVE``, HUNG a
    socket that never answers): ``ledger statement --operator`` took 20 s, two waits: HUNG
    left for LIVE to name the token's account, then the log read began at HUNG again. The
    replica that named the account is where the log is read from first."""
    real = ledger_statement.operator_account
    hung: list[str] = []

    async def via_mesh(settings: Any, token: str) -> Any:
        async with httpx.AsyncClient(transport=_Hung(paid.mesh.transport(), hung)) as c:
            return await real(settings, token, c)

    began: list[list[str]] = []

    async def first(urls: Any, verify: object) -> str:
        began.append(list(urls))
        return str(urls[0])

    monkeypatch.setattr(ledger_statement, "operator_account", via_mesh)
    monkeypatch.setattr(ledger_statement, "first_answering", first)
    assert paid.mesh.operator_token is not None
    live = paid.mesh.registry_url
    env = {"LLM_MESH_HOME": str(paid.home / "op"), "LLM_MESH_REGISTRY_URL": f"http://hung.test,{live}",
           "LLM_MESH_OPERATOR_TOKEN": paid.mesh.operator_token, "COLUMNS": "300"}  # fmt: skip
    res = runner.invoke(
        app, ["ledger", "statement", "--operator", "--receipts", str(empty)], env=env
    )
    assert res.exit_code == 0, res.output
    assert hung, "the account was not asked of HUNG first"
    assert began == [[live, "http://hung.test"]], began  # LIVE first: no second wait


def test_a_ledger_behind_what_an_earlier_statement_saw_says_what_to_do_if_on_purpose(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new operator's try, a local registry whose database was deleted
    and started over): the statement failed ``truncated`` against what the earlier run
    kept in ``ledger_seen.json``, without the line ``ledger verify`` prints for it (which
    file, and to remove it when the ledger was started over on purpose)."""
    code, out = _statement(paid)
    assert code == 0, out
    size, _ = paid.mesh.call(paid.ledger.head())
    _serve(monkeypatch, paid, lambda row: row[0] >= size - 1)  # the log now shown shorter
    code, out = _statement(paid)
    assert code == 1 and "truncated" in out, out
    assert "ledger_seen.json)" in out and "remove that file" in out, out


def test_an_operator_statement_says_what_was_checked_for_the_operator(
    paid: Paid, empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--operator`` ended with the user's line, "every debit ... names a receipt you
    hold" (found 2026-12-05): an operator holds no receipts; its line says what was
    checked for it (the listing, its account against the one remembered, the served logs)."""
    real = ledger_statement.operator_account

    async def via_mesh(settings: Any, token: str) -> tuple[str, str | None, str]:
        async with paid.mesh.client() as c:
            return await real(settings, token, c)

    monkeypatch.setattr(ledger_statement, "operator_account", via_mesh)
    assert paid.mesh.operator_token is not None
    monkeypatch.setenv("LLM_MESH_OPERATOR_TOKEN", paid.mesh.operator_token)
    for first in (True, False):
        code, out = _statement(paid, "--operator", folder=empty)
        assert code == 0, out
        assert "receipt you hold" not in out
        assert "OK: the list is every entry of your operator account in the log" in out
        said = "is remembered" if first else "the same account for your operator token as before"
        assert said in out
        assert "what your node served is not checked: add --served FILE" in out


def test_a_key_in_the_environment_not_sent_to_a_registry_named_by_flag_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (newuser31): with LLM_MESH_API_KEY set and ``--registry URL``, the
    statement said "set LLM_MESH_API_KEY ... or pass --account" to a user who had set it:
    it now says the key is set but goes only to the registry configured with it, and what
    to do (no --registry, or --account)."""
    monkeypatch.setenv("LLM_MESH_HOME", str(tmp_path))
    monkeypatch.setenv("LLM_MESH_API_KEY", "lmk_" + "A" * 43)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://127.0.0.1:9")
    r = runner.invoke(app, ["ledger", "statement", "--registry", "http://127.0.0.1:7"])
    assert r.exit_code == 1
    said = " ".join(r.output.split())
    assert "set LLM_MESH_API_KEY" not in said, said
    assert "LLM_MESH_API_KEY is set but not sent to http://127.0.0.1:7" in said, said
    assert "--account" in said and "http://127.0.0.1:9" in said, said


def test_a_charge_naming_a_receipt_not_kept_says_how_to_keep_them(paid: Paid) -> None:
    """Found 2026-12-05 (newuser31): a user who also asked through the OpenAI SDK (the
    README's "any OpenAI client") got MISMATCH and "a charge no receipt of yours explains"
    for each such answer, with nothing said of why: answers asked other than with
    ``llm-mesh ask`` keep no receipt unless saved. Said once, after the findings, for a
    charge naming a receipt you do not hold; not for one naming none (a forged charge)."""
    (paid.folder / "answer-1.json").unlink()  # asked through the SDK, not saved
    code, out = _statement(paid)
    assert code == 1 and "which you do not hold" in out, out
    hint = "answers asked other than with `llm-mesh ask` (the OpenAI SDK, curl) keep no receipt"
    assert out.count(hint) == 1 and "--receipts DIR" in out.split(hint)[1], out
    kept = str(paid.home / "user" / "receipts")  # the folder ask keeps them in, named (money41)
    assert f"--receipts DIR --receipts {kept}" in out.split(hint)[1], out
    (paid.folder / "answer-1.json").write_text(json.dumps(paid.answers[1]))
    paid.write(Transfer("settle", paid.account, operator_account("inprocess"), 500, "req-x"))
    code, out = _statement(paid)
    assert code == 1 and "names no receipt" in out and hint not in out, out


def test_receipts_given_twice_reads_both_folders(paid: Paid) -> None:
    """Found 2026-12-07 (money41): a user with answers saved from the SDK in one folder and
    ``ask``'s kept folder in another gave ``--receipts A --receipts B`` (as the hint after
    a NO RECEIPT finding reads: "--receipts DIR, with the kept folder's files too"); only
    B was read, silently, and every receipt of A was a false "which you do not hold"."""
    other = paid.home / "kept"
    other.mkdir()
    (paid.folder / "answer-1.json").rename(other / "answer-1.json")
    code, out = _statement(paid, "--receipts", str(other))
    assert code == 0 and "2 receipts held" in out and "NO RECEIPT" not in out, out


def _unjudged(p: Paid, *args: str) -> tuple[int, str]:
    """A statement of ``--account`` with no --receipts (and no key: none is sent)."""
    env = {"LLM_MESH_HOME": str(p.home / "other"), "LLM_MESH_REGISTRY_URL": p.mesh.registry_url,
           "COLUMNS": "300"}  # fmt: skip
    res = runner.invoke(app, ["ledger", "statement", *args], env=env)
    return res.exit_code, " ".join(res.output.split())


def test_the_pools_statement_lists_its_debits_not_judged(paid: Paid) -> None:
    """The pool pays for anonymous requests, which leave their asker the only receipt: its
    statement ended in MISMATCH, each debit "a receipt which you do not hold", the hint
    blaming the SDK and curl (found 2026-12-07, money41b)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "anon"}], "max_tokens": 8}
    with paid.mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["mesh"]["receipt"]["payer"] == "pool"
    paid.settle()
    code, out = _unjudged(paid, "--account", "pool")
    assert code == 0, out
    assert "debits not judged: the pool pays for anonymous requests" in out
    assert "not judged (receipt" in out and "MISMATCH" not in out and "curl" not in out
    assert "OK: the list is every entry of the account in the log (its debits not judged" in out


def test_another_account_without_receipts_is_listed_not_judged(paid: Paid) -> None:
    code, out = _unjudged(paid, "--account", paid.account)
    assert code == 0, out
    assert f"statement of {paid.account}:" in out and "NO RECEIPT" not in out
    assert "debits not judged: no --receipts given" in out
    code, out = _statement(paid, "--account", paid.account, folder=paid.home)  # judged
    assert code == 1 and "which you do not hold" in out, out
