"""``llm-mesh ask --save DIR``: a keyed user who asks through the CLI keeps each answer's
receipt, so ``ledger statement --receipts DIR`` explains every debit (before, ``ask`` kept
no answer: the statement named each such debit ``NO RECEIPT``, exit 1, found 2026-12-05).
The real registry, settlement and a sim node (``tests/inprocess_mesh.py``, answers
SIMULATED); the saved file holds no prompt and no answer text, mode 0600, in a 0700 DIR."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import demo
from LLM_Mesh.cli.ask_save import save_receipt
from LLM_Mesh.cli.main import app
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


def test_without_save_an_asked_debit_has_no_receipt(paid: Paid) -> None:
    code, out, err = _ask(paid, "plain")
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
    from LLM_Mesh.cli import ask_save

    monkeypatch.setattr(ask_save.secrets, "token_hex", lambda n: "same")
    first = save_receipt(tmp_path, {"mesh": {"receipt": {"a": 1}}}, now=0)
    with pytest.raises(FileExistsError):
        save_receipt(tmp_path, {"mesh": {"receipt": {"a": 2}}}, now=0)
    assert json.loads(first.read_text()) == {"mesh": {"receipt": {"a": 1}}}


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
