"""``llm-mesh receipt verify``: real answers of the in-process mesh (the real gateway and
sim nodes, SIMULATED), checked offline by the CLI; and every input form and key source."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.cli import receipt_commands
from LLM_Mesh.cli.main import app
from LLM_Mesh.cli.receipt_commands import check, keys_from_listing
from LLM_Mesh.core.b64url import ed25519_key_problem
from LLM_Mesh.core.receipt import PartStatus, ReceiptError
from LLM_Mesh.core.receipt_verify import parse_keys
from LLM_Mesh.errors import RegistryUnreachable
from tests.core.key_forms import REFUSED
from tests.hostile_gateway import serve
from tests.inprocess_mesh import InProcessMesh

runner = CliRunner()
MODEL = "gemma-3-270m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 12}


def ask(mesh: InProcessMesh, **extra: Any) -> httpx.Response:
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json={**BODY, **extra})
    assert r.status_code == 200, r.text
    return r


def saved_keys(mesh: InProcessMesh, tmp_path: Path) -> Path:
    with mesh.sync_client() as c:
        r = c.get("/v1/ledger/keys")
    assert r.status_code == 200
    path = tmp_path / "keys.json"
    path.write_text(r.text)
    return path


def verify(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["receipt", "verify", *args], input=stdin)


@pytest.fixture
def mesh(inprocess_mesh: InProcessMesh) -> InProcessMesh:
    inprocess_mesh.add_node(MODEL)
    return inprocess_mesh


def test_a_real_answers_receipt_verifies_with_the_cli_function(
    mesh: InProcessMesh, tmp_path: Path
) -> None:
    r = ask(mesh)
    keys = parse_keys(keys_from_listing(saved_keys(mesh, tmp_path).read_text()))
    receipt = check(r.text, keys, require_signed=True)
    assert receipt.request_id == r.json()["mesh"]["request_id"]
    (part,) = receipt.parts
    assert part.status is PartStatus.SIGNED and part.node_id == mesh.id_of(f"node-{MODEL}")
    assert (receipt.prompt_tokens, receipt.completion_tokens) == (
        r.json()["usage"]["prompt_tokens"],
        r.json()["usage"]["completion_tokens"],
    )
    assert check(r.headers["x-mesh-receipt"], keys).receipt_hash == receipt.receipt_hash


def test_cli_accepts_a_file_stdin_the_header_and_keys_in_every_form(
    mesh: InProcessMesh, tmp_path: Path
) -> None:
    r = ask(mesh)
    keys = saved_keys(mesh, tmp_path)
    answer = tmp_path / "answer.json"
    answer.write_text(r.text)
    res = verify(str(answer), "--keys", str(keys))
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and r.json()["mesh"]["receipt"]["receipt_hash"] in res.output
    assert verify("-", "--keys", str(keys), stdin=r.text).exit_code == 0
    assert verify("-", "--keys", str(keys), stdin=r.headers["x-mesh-receipt"]).exit_code == 0
    key = json.loads(keys.read_text())["data"][0]["public_key"]
    assert verify(str(answer), "--key", key).exit_code == 0
    one_a_line = tmp_path / "keys.txt"
    one_a_line.write_text(f"# the registry\n{key}\n")
    assert verify(str(answer), "--keys", str(one_a_line), "--require-signed").exit_code == 0
    text = tmp_path / "text.txt"
    text.write_text(r.json()["choices"][0]["message"]["content"])
    assert verify(str(answer), "--keys", str(keys), "--output", str(text)).exit_code == 0


def test_cli_fails_with_a_named_reason(mesh: InProcessMesh, tmp_path: Path) -> None:
    r = ask(mesh)
    keys = saved_keys(mesh, tmp_path)
    data = r.json()
    data["mesh"]["receipt"]["completion_tokens"] += 1
    res = verify("-", "--keys", str(keys), stdin=json.dumps(data))
    assert res.exit_code == 1 and "gateway_signature" in res.output
    other = base64.b64encode(bytes(32)).decode()
    res = verify("-", "--key", other, stdin=r.text)
    assert res.exit_code == 1 and "unknown_registry" in res.output
    text = tmp_path / "text.txt"
    text.write_text("not what it said")
    res = verify("-", "--keys", str(keys), "--output", str(text), stdin=r.text)
    assert res.exit_code == 1 and "output_sha256" in res.output
    res = verify("-", "--keys", str(keys), "--request-id", "req-other", stdin=r.text)
    assert res.exit_code == 1 and "request_id" in res.output
    res = verify("-", "--keys", str(keys), stdin=r.headers["x-mesh-receipt"][:40])
    assert res.exit_code == 1 and "malformed" in res.output
    res = verify(str(tmp_path / "nothing.json"), "--keys", str(keys))
    assert res.exit_code == 1 and "error" in res.output


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_client_chosen_id_is_not_what_the_node_signs_and_the_receipt_still_verifies(
    mesh: InProcessMesh, tmp_path: Path, stream: bool
) -> None:
    """The node (a real one, in process) signed a gateway-made ``req-`` id, never the
    client's; ``receipt verify`` on the answer passes, ``--request-id`` naming either."""
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json={**BODY, "stream": stream},
                   headers={"X-Request-Id": "alice-session-42"})  # fmt: skip
    assert r.status_code == 200, r.text
    final = [ln[5:] for ln in r.text.splitlines() if '"receipt"' in ln][-1] if stream else r.text
    got = json.loads(final)["mesh"]
    rid = got["receipt"]["request_id"]
    assert re.fullmatch(r"req-[0-9a-f]{32}", rid), rid
    assert got["request_id"] == "alice-session-42" and got["receipt_request_id"] == rid
    keys = saved_keys(mesh, tmp_path)
    for named in ([], ["--request-id", "alice-session-42"], ["--request-id", rid]):
        res = verify("-", "--keys", str(keys), "--require-signed", *named, stdin=r.text)
        assert res.exit_code == 0, res.output
    res = verify("-", "--keys", str(keys), "--request-id", "bob-1", stdin=r.text)
    assert res.exit_code == 1 and "request_id" in res.output


