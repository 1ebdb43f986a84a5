"""``llm-mesh receipt verify --ledger`` of an answer from a registry run without settlement
(``LLM_MESH_SETTLEMENT=0``): the receipt signs no amounts, nothing is in the ledger.

Found 2026-12-07 (money41): the receipt checked out, "not settled: settlement was off,
nobody was charged", then the command asked the registry's newest checkpoint, of a ledger
that has none, and stopped, exit 1: ``error: GET /v1/ledger/checkpoints/latest answered
404: {"error":...,"code":"no_checkpoint"}``. With no amounts signed there is nothing to
prove in the log: it says so, exit 0.

Found 2026-12-07 (review41c): "not settled" is the registry's signed word per answer, so
that pass must not hold when the registry's own ledger charges the request: a payment entry
of a receipt signed not settled is LEDGER DISAGREES, exit 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import receipt_ledger
from LLM_Mesh.cli.main import app
from LLM_Mesh.cli.render import metrics_line
from tests.inprocess_mesh import InProcessMesh

MODEL = "gemma-3-270m"


@pytest.mark.parametrize("charged", [False, True])
def test_an_unsettled_receipt_with_ledger_passes_saying_nothing_to_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, charged: bool
) -> None:
    mesh = InProcessMesh(tmp_path / "mesh", settlement=False).start()
    try:
        mesh.add_node(MODEL)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        with mesh.sync_client() as c:
            r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["receipt"].get("settled") is False, r.json()["mesh"]["receipt"]
        # what `llm-mesh ask` prints of it (found 2026-12-07, money41b: "cost N µNT" alone)
        assert "(not charged: this registry does not settle)" in metrics_line(r.json()["mesh"])

        async def get(
            client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
        ) -> httpx.Response:
            with mesh.sync_client() as c:
                return c.request(method, url, params=kw.get("params"))

        monkeypatch.setattr(receipt_ledger, "call", get)
        monkeypatch.setattr("LLM_Mesh.cli.receipt_commands.call", get)
        if charged:  # a registry that debits the user under the receipt it signed unpaid
            rh = r.json()["mesh"]["receipt"]["receipt_hash"]
            debit = {"seq": 0, "kind": "settle", "from": "user:" + "a" * 24, "to": "operator:x",
                     "amount": 40, "receipt_hash": rh}  # fmt: skip
            monkeypatch.setattr(
                "LLM_Mesh.cli.receipt_commands.request_entries",
                lambda urls, *a, **kw: (mesh.registry_url, [debit]),
            )
        res = CliRunner().invoke(
            app, ["receipt", "verify", "-", "--registry", mesh.registry_url, "--ledger"],
            input=r.text, env={"LLM_MESH_HOME": str(tmp_path / "user"), "COLUMNS": "200"},
        )  # fmt: skip
        said = " ".join(res.output.split())
        if charged:
            assert res.exit_code == 1, said
            assert "LEDGER DISAGREES entry 0 (settle) takes 40 µNT" in said, said
            assert "nothing to compare" not in said, said
            return
        assert res.exit_code == 0, said
        assert "not settled" in said and "nothing to compare" in said, said
        assert "not proven: that the registry listed all" in said, said  # its page alone
    finally:
        mesh.close()
