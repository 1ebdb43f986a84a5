"""``llm-mesh ledger statement --operator --served FILE``: what the operator's node served
(its real served log, written by a sim node of ``tests/inprocess_mesh.py``: the real
registry, settlement and public ledger; answers SIMULATED) held against what the whole log
paid the operator's account. Each attack is a registry whose settlement writes a
well-formed, signed log that ``ledger verify`` and ``ledger statement --operator`` pass,
but skips paying a served request, pays it to another account, or pays less than the
published price; the honest history of the same requests passes (found 2026-12-05: an
operator could not tell; nodes kept no record of what they served)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_statement
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry import settle_ledger, settle_sqlite
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.settle_db import Answer
from LLM_Mesh.registry.settlement import user_account
from tests.cli.test_ledger_statement import _give_back, _serve
from tests.inprocess_mesh import InProcessMesh
from tests.keyed import operator_account

runner = CliRunner()
REAL_OPERATOR_ACCOUNT = ledger_statement.operator_account
MODEL = "gemma-3-270m"
HOUR_MS = 3_600_000


class Served:
    """Three answered requests of a keyed user (the last with the client's own id), settled
    by ``transfers`` (the registry's own, or an attack on one request) and checkpointed."""

    def __init__(
        self, mesh: InProcessMesh, home: Path, transfers: Callable[..., Any], fee_bps: int = 500
    ) -> None:
        self.mesh, self.home = mesh, home
        mesh.add_node(MODEL)
        assert mesh.app is not None
        self.rt: Runtime = mesh.app.state.runtime
        assert self.rt.settlement is not None
        self.rt.settlement.fee_bps = fee_bps  # the fee its settlement cuts parts at
        made = mesh.call(create_api_key(mesh.store, name="erin"))
        assert made is not None and self.rt.ledger is not None
        self.key, self.account = made[0], user_account(made[1].key_id)
        mesh.call(self.rt.ledger.append_one(Transfer("grant", MINT, self.account, 1_000_000)))
        self.ledger_ids = []
        honest = settle_ledger.transfers
        for m in (settle_ledger, settle_sqlite):  # PostgreSQL's path and SQLite's
            m.transfers = transfers  # type: ignore[attr-defined]
        try:
            self._run()
        finally:
            for m in (settle_ledger, settle_sqlite):
                m.transfers = honest  # type: ignore[attr-defined]
        self.log = self._aged_log()

    def _run(self) -> None:
        mesh = self.mesh
        for i, extra in enumerate(({}, {}, {"X-Request-Id": "erin-trace-7"})):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"hello {i}"}],
                    "max_tokens": 8}  # fmt: skip
            with mesh.sync_client() as c:
                r = c.post("/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {self.key}", **extra})  # fmt: skip
            assert r.status_code == 200, r.text
            m = r.json()["mesh"]
            self.ledger_ids.append(m.get("ledger_request_id") or m["request_id"])
        assert self.ledger_ids[2].startswith("c-")
        s, cp = self.rt.settlement, self.rt.checkpointer
        assert s is not None and cp is not None
        mesh.call(s.flush())
        mesh.call(_give_back(s))
        mesh.call(s.flush())
        mesh.call(cp.checkpoint())

    def _aged_log(self) -> Path:
        """The node's served log, every record an hour older (past the pending window)."""
        lines = (self.mesh.settings.home / "served.jsonl").read_text().splitlines()
        assert len(lines) == 3 and all("hello" not in ln for ln in lines)
        aged = []
        for ln in lines:
            rec = json.loads(ln)
            rec["time_ms"] -= HOUR_MS
            aged.append(json.dumps(rec))
        out = self.home / "served.jsonl"
        out.write_text("\n".join(aged) + "\n")
        return out


def _attack(on: Callable[[Answer], bool], change: Callable[[Transfer], Transfer | None]) -> Any:
    honest = settle_ledger.transfers

    def transfers(a: Answer, revoked: Collection[str] = ()) -> list[Transfer]:
        out = honest(a, revoked)
        if not on(a):
            return out
        changed = [change(t) if t.kind == "settle" else t for t in out]
        return [t for t in changed if t is not None]

    return transfers


def _client_chosen(a: Answer) -> bool:
    return a.key.startswith("c-")


ATTACKS = {
    "honest": settle_ledger.transfers,
    "skips paying": _attack(_client_chosen, lambda t: None),
    "pays another account": _attack(
        _client_chosen, lambda t: replace(t, to_account=operator_account("mallory"))
    ),
    "pays less": _attack(
        lambda a: not _client_chosen(a), lambda t: replace(t, amount=t.amount - 1)
    ),
}


