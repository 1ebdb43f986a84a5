"""The admin's view of quarantines: ``llm-mesh registry quarantines`` (the store: node,
model, since, why, held earnings, what to run) and ``llm-mesh registry usage-audit``
(``GET /mesh/usage-audit``: each node's shares against its peers', the recent verdicts),
at a default terminal (80 columns: ids whole), the registry's words printed literally."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import LLM_Mesh.client
from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.core.usage_audit import AuditVerdict
from LLM_Mesh.registry.held import store_ledger
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE
from tests.keyed import held_account

runner = CliRunner()
USER = pseudonym("user", "key-1")
N1 = "node-abcdefghijklmnopqrstuvwxyz"  # 31 characters: a real node id's length
N2 = "node-zyxwvutsrqponmlkjihgfedcba"
AUDIT = AuditVerdict(N1, "qwen2.5-0.5b-instruct", "completion", 1.0, 0.31, 3, 240).describe()
DEPARTURES = (
    "canary: sampled_departures: log-likelihood ratio 12.5 ≥ 9.2 (honest chance ≤ e^-9.2 "
    "a run) over 40 sampled probes, 30 leaving the reference's arg max (5 at the first token)"
)


def cli(home: Path, *args: str, columns: int = 80) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": str(columns)})
    return out.exit_code, out.output


def _setup(home: Path) -> None:
    """Operator alice: N1 quarantined by the usage audit holding 900 µNT, N2 by the
    departures test, holding nothing yet."""
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0

    async def go() -> None:
        async with SqlStore(Settings(home=home).effective_database_url) as s:
            now = datetime.now(timezone.utc)
            ledger = store_ledger(s)
            await ledger.append_one(Transfer("grant", MINT, USER, 100_000))
            for node_id, reason in ((N1, AUDIT), (N2, DEPARTURES)):
                await s.claim_node_key(node_id, f"pk-{node_id}", "alice", 1, now)
                await s.record_canary(
                    node_id, "qwen2.5-0.5b-instruct", ok=False, reason=reason, at=now
                )
            await ledger.append_one(Transfer("hold", USER, held_account(N1), 900, "r-1"))

    asyncio.run(go())


def test_quarantines_lists_each_with_its_reason_and_held_earnings(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _setup(home)
    code, out = cli(home, "registry", "quarantines")
    assert code == 0, out
    assert N1 in out and N2 in out  # whole, to copy into `nodes clear`
    flat = " ".join(out.split())
    assert "usage_audit completion" in flat and "canary sampled_departures" in flat
    assert "0.31" in flat and "log-likelihood ratio 12.5" in flat  # the evidence, whole
    assert "held µNT 900" in flat  # N1's held earnings
    assert "llm-mesh registry nodes clear NODE_ID" in flat
    assert "llm-mesh registry usage-audit" in flat  # where the audit's shares are
    assert max(len(line) for line in out.splitlines()) <= 80
    cli(home, "registry", "nodes", "clear", N1)
    code, out = cli(home, "registry", "quarantines")
    assert code == 0 and N1 not in out and N2 in out


def test_quarantines_says_when_there_are_none(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "mesh", "registry", "quarantines")
    assert code == 0 and "no node is quarantined" in out


class Audit:
    """MeshClient's stand-in: answers ``usage_audit`` with ``answer``."""

    answer: ClassVar[Any] = {}

    def __init__(self, *_a: Any, **_kw: Any) -> None:
        pass

    async def __aenter__(self) -> Audit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def usage_audit(self) -> Any:
        return self.answer


def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: Any, *args: str) -> Any:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "admin.key").write_text("local-mesh-admin-key-0123456789\n")
    (home / ADMIN_KEY_REGISTRY_FILE).write_text(f"http://127.0.0.1:8800\nkey={'A' * 43}\n")
    Audit.answer = answer
    monkeypatch.setattr(LLM_Mesh.client, "MeshClient", Audit)
    return runner.invoke(
        app, ["registry", "usage-audit", *args, "--home", str(home)], env={"COLUMNS": "80"}
    )


