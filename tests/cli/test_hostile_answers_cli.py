"""CLI commands printing or reading what a server sent, facing a hostile or broken one:
``receipt verify`` (signed text printed literally, deep JSON a malformed receipt),
``ledger witness --every`` (an answer of another shape: the round fails, the loop goes
on), ``ledger verify --compare`` (a deep checkpoint, a proof of another shape: named).

Found 2026-12-04: Rich markup of a receipt's signed strings read as markup; a
``RecursionError``/``TypeError`` traceback ended each of these commands.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli.ledger_compare import compare_all
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.ledger_witness import run_witness, witness_round
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.checkpoint import Checkpoint
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.receipt import Part, PartStatus, ReceiptSigner
from LLM_Mesh.errors import MeshError

runner = CliRunner()
DEEP = "[" * 50_000
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = base64.b64encode(public_key_of(KEY)).decode()


# --- receipt verify -------------------------------------------------------------------------


def signed_receipt() -> dict[str, Any]:
    """A receipt the registry key really signed, its strings holding Rich markup."""
    part = Part("[bold]node-x[/]", "", PartStatus.MISSING, 3, 4, "0" * 64)
    receipt, h = ReceiptSigner(KEY, lambda: 1_700_000_000.0).countersign(
        "req-[red]forged[/]", "model-[/]", 3, 4, "0" * 64, [part]
    )
    return receipt.to_json(h)


def verify(stdin: str, *args: str) -> Any:
    return runner.invoke(app, ["receipt", "verify", "--key", PUBLIC, *args, "-"], input=stdin)


def test_receipt_verify_prints_the_signed_text_literally() -> None:
    got = verify(json.dumps(signed_receipt()))
    assert got.exit_code == 0, got.output
    text = got.output.replace("\n", "")
    for literal in ("req-[red]forged[/]", "model-[/]", "[bold]node-x[/]"):
        assert literal in text


@pytest.mark.parametrize("when_s", [9e15, 3e11])
def test_receipt_verify_prints_a_signed_time_no_calendar_holds(when_s: float) -> None:
    """Found 2026-12-05: a receipt the registry key signed at ``time_ms`` 9e18 (the signed bytes
    hold it) verified, then ended ``receipt verify`` in ``ValueError: year ... is
    out of range`` (or ``OverflowError``) instead of its verdict and the ledger check."""
    part = Part("node-x", "", PartStatus.MISSING, 3, 4, "0" * 64)
    receipt, h = ReceiptSigner(KEY, lambda: when_s).countersign(
        "req-1", "m", 3, 4, "0" * 64, [part]
    )
    got = verify(json.dumps(receipt.to_json(h)))
    assert not isinstance(got.exception, ValueError | OverflowError | OSError), got.output
    assert got.exit_code in (0, 1), got.output
    if got.exit_code == 0:
        assert "OK" in got.output and "(a time out of range)" in " ".join(got.output.split())


@pytest.mark.parametrize(
    "stdin",
    [
        '{"mesh": {"receipt": ' + DEEP,
        "{" + '"a":' + DEEP,
        "data: {" + '"a":' + DEEP + "\n\n",
        "X-Mesh-Receipt: " + base64.urlsafe_b64encode(DEEP.encode()).decode(),
    ],
    ids=["answer", "object", "stream", "header"],
)
def test_receipt_verify_reads_deep_json_as_a_malformed_receipt(stdin: str) -> None:
    got = verify(stdin)
    assert got.exit_code == 1
    assert "INVALID malformed" in got.output
    assert not isinstance(got.exception, RecursionError)


@pytest.mark.parametrize("listing", [DEEP, '{"data": [1, {"x": 2}]}'])
def test_receipt_verify_names_a_malformed_keys_file(tmp_path: Path, listing: str) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(listing)
    got = runner.invoke(app, ["receipt", "verify", "--keys", str(keys), "-"], input="{}")
    assert got.exit_code == 1
    assert "error:" in got.output and "keys listing" in got.output
    assert not isinstance(got.exception, (RecursionError, KeyError, TypeError))


# --- ledger witness --every -----------------------------------------------------------------

LATEST_OK = {"note": "origin\n1\nAAAA\n\n", "tree_size": 1}
HOSTILE_ROUNDS: dict[str, dict[str, Any]] = {
    "tree_size a list": {"latest": {"note": "x", "tree_size": []}},
    "latest too deep": {"latest": DEEP},
    "latest a list": {"latest": [1]},
    "keys a string": {"latest": LATEST_OK, "keys": {"data": "abc"}},
    "keys too deep": {"latest": LATEST_OK, "keys": DEEP},
}


class Stop(BaseException):
    """Ends the witness's loop after the rounds the test wanted."""


@pytest.mark.parametrize("kind", list(HOSTILE_ROUNDS))
def test_the_witness_loop_logs_a_hostile_answer_and_goes_on(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = HOSTILE_ROUNDS[kind]

    def registry(request: httpx.Request) -> httpx.Response:
        name = "latest" if request.url.path.endswith("/latest") else "keys"
        body = answers[name]
        return httpx.Response(200, content=body if isinstance(body, str) else json.dumps(body))

    rounds = 0

    async def one_round() -> Any:
        nonlocal rounds
        rounds += 1
        if rounds > 3:
            raise Stop
        http = httpx.AsyncClient(
            base_url="http://reg.test", transport=httpx.MockTransport(registry)
        )
        async with http:
            return await witness_round(http, KEY, "w", tmp_path / "state", "origin")

    with pytest.raises(Stop):
        run_witness(tmp_path / "state", tmp_path / "lock", one_round, every=0.001)
    assert rounds == 4  # three rounds failed, each logged, and the loop went on
    assert capsys.readouterr().err.count("round failed") == 3


# --- ledger verify --compare ----------------------------------------------------------------


def source(answer: str) -> HttpSource:
    http = httpx.AsyncClient(
        base_url="http://reg.test",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=answer)),
    )
    return HttpSource(http)


@pytest.mark.parametrize(
    "answer",
    [DEEP, '{"proof": "abcd"}', '{"proof": [1]}', '{"proof": ["zz"]}', "[]", "<html>"],
)
async def test_a_proof_of_another_shape_is_a_mesh_error(answer: str) -> None:
    with pytest.raises(MeshError, match="GET /v1/ledger/proof/consistency"):
        await source(answer).consistency(1, 2)


@pytest.mark.parametrize("answer", ['{"data": "abc"}', '{"data": [{"origin": "o"}]}', DEEP])
async def test_a_key_listing_of_another_shape_is_a_mesh_error(answer: str) -> None:
    with pytest.raises(MeshError, match="GET /v1/ledger/keys"):
        await source(answer).keys()


async def test_a_deep_foreign_checkpoint_is_named(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"note": ' + DEEP)
    ours = Checkpoint("origin", 1, b"\0" * 32, 0, "note")

    async def no_proof(first: int, second: int) -> list[bytes]:
        raise AssertionError("not asked")

    (got,) = await compare_all([str(theirs)], ours, [PUBLIC], no_proof)
    assert not got.ok
    assert "nested too deep" in got.message


@pytest.mark.parametrize("answer", ['{"data": "abc", "has_more": true}', '{"data": [1]}'])
async def test_a_checkpoint_page_of_another_shape_is_a_mesh_error(answer: str) -> None:
    with pytest.raises(MeshError, match="GET /v1/ledger/checkpoints"):
        await source(answer).checkpoints()
