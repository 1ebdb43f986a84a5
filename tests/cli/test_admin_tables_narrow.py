"""``registry operators list`` and ``registry keys list`` at a default terminal (80
columns): the ids an admin copies into the next command stay whole (found 2026-12-04:
rich cut node ids and key ids to ``…``); names are printed literally, never as markup."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.registry.store import SqlStore

runner = CliRunner()
NODES = ["node-abcdefghijklmnopqrstuvwxyz", "node-zyxwvutsrqponmlkjihgfedcba"]


def cli(home: Path, *args: str) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "80"})
    return out.exit_code, out.output


def test_operators_list_keeps_node_ids_whole_at_80_columns(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice-the-operator")[0] == 0

    async def claim() -> None:
        async with SqlStore(Settings(home=home).effective_database_url) as s:
            for i, node in enumerate(NODES):
                await s.claim_node_key(
                    node, f"pk{i}", "alice-the-operator", 1, datetime.now(timezone.utc)
                )

    asyncio.run(claim())
    code, out = cli(home, "registry", "operators", "list")
    assert code == 0, out
    assert "…" not in out
    for whole in (*NODES, "alice-the-operator"):
        assert whole in out, out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_keys_list_keeps_key_ids_whole_and_names_literal_at_80_columns(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(
        home, "registry", "keys", "create", "--name", "[red]ci[/red]", "--avoid-regions",
        "us-east, eu-west, ap-south", "--strict-regions",
    )  # fmt: skip
    assert code == 0, out
    assert "([red]ci[/red]) made" in out and "grant [red]ci[/red] AMOUNT" in out, out
    key_id = re.search(r"key_[0-9a-f]{12}", out)
    assert key_id is not None, out
    code, out = cli(home, "registry", "keys", "list")
    assert code == 0, out
    assert "…" not in out
    assert key_id.group(0) in out and "[red]ci[/red]" in out, out
    assert max(len(line) for line in out.splitlines()) <= 80


DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def test_keys_and_operators_list_keep_dates_whole_at_80_and_160_columns(tmp_path: Path) -> None:
    """found 2026-12-04: at 80 columns the ``made`` column broke its dates mid-word
    (``2026-12-0`` / ``4 15:09``); a revoked key's second date made it worse."""
    home = tmp_path / "mesh"
    for name in ("ci-bot-key", "second-key"):
        args = ["registry", "keys", "create", "--name", name, "--avoid-regions", "us-east,eu-west"]
        assert cli(home, *args)[0] == 0
    assert cli(home, "registry", "keys", "revoke", "second-key")[0] == 0
    assert cli(home, "registry", "operators", "add", "alice-the-operator")[0] == 0
    assert cli(home, "registry", "operators", "revoke", "alice-the-operator")[0] == 0
    for command in (["registry", "keys", "list"], ["registry", "operators", "list"]):
        for columns in ("80", "160"):
            out = runner.invoke(app, [*command, "--home", str(home)], env={"COLUMNS": columns})
            assert out.exit_code == 0, out.output
            lines = out.output.splitlines()
            assert max(len(line) for line in lines) <= int(columns), out.output
            dates = [d for line in lines for d in DATE.findall(line)]
            want = 3 if command[1] == "keys" else 2  # made x2 + revoked; added + revoked
            assert len(dates) == want, out.output  # each date whole, on one line