def _statement(s: Served, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    real = REAL_OPERATOR_ACCOUNT

    async def via_mesh(settings: Any, token: str) -> tuple[str, str | None, str]:
        async with s.mesh.client() as c:
            return await real(settings, token, c)

    monkeypatch.setattr(ledger_statement, "operator_account", via_mesh)
    _serve(monkeypatch, _Shim(s))  # type: ignore[arg-type]
    assert s.mesh.operator_token is not None
    env = {"LLM_MESH_HOME": str(s.home / "operator"), "LLM_MESH_REGISTRY_URL": s.mesh.registry_url,
           "LLM_MESH_OPERATOR_TOKEN": s.mesh.operator_token, "COLUMNS": "300"}  # fmt: skip
    res = runner.invoke(app, ["ledger", "statement", "--operator", *args], env=env)
    return res.exit_code, " ".join(res.output.split())


class _Shim:
    def __init__(self, s: Served) -> None:
        self.mesh = s.mesh


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_what_the_node_served_is_held_against_what_the_ledger_paid(
    inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    s = Served(inprocess_mesh, tmp_path, ATTACKS[attack])
    op = operator_account("inprocess")
    with s.log.open("a") as f:  # a crash's cut last line: named, skipped
        f.write('{"v":1,"time_ms":17')
    code, out = _statement(s, monkeypatch, "--served", str(s.log))
    assert f"statement of {op}" in out
    assert "served: 3 records read, 3 answered requests judged" in out
    if attack == "honest":
        assert code == 0, out
        assert "every request the served logs hold was paid to it" in out
        assert f"skipped: {s.log}:4: not a served record" in out
        return
    assert code == 1, out
    assert "STATEMENT" in out and "MISMATCH" in out
    victim = s.ledger_ids[2] if attack != "pays less" else s.ledger_ids[0]
    node_id = s.mesh.ids[f"node-{MODEL}"]
    assert node_id in out
    if attack == "skips paying":
        assert "no entry of the whole log pays it" in out
    elif attack == "pays another account":
        assert "paid to another account" in out and operator_account("mallory") in out
    else:
        assert "the published price of the tokens served less the 500 bps fee" in out
        assert out.count("STATEMENT ") == 2  # both requests without a client id
    assert victim.startswith("c-") == (attack != "pays less")
    # without the served log the same history passes: nothing else could tell
    code, out = _statement(s, monkeypatch)
    assert code == 0, out


def test_served_goes_with_an_operator_account(tmp_path: Path) -> None:
    log = tmp_path / "served.jsonl"
    log.write_text("")
    env = {"LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_REGISTRY_URL": "http://r.test"}
    for args in (["--account", "user:" + "a" * 24], []):
        res = runner.invoke(app, ["ledger", "statement", "--served", str(log), *args], env=env)
        assert res.exit_code == 1
        assert "--served is for an operator account" in " ".join(res.output.split())
    res = runner.invoke(app, ["ledger", "statement", "--operator", "--operator-token", "lmo_x",
                              "--served", str(tmp_path / "none.jsonl")], env=env)  # fmt: skip
    assert res.exit_code == 1 and "no such file" in res.output


def test_the_fee_is_the_one_the_registry_publishes(
    inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry whose fee is 5000 bps, paying honestly at it: judged by the fee it
    publishes (``GET /v1/pricing``), the statement passes; found 2026-12-05: judged by
    ``--fee-bps``'s default 500, every request looked underpaid."""
    s = Served(inprocess_mesh, tmp_path, settle_ledger.transfers, fee_bps=5000)
    code, out = _statement(s, monkeypatch, "--served", str(s.log))
    assert code == 0, out
    assert "less the 5000 bps fee (the registry publishes now" in out
    code, out = _statement(s, monkeypatch, "--served", str(s.log), "--fee-bps", "500")
    assert code == 1 and "not the 500 bps fee" in out  # the operator's own word


def test_a_fee_lowered_since_does_not_make_older_payments_findings(
    inprocess_mesh: InProcessMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paid honestly at 5000 bps, then the registry's fee lowered to 500: each request's own
    entries state its fee, the price held: listed, not findings (strict with --fee-bps)."""
    s = Served(inprocess_mesh, tmp_path, settle_ledger.transfers, fee_bps=5000)
    assert s.rt.settlement is not None
    s.rt.settlement.fee_bps = 500
    code, out = _statement(s, monkeypatch, "--served", str(s.log))
    assert code == 0, out
    assert out.count("another fee: request") == 3 and "3 requests were paid under another" in out
    code, out = _statement(s, monkeypatch, "--served", str(s.log), "--fee-bps", "500")
    assert code == 1 and out.count("STATEMENT ") == 3
