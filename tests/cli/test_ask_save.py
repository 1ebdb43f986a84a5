"""``llm-mesh ask --save DIR``: a keyed user who asks through the CLI keeps each answer's
receipt, so ``ledger statement --receipts DIR`` explains every debit (before, ``ask`` kept
no answer: the statement named each such debit ``NO RECEIPT``, exit 1, found 2026-12-05).
The real registry, settlement and a sim node (``tests/inprocess_mesh.py``, answers
SIMULATED); the saved file holds no prompt and no answer text, mode 0600, in a 0700 DIR."""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import demo
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.key_account import key_tag
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.receipt_files import RECEIPTS_DIR, key_folder, save_receipt
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from tests.cli.test_ledger_statement import MODEL, Paid, _serve, _statement
from tests.cli.test_receipt_commands import saved_keys
from tests.inprocess_mesh import InProcessMesh

runner = CliRunner()


@pytest.fixture
def paid(inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paid:
    p = Paid(inprocess_mesh, tmp_path)
    _serve(monkeypatch, p)
    real = demo.ask_once

    async def through_mesh(*args: Any, **kw: Any) -> Any:  # `ask` reaches the in-process one
        return await real(*args, **{**kw, "http_client": inprocess_mesh.client()})

    monkeypatch.setattr(demo, "ask_once", through_mesh)
    return p


def _ask(p: Paid, marker: str, *extra: str) -> tuple[int, str, str]:
    env = {"LLM_MESH_HOME": str(p.home / "user"), "LLM_MESH_API_KEY": p.key,
           "LLM_MESH_REGISTRY_URL": p.mesh.registry_url, "COLUMNS": "200"}  # fmt: skip
    args = ["ask", f"say {marker} now", "--model", MODEL, "--max-tokens", "8", *extra]
    res = runner.invoke(app, args, env=env)
    return res.exit_code, res.stdout, res.stderr


def test_with_no_save_an_asked_debit_has_no_receipt(paid: Paid) -> None:
    code, out, err = _ask(paid, "plain", "--no-save")
    assert code == 0, out + err
    paid.settle()
    code, said = _statement(paid)
    assert code == 1 and "NO RECEIPT" in said, said


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chat", [False, True])
def test_saved_receipts_pass_the_statement(paid: Paid, stream: bool, chat: bool) -> None:
    marker = f"SAVE-{secrets.token_hex(8)}"
    flags = [*(["--stream"] if stream else []), *(["--chat"] if chat else [])]
    before = set(paid.folder.iterdir())
    for _ in range(2):  # one new file a request, never the same
        code, out, err = _ask(paid, marker, "--save", str(paid.folder), *flags)
        assert code == 0, out + err
        assert "SIMULATED" in out or "simulated" in out
        assert "receipt saved:" in err
    saved = sorted(set(paid.folder.iterdir()) - before)
    keys = saved_keys(paid.mesh, paid.home)
    assert len(saved) == 2
    for f in saved:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        text = f.read_text()
        # no prompt (its random marker), nor answer text: only the mesh object ("say" alone
        # is no test: a base64 signature held it once in CI)
        assert marker not in text
        assert set(json.loads(text)) == {"mesh"} and "receipt" in json.loads(text)["mesh"]
        assert "choices" not in text and "content" not in text
        verified = runner.invoke(app, ["receipt", "verify", str(f), "--keys", str(keys)])
        assert verified.exit_code == 0 and "OK" in verified.output, verified.output
    paid.settle()
    code, said = _statement(paid)
    assert code == 0, said
    assert "4 receipts held" in said and "NO RECEIPT" not in said


def test_a_missing_dir_is_made_0700(paid: Paid) -> None:
    folder = paid.home / "new" / "answers"
    code, out, err = _ask(paid, "x", "--save", str(folder))
    assert code == 0, out + err
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert len(list(folder.iterdir())) == 1


def test_a_failed_save_keeps_the_printed_answer_and_exits_1(paid: Paid) -> None:
    blocker = paid.home / "a-file"
    blocker.write_text("")
    code, out, err = _ask(paid, "kept", "--save", str(blocker / "sub"))
    assert code == 1
    assert "kept" in out  # the completion, printed after its prompt
    assert "--save: the receipt was not saved" in " ".join(err.split())


def test_save_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from LLM_Mesh import receipt_files

    monkeypatch.setattr(receipt_files.secrets, "token_hex", lambda n: "same")
    first = save_receipt(tmp_path, {"mesh": {"receipt": {"a": 1}}}, now=0)
    with pytest.raises(FileExistsError):
        save_receipt(tmp_path, {"mesh": {"receipt": {"a": 2}}}, now=0)
    assert json.loads(first.read_text()) == {"mesh": {"receipt": {"a": 1}}}


# --- kept by default (found 2026-12-05: `ask` without --save kept nothing, so a keyed
# user's statement named every charge NO RECEIPT, and nothing said where to look) --------


def _new_user(p: Paid, name: str) -> str:
    return _new_account(p, name)[0]


def _new_account(p: Paid, name: str) -> tuple[str, str]:
    """A fresh key with a grant (every debit of its account comes from the asks below), and
    its account."""
    made = p.mesh.call(create_api_key(p.mesh.store, name=name))
    assert made is not None
    acct = user_account(made[1].key_id)
    p.mesh.call(p.ledger.append_one(Transfer("grant", MINT, acct, 10**6)))
    return made[0], acct


def _kept(p: Paid, key: str) -> list[Path]:
    folder = key_folder(p.home / "user", key)
    if not folder.exists():
        return []
    return sorted(f for f in folder.iterdir() if not f.name.startswith("."))  # not the record


def _run(p: Paid, args: list[str], key: str | None) -> tuple[int, str, str]:
    env = {"LLM_MESH_HOME": str(p.home / "user"), "LLM_MESH_REGISTRY_URL": p.mesh.registry_url,
           "COLUMNS": "200", "LLM_MESH_API_KEY": key or ""}  # fmt: skip
    res = runner.invoke(app, args, env=env)
    return res.exit_code, res.stdout, res.stderr


def _ask_as(p: Paid, key: str | None, marker: str, *extra: str) -> tuple[int, str, str]:
    args = ["ask", f"say {marker} now", "--model", MODEL, "--max-tokens", "8", *extra]
    return _run(p, args, key)


@pytest.mark.parametrize("stream", [False, True])
def test_a_keyed_ask_keeps_its_receipt_and_its_statement_passes(paid: Paid, stream: bool) -> None:
    key = _new_user(paid, "erin")
    marker = f"KEPT-{secrets.token_hex(8)}"
    for _ in range(2):
        code, out, err = _ask_as(paid, key, marker, *(["--stream"] if stream else []))
        assert code == 0, out + err
    kept = _kept(paid, key)
    assert len(kept) == 2
    assert key not in str(kept[0]) and key_tag(key)[:24] == kept[0].parent.name
    assert stat.S_IMODE(kept[0].parent.stat().st_mode) == 0o700
    for f in kept:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        text = f.read_text()
        assert marker not in text and "choices" not in text and "content" not in text
        assert set(json.loads(text)) == {"mesh"} and "receipt" in json.loads(text)["mesh"]
    paid.settle()
    code, out, err = _run(paid, ["ledger", "statement"], key)  # no --receipts
    said = " ".join((out + err).split())
    assert code == 0, said
    assert "2 receipts held" in said and "NO RECEIPT" not in said


def test_no_save_keeps_nothing_and_its_charge_has_no_receipt(paid: Paid) -> None:
    key = _new_user(paid, "frank")
    code, out, err = _ask_as(paid, key, "x", "--no-save")
    assert code == 0, out + err
    assert _kept(paid, key) == []
    assert not (paid.home / "user" / RECEIPTS_DIR).exists()
    paid.settle()
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 1 and "NO RECEIPT" in said and "no receipts kept in" in said, said


def test_an_anonymous_ask_keeps_nothing(paid: Paid) -> None:
    code, out, err = _ask_as(paid, None, "anon")
    assert code == 0, out + err
    assert "SIMULATED" in out or "simulated" in out
    assert not (paid.home / "user" / RECEIPTS_DIR).exists()


def test_save_and_no_save_together_are_refused(paid: Paid) -> None:
    code, out, err = _ask_as(paid, paid.key, "x", "--save", str(paid.folder), "--no-save")
    assert code == 1 and "--no-save" in out + err


def test_a_failed_default_keep_warns_and_keeps_the_answer(paid: Paid) -> None:
    key = _new_user(paid, "gina")
    (paid.home / "user").mkdir(parents=True, exist_ok=True)
    (paid.home / "user" / RECEIPTS_DIR).write_text("")  # a file where the folder goes
    code, out, err = _ask_as(paid, key, "kept")
    assert code == 0 and "kept" in out
    assert "the receipt was not kept" in " ".join(err.split())


def test_a_kept_folder_of_junk_and_huge_files_is_skipped_file_by_file(paid: Paid) -> None:
    key = _new_user(paid, "hank")
    code, out, err = _ask_as(paid, key, "x")
    assert code == 0, out + err
    folder = key_folder(paid.home / "user", key)
    (folder / "junk.json").write_text("{not json")
    (folder / "binary.bin").write_bytes(b"\xff\xfe\x00" * 100)
    with (folder / "huge.json").open("wb") as f:  # sparse: 8 GiB that would hang a read
        f.truncate(8 * 1024**3)
    os.mkfifo(folder / "fifo")  # a read of it would block forever
    (folder / "sub").mkdir()
    paid.settle()
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 0, said
    assert "1 receipt held" in said
    for name in ("junk.json", "binary.bin", "huge.json"):
        assert f"skipped: {folder / name}: holds no receipt" in said, name
    assert "larger than 1,048,576 bytes" in said


def test_a_kept_folder_of_only_junk_is_refused_not_read_forever(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    from LLM_Mesh.cli import ledger_statement

    monkeypatch.setattr(ledger_statement, "MAX_SKIPPED", 3)
    key = _new_user(paid, "ivy")
    folder = key_folder(paid.home / "user", key)
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"junk-{i}").write_text("x")
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 1 and "more than 3 files hold no receipt" in said, said


# --- the bound: a clean statement's window (core/receipt_keep.py) -----------------------


def test_a_clean_statement_removes_old_kept_receipts_and_still_passes_after(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    from LLM_Mesh.cli import ledger_statement

    monkeypatch.setattr(ledger_statement, "KEEP_S", 0)  # as if a month had passed
    key, acct = _new_account(paid, "jo")
    for _ in range(2):
        assert _ask_as(paid, key, "x")[0] == 0
    paid.settle()
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 0 and "removed 2 kept receipts" in said, said
    assert _kept(paid, key) == []
    assert _ask_as(paid, key, "y")[0] == 0  # one more, kept
    paid.settle()
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 0, said  # the two removed receipts' debits were judged before
    assert "1 receipt held" in said and "checked by an earlier statement" in said
    assert "NO RECEIPT" not in said and "removed 1 kept receipt" in said
    # a debit written after the window with no receipt is still a finding
    paid.write(Transfer("settle", acct, user_account("someone"), 500, "req-late"))
    code, out, err = _run(paid, ["ledger", "statement"], key)
    said = " ".join((out + err).split())
    assert code == 1 and "req-late" in said and "NO RECEIPT" in said, said


def test_a_user_folder_given_with_receipts_is_never_pruned(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    from LLM_Mesh.cli import ledger_statement

    monkeypatch.setattr(ledger_statement, "KEEP_S", 0)
    key = _new_user(paid, "kim")
    assert _ask_as(paid, key, "x")[0] == 0
    paid.settle()
    folder = key_folder(paid.home / "user", key)
    code, out, err = _run(paid, ["ledger", "statement", "--receipts", str(folder)], key)
    assert code == 0 and "removed" not in out + err, out + err
    assert len(_kept(paid, key)) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_hostile_answers_ids_name_no_path_of_the_saved_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """Held 2026-12-05 (hostile29): a gateway's answer whose receipt and ids are paths
    (``../``, absolute, a NUL, a newline) is saved under the CLI's own name in DIR, and
    nothing is written elsewhere (the file is named by the time and a random token); the
    answer's and the ids' escapes do not reach the terminal."""
    import functools

    import httpx

    evil = "../../../escaped\n\x00/etc/passwd"
    receipt = {"request_id": evil, "receipt_hash": "../" * 8 + "x", "version": 3}
    mesh = {"request_id": evil, "ledger_request_id": "/" + evil, "node_id": evil,
            "receipt": receipt}  # fmt: skip
    chunk = {"object": "text_completion", "choices": [{"index": 0, "text": "hi\x1b]0;owned\x07"}]}

    def answer(request: httpx.Request) -> httpx.Response:
        if stream:
            events = [{**chunk}, {**chunk, "choices": [], "mesh": mesh}]
            body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
            return httpx.Response(200, content=body + b"data: [DONE]\n\n",
                                  headers={"content-type": "text/event-stream"})  # fmt: skip
        return httpx.Response(200, json={**chunk, "usage": {}, "mesh": mesh})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(demo, "ask_once", functools.partial(demo.ask_once, http_client=http))
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    folder = tmp_path / "a" / "b" / "saved"
    argv = ["ask", "Q:", "--model", "m", "--registry", "http://127.0.0.1:9", "--save",
            str(folder), *(["--stream"] if stream else [])]  # fmt: skip
    res = runner.invoke(app, argv, env={"LLM_MESH_HOME": str(tmp_path / "home")})
    assert res.exit_code == 0, res.output
    assert "hi" in res.output and not any(c in res.output for c in "\x1b\x07\x00"), res.output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    saved = [p for p in files if p.parent == folder]
    assert len(saved) == 1 and saved[0].name.startswith("receipt-"), files
    assert all(p.parent == folder or (tmp_path / "home") in p.parents for p in files), files
    assert json.loads(saved[0].read_text())["mesh"]["receipt"] == receipt
