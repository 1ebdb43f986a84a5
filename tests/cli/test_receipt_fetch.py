"""``llm-mesh receipt fetch HASH`` (``cli/receipt_fetch.py``): a cut stream's stored receipt
fetched from the in-process mesh (the real gateway, sim nodes: SIMULATED) with the API key
that paid for it, and verified as ``receipt verify`` does; a 404 said as not yours or
unknown, an unreachable registry named, another receipt served under the hash refused."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import receipt_commands, receipt_fetch
from LLM_Mesh.cli.common import replica_memory
from LLM_Mesh.cli.main import app
from LLM_Mesh.client import MeshClient
from LLM_Mesh.config import Settings
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store_cut_receipts import CutReceipt
from tests.cli.registry_404 import NOT_FOUND, serve_http
from tests.inprocess_mesh import InProcessMesh

runner = CliRunner()
MODEL = "gemma-3-270m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 12}


@pytest.fixture
def mesh(inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch) -> InProcessMesh:
    """The mesh, reached by the command's client (the mesh's registry host: any other host
    refuses the connection) and by its keys fetch (``receipt_commands.call``)."""
    inprocess_mesh.add_node(MODEL)
    mesh = inprocess_mesh
    host = httpx.URL(mesh.registry_url).netloc

    class Routed(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.netloc != host:
                raise httpx.ConnectError("nothing listens there", request=request)
            return await mesh.transport().handle_async_request(request)

    def client(settings: Settings) -> MeshClient:  # ``common.keyed_client``'s, routed
        return MeshClient(
            settings.registry_urls, api_key=settings.api_key, memory=replica_memory(settings),
            http_client=httpx.AsyncClient(transport=Routed()),
        )  # fmt: skip

    async def get(_c: httpx.AsyncClient, method: str, url: str, limit: int, **kw: object) -> Any:
        with mesh.sync_client() as c:
            return c.request(method, url)

    monkeypatch.setattr(receipt_fetch, "keyed_client", client)
    monkeypatch.setattr(receipt_commands, "call", get)
    return mesh


def new_key(mesh: InProcessMesh) -> tuple[str, str]:
    """A fresh API key and its account (a stored receipt's payer)."""
    made = mesh.call(create_api_key(mesh.store, name=f"k{time.monotonic_ns()}"))
    assert made is not None
    return made[0], user_account(made[1].key_id)


def a_receipt(mesh: InProcessMesh) -> dict[str, Any]:
    """A countersigned receipt of the mesh's own (an answer's, as a cut stream's is)."""
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    receipt: dict[str, Any] = r.json()["mesh"]["receipt"]
    return receipt


def store(mesh: InProcessMesh, receipt: dict[str, Any], payer: str, under: str = "") -> str:
    """``receipt`` stored as the gateway stores a cut stream's (under its hash, or
    ``under``); the hash it is stored under."""
    h = under or str(receipt["receipt_hash"])
    mesh.call(mesh.store.record_cut_receipts([CutReceipt(h, "led-1", payer, time.time(), receipt)]))
    return h


def fetch(*args: str) -> Any:
    return runner.invoke(app, ["receipt", "fetch", *args], env={"COLUMNS": "400"})


def test_a_stored_receipt_is_fetched_with_its_payers_key_and_verified(
    mesh: InProcessMesh, tmp_path: Path
) -> None:
    key, account = new_key(mesh)
    h = store(mesh, a_receipt(mesh), account)
    saved = tmp_path / "receipt.json"
    res = fetch(h, "--api-key", key, "--registry", mesh.registry_url, "--save", str(saved))
    assert res.exit_code == 0, res.output
    assert f"OK: receipt {h}" in " ".join(res.output.split())
    # found 2026-12-07 (money41b): the file was written, nothing said of it
    assert f"saved the registry's answer to {saved}" in " ".join(res.output.split())
    answer = json.loads(saved.read_text())  # the registry's answer, as served
    assert answer["receipt_hash"] == h and answer["mesh"]["ledger_request_id"] == "led-1"
    again = runner.invoke(app, ["receipt", "verify", str(saved), "--registry", mesh.registry_url])
    assert again.exit_code == 0, again.output


def test_the_replicas_are_tried_in_turn_and_the_key_taken_from_the_environment(
    mesh: InProcessMesh,
) -> None:
    key, account = new_key(mesh)
    h = store(mesh, a_receipt(mesh), account)
    with socket.socket() as s:  # a port nothing listens on: the first replica, down
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    res = runner.invoke(
        app, ["receipt", "fetch", h, "--registry", f"{down},{mesh.registry_url}"],
        env={"COLUMNS": "400", "LLM_MESH_API_KEY": key},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "OK: receipt" in res.output


def test_another_keys_receipt_is_not_yours_or_unknown(mesh: InProcessMesh) -> None:
    _, account = new_key(mesh)
    other, _ = new_key(mesh)
    h = store(mesh, a_receipt(mesh), account)
    for asked in (h, "0" * 64):  # another's, and none stored: the same words
        res = fetch(asked, "--api-key", other, "--registry", mesh.registry_url)
        out = " ".join(res.output.split())
        assert res.exit_code == 1, res.output
        assert f"no receipt {asked} for this API key (404)" in out
        assert "not yours" in out and "unknown there" in out and "Traceback" not in out


def test_a_receipt_served_under_another_hash_is_invalid(mesh: InProcessMesh) -> None:
    key, account = new_key(mesh)
    receipt = a_receipt(mesh)
    h = store(mesh, receipt, account, under="f" * 64)
    res = fetch(h, "--api-key", key, "--registry", mesh.registry_url)
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    assert f"INVALID receipt_hash: the registry answered receipt {receipt['receipt_hash']}" in out


def test_an_unreachable_registry_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    res = fetch("a" * 64, "--api-key", "lmk_" + "x" * 44, "--registry", url)
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    assert "no LLM Mesh registry answered" in out and url in out and "Traceback" not in out


@pytest.mark.parametrize("asked", ["abc", "A" * 64, "g" * 64, "a" * 65])
def test_not_a_hash_is_refused_before_anything_is_sent(asked: str) -> None:
    res = fetch(asked, "--api-key", "lmk_" + "x" * 44, "--registry", "http://127.0.0.1:9")
    assert res.exit_code == 1, res.output
    assert "not a receipt hash" in " ".join(res.output.split())


def test_without_an_api_key_it_says_which_key_serves_it() -> None:
    res = fetch("a" * 64, "--registry", "http://127.0.0.1:9")
    assert res.exit_code == 1, res.output
    assert "served to the API key that paid for it" in " ".join(res.output.split())


ROUTE_404 = (  # the registry's answer for a route it does not serve (``registry/errors.py``)
    b'{"error": {"message": "no endpoint GET /v1/receipts/...: it serves /v1 and /mesh",'
    b' "type": "invalid_request_error", "param": null, "code": null}}'
)


@pytest.mark.parametrize("answer", [NOT_FOUND, ROUTE_404], ids=["a node's 404", "no route"])
def test_a_404_that_is_no_registrys_word_on_the_receipt_is_not_said_as_one(answer: bytes) -> None:
    """``--registry`` naming a node (its 404 ``not_found``) or a server without the route:
    said as that 404, in its words, not as "no receipt ... for this API key: not yours or
    unknown there" (found 2026-12-07, review39: every 404 was said so, the client
    rebuilding ``unknown_receipt`` as ``ModelNotFound`` like any other)."""
    with serve_http((404, answer)) as (url, paths, _):
        res = fetch("a" * 64, "--api-key", "lmk_" + "x" * 44, "--registry", url)
    out = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert paths == ["/v1/receipts/" + "a" * 64]
    assert "not yours" not in out and "for this API key" not in out, out
    assert f"{url} answered 404 for GET /v1/receipts/" in out, out
    assert "not a registry's answer of a receipt" in out, out
    assert json.loads(answer)["error"]["message"][:20] in out, out