def _row(node: str, share: float | None) -> dict[str, Any]:
    return {
        "node_id": node, "model": "qwen2.5-0.5b-instruct", "requests": 240,
        "peer_requests": 700, "open_window_requests": 3, "completion_share": share,
        "peers_completion_share": 0.31, "prompt_share": 0.2, "peers_prompt_share": 0.19,
        "peers": 3,
    }  # fmt: skip


ANSWER = {
    "policy": {"min_requests": 200, "factor": 2.0, "min_peers": 2, "bucket_s": 600.0},
    "nodes": [_row(N1, 1.0), _row(N2, None)],
    "verdicts": [
        {"node_id": N1, "model": "qwen2.5-0.5b-instruct", "kind": "completion", "share": 1.0,
         "peers_median": 0.31, "peers": 3, "requests": 240, "reason": AUDIT},
    ],
}  # fmt: skip


def test_usage_audit_shows_shares_peers_and_verdicts_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = audit(tmp_path, monkeypatch, ANSWER)
    assert out.exit_code == 0, out.output
    assert N1 in out.output and N2 in out.output  # whole
    flat = " ".join(out.output.split())
    assert "1.00" in flat and "0.31" in flat and "240" in flat  # share, peers' median, answers
    assert "over 2.0 times" in flat  # the rule, so the admin can judge the numbers
    assert "median 0.31 in the same time windows" in flat  # the verdict, whole
    assert max(len(line) for line in out.output.splitlines()) <= 80
    only = audit(tmp_path, monkeypatch, ANSWER, "--node", N2)
    assert N2 in only.output and N1 not in only.output
    assert "this replica's answers since it started" in flat  # no "evidence": in memory
    shared = audit(tmp_path, monkeypatch, {**ANSWER, "evidence": "store"})
    assert "every replica's answers, the store's evidence" in " ".join(shared.output.split())


@pytest.mark.parametrize(
    "odd",
    [[], "x", {"nodes": "x", "verdicts": [3, None]}, {"nodes": [{"node_id": "[red]x[/red]"}]}],
)
def test_usage_audit_odd_answers_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: Any
) -> None:
    out = audit(tmp_path, monkeypatch, odd)
    assert out.exit_code == 0, out.output
    if isinstance(odd, dict) and odd.get("nodes") != "x":
        assert "[red]x[/red]" in out.output  # literally, not markup


def test_the_nodes_listing_says_why_a_node_is_quarantined() -> None:
    """``llm-mesh status`` (the admin's and the public listing): the reason's kind beside
    each quarantined model, at 80 columns and wide (found 2026-12-05: the models only)."""
    from rich.console import Console

    from LLM_Mesh.cli.render import nodes_table

    node = {
        "node_id": N1, "healthy": True, "health_score": 1.0, "models": [],
        "trust_score": 0.0, "quarantined": [
            {"model": "m1", "since": None, "reason": AUDIT},
            {"model": "m2", "since": None, "reason": DEPARTURES},
        ],
    }  # fmt: skip
    for width in (80, 140):
        c = Console(width=width, record=True)
        c.print(nodes_table([node], width=width))
        flat = " ".join(c.export_text().split())
        assert "m1 (usage_audit" in flat and "sampled_departures)" in flat, flat  # a cell wraps


def test_the_operators_held_note_names_every_way_to_be_quarantined() -> None:
    """``llm-mesh earnings``: earnings held after the usage audit or the departures test
    too, and where the operator reads why (found 2026-12-05: "after a failed canary probe"
    only, for a node the usage audit quarantined)."""
    from LLM_Mesh.cli.earnings_render import held_note

    note = " ".join(held_note({"held": 900, "held_by_node": {N1: 900}}).split())
    assert N1 in note and "900" in note
    assert "usage audit" in note and "llm-mesh node info" in note