def _mesh_of(text: str, stream: bool) -> dict[str, Any]:
    final = [ln[5:] for ln in text.splitlines() if '"receipt"' in ln][-1] if stream else text
    return dict(json.loads(final)["mesh"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cli_refuses_a_receipt_pasted_into_the_answer_for_another_client_id(
    mesh: InProcessMesh, tmp_path: Path, stream: bool
) -> None:
    """The paste attack (found 2026-12-03): alice's receipt and mapping moved into bob's
    answer (the same text: a sim node, SIMULATED) passed ``receipt verify``, ``--request-id
    bob`` too. Now exit 1, ``request_id``, naming the signed client id hash."""
    texts = {}
    with mesh.sync_client() as c:
        for mine in ("alice-session-42", "bob-session-7"):
            r = c.post("/v1/chat/completions", json={**BODY, "stream": stream},
                       headers={"X-Request-Id": mine})  # fmt: skip
            assert r.status_code == 200, r.text
            texts[mine] = r.text
    alice, bob = _mesh_of(texts["alice-session-42"], stream), texts["bob-session-7"]
    assert alice["receipt"]["output_sha256"] == _mesh_of(bob, stream)["receipt"]["output_sha256"]
    lines = bob.splitlines() if stream else [bob]
    at = max(i for i, ln in enumerate(lines) if '"receipt"' in ln)
    final = json.loads(lines[at][5:] if stream else lines[at])
    final["mesh"].update(receipt=alice["receipt"], receipt_request_id=alice["receipt_request_id"])
    lines[at] = ("data: " if stream else "") + json.dumps(final)
    pasted = "\n".join(lines) + "\n"
    keys = saved_keys(mesh, tmp_path)
    assert verify("-", "--keys", str(keys), stdin=bob).exit_code == 0  # bob's own: valid
    for named in ([], ["--request-id", "bob-session-7"]):
        res = verify("-", "--keys", str(keys), *named, stdin=pasted)
        assert res.exit_code == 1, res.output
        assert "INVALID request_id" in res.output and "'bob-session-7'" in res.output
        assert "client_id_hash is not the hash of 'bob-session-7'" in " ".join(res.output.split())
    receipt = json.dumps(alice["receipt"])  # alone, it names alice's id, not bob's
    res = verify("-", "--keys", str(keys), "--request-id", "alice-session-42", stdin=receipt)
    assert res.exit_code == 0, res.output
    assert "client's own request id alice-session-42: countersigned" in res.output
    res = verify("-", "--keys", str(keys), "--request-id", "bob-session-7", stdin=receipt)
    assert res.exit_code == 1 and "INVALID request_id" in res.output


def test_a_real_stream_verifies_and_one_changed_byte_fails(
    mesh: InProcessMesh, tmp_path: Path
) -> None:
    r = ask(mesh, stream=True)
    keys = saved_keys(mesh, tmp_path)
    assert verify("-", "--keys", str(keys), "--require-signed", stdin=r.text).exit_code == 0
    final = [ln for ln in r.text.splitlines() if '"receipt"' in ln][-1]
    assert verify("-", "--keys", str(keys), stdin=final).exit_code == 0
    at = re.search(r'"content":"[A-Za-z]', r.text).end() - 1  # a byte of the answer's text
    changed = r.text[:at] + ("X" if r.text[at] != "X" else "Y") + r.text[at + 1 :]
    res = verify("-", "--keys", str(keys), stdin=changed)
    assert res.exit_code == 1 and "output_sha256" in res.output


def test_cli_fetches_the_keys_from_the_registry(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = ask(mesh)
    asked: list[str] = []

    async def get(
        client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: object
    ) -> httpx.Response:
        asked.append(f"{method} {url} {limit}")
        with mesh.sync_client() as c:
            return c.get(url)

    monkeypatch.setattr(receipt_commands, "call", get)
    res = verify("-", "--registry", mesh.registry_url, stdin=r.text)
    assert res.exit_code == 0, res.output
    limit = receipt_commands.KEYS_ANSWER_BYTES
    assert asked == [f"GET {mesh.registry_url}/v1/ledger/keys {limit}"]


def test_the_answers_words_in_a_refusal_are_printed_not_read_as_markup() -> None:
    """A pasted answer's ``mesh.request_id`` is anyone's text, quoted in the refusal: Rich
    markup in it (found 2026-12-03: ``[green]OK[/]`` printed as a green OK) stays text."""
    from tests.core.receipt_verify_fixtures import (
        NODES_ID,
        REGISTRY_KEY,
        make_receipt,
        mapped_answer,
    )

    key = base64.b64encode(REGISTRY_KEY.public_key().public_bytes_raw()).decode()
    forged = mapped_answer(
        make_receipt(request_id=NODES_ID, client_id="alice"), "[green]OK[/] \x1b[2J"
    )
    res = verify("-", "--key", key, stdin=json.dumps(forged))
    assert res.exit_code == 1, res.output
    assert "'[green]OK[/] \\x1b[2J'" in res.output and "\x1b" not in res.output


def test_cli_says_whether_the_client_id_is_signed() -> None:
    """An old version-1 receipt verifies and says its client id link is the answer's word;
    a version-2 one names the client's id countersigned, or none."""
    from tests.core.receipt_verify_fixtures import NODES_ID, REGISTRY_KEY, make_receipt

    key = base64.b64encode(REGISTRY_KEY.public_key().public_bytes_raw()).decode()
    old = (Path(__file__).parents[1] / "core" / "receipt_v1_answer.json").read_text()
    res = verify("-", "--key", key, "--request-id", "alice-session-42", stdin=old)
    assert res.exit_code == 0, res.output
    assert "version 1: no client's own request id is signed" in " ".join(res.output.split())
    made = json.dumps(make_receipt(request_id=NODES_ID))
    res = verify("-", "--key", key, stdin=made)
    assert res.exit_code == 0 and "request id made by the gateway" in res.output


def test_cli_shows_what_the_request_was_charged() -> None:
    """Version 4: the amounts the registry countersigned, in µNT, the request's and each
    part's (its operator's share and the fee); not settled, or an older version: said so.
    An amount changed after the signature: exit 1."""
    from tests.core.receipt_verify_fixtures import NODE_A, NODE_B, REGISTRY_KEY, make_receipt

    key = base64.b64encode(REGISTRY_KEY.public_key().public_bytes_raw()).decode()
    two = [(NODE_B, "The answer ", 2, True), (NODE_A, "is 42.", 2, False)]
    paid = make_receipt(parts=two, amounts=[1045, 20], payer="pool")
    res = verify("-", "--key", key, stdin=json.dumps(paid))
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "charged 1,065 micro-NetworkTokens to the pool payer (network fee 500 bps" in said
    assert "charged 1,045 µNT (992 to its operator, 53 fee)" in said  # 52.25: rounded up
    assert "charged 20 µNT (19 to its operator, 1 fee)" in said
    res = verify("-", "--key", key, stdin=json.dumps(make_receipt()))
    assert res.exit_code == 0 and "not settled: settlement was off" in res.output
    old = (Path(__file__).parents[1] / "core" / "receipt_v2_answer.json").read_text()
    res = verify("-", "--key", key, stdin=old)
    assert res.exit_code == 0 and "version 2: no amounts signed" in res.output
    paid["parts"][1]["amount"] = 21
    res = verify("-", "--key", key, stdin=json.dumps(paid))
    assert res.exit_code == 1 and "INVALID gateway_signature" in res.output


def test_check_raises_receipt_error_for_no_receipt() -> None:
    with pytest.raises(ReceiptError) as exc:
        check('{"choices": []}', {})
    assert exc.value.reason == "malformed"


@pytest.fixture
def hostile() -> Iterator[str]:
    yield from serve()


@pytest.mark.parametrize("kind", ["drip", "bomb"])
def test_the_registrys_keys_are_read_to_a_bound(hostile: str, kind: str) -> None:
    """Found 2026-12-03: ``GET /v1/ledger/keys`` was read whole by ``httpx.get``: a gzip
    bomb inflated in memory, a byte each 0.05 s held ``receipt verify`` as long as the
    registry liked."""
    t0 = time.monotonic()
    with pytest.raises(AnswerRefused, match="not read further"):
        receipt_commands.fetch_keys(f"{hostile}/{kind}", timeout_s=0.5)
    # unbounded, the drip takes 61 s; 30 s leaves room for a loaded CI box (failed once
    # at 5 s with load average 13)
    assert time.monotonic() - t0 < 30.0


def test_a_hung_first_replica_is_left_for_the_next(tmp_path: Path) -> None:
    """Found 2026-12-05: with the first of two replicas stopped (SIGSTOP), ``receipt verify``
    printed ``error: `` (its ``ReadTimeout``) after 30 s, the second replica never asked."""
    with socket.socket() as hung, socket.socket() as closed:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # takes the connection, never answers
        closed.bind(("127.0.0.1", 0))  # refuses it
        urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in (hung, closed)]
        with pytest.raises(RegistryUnreachable, match="ConnectError") as exc:
            receipt_commands.fetch_keys(",".join(urls), timeout_s=0.3)
    assert ", ".join(urls) in str(exc.value)  # both asked, in turn


def test_the_registrys_error_reaches_the_terminal_without_escapes_or_markup(
    hostile: str,
) -> None:
    """Found 2026-12-03: the registry's error answer was printed as Rich markup with its
    ESC sequences (clear the screen, set the title) and a hyperlink."""
    res = verify("-", "--registry", f"{hostile}/evil", stdin="{}")
    assert res.exit_code == 1, res.output
    assert "\x1b" not in res.output and "\x9b" not in res.output, repr(res.output)
    assert "[link=http://evil.test]OK[/link]" in res.output  # shown as text


def test_an_unreachable_registry_is_named_with_the_offline_way() -> None:
    """Found 2026-12-04: ``llm-mesh receipt verify`` with no registry up said "error: All
    connection attempts failed", neither where nor what to do."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = runner.invoke(app, ["receipt", "verify", "-", "--registry", url], input="{}")
    assert out.exit_code == 1, out.output
    assert url in out.output and "--key" in out.output and "offline" in out.output, out.output


@pytest.mark.parametrize(("text", "why"), [f[1:] for f in REFUSED], ids=[f[0] for f in REFUSED])
def test_a_refused_key_is_one_clear_line_the_same_as_ledger_verify_says(
    text: str, why: str
) -> None:
    """``receipt verify --key`` refuses what ``ledger verify --key`` refuses
    (``tests/core/key_forms.py``), in the same words (``core/b64url.ed25519_key_problem``),
    exit 1, no traceback; before anything is read from a registry."""
    res = runner.invoke(
        app, ["receipt", "verify", "-", "--key", text], input="{}", env={"COLUMNS": "400"}
    )
    assert res.exit_code == 1 and not isinstance(res.exception, ValueError), res.output
    out = " ".join(res.output.split())
    problem = ed25519_key_problem(text)
    assert problem is not None and why in problem
    assert " ".join(problem.split()) in out, out
    assert "Traceback" not in res.output


def test_cli_says_when_the_answer_came_from_a_simulated_engine(
    mesh: InProcessMesh, tmp_path: Path
) -> None:
    """found 2026-12-04 (``llm-mesh up --engine sim``): ``receipt verify`` of a sim node's
    answer printed ``OK`` and the node's signed counts, nowhere that the text was made up
    (the answer's ``mesh.simulated``; the receipt itself does not sign it)."""
    keys = saved_keys(mesh, tmp_path)
    for r in (ask(mesh), ask(mesh, stream=True)):
        res = verify("-", "--keys", str(keys), stdin=r.text)
        assert res.exit_code == 0, res.output
        assert "SIMULATED" in res.output and "not signed" in res.output, res.output
    receipt_only = json.dumps(ask(mesh).json()["mesh"]["receipt"])
    res = verify("-", "--keys", str(keys), stdin=receipt_only)  # the receipt does not say
    assert res.exit_code == 0 and "SIMULATED" not in res.output, res.output
