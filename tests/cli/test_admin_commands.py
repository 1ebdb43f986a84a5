"""``llm-mesh registry operators|nodes`` and ``llm-mesh node keys init``: in-process, on a
SQLite store in the test's home (the same store a registry there would use)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.registry.store import SqlStore

runner = CliRunner()


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = runner.invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200", **(env or {})})
    return out.exit_code, out.output


def store_of(home: Path) -> SqlStore:
    return SqlStore(Settings(home=home).effective_database_url)


async def _operator_hashes(home: Path) -> dict[str, str]:
    async with store_of(home) as s:
        return {op.name: op.token_hash for op in await s.list_operators()}


def test_operators_add_prints_the_token_once_and_stores_its_hash(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "operators", "add", "alice")
    assert code == 0, out
    token = next(line.strip() for line in out.splitlines() if line.startswith("lmo_"))
    assert "admin key" in out  # made for this store, shown once
    assert (home / "admin.key").stat().st_mode & 0o777 == 0o600
    assert asyncio.run(_operator_hashes(home)) == {"alice": hash_secret(token)}
    code, out = cli(home, "registry", "operators", "add", "alice")
    assert code == 1 and "exists" in out
    code, out = cli(home, "registry", "operators", "list")
    assert code == 0 and "alice" in out and token not in out and "admin key" not in out


def test_operators_set_uptime_nodes_sets_the_operators_uptime_cap(tmp_path: Path) -> None:
    """The admin's per-operator uptime cap (``operators.uptime_nodes``; the reward close
    reads it: tests/registry/test_rewards_cap.py); ``default`` follows the registry's
    ``LLM_MESH_REWARD_UPTIME_NODES``."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    assert re.search(r"alice +│.*│ default +│", cli(home, "registry", "operators", "list")[1])
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "10")
    assert code == 0 and "uptime cap 10 nodes' worth per reward period" in out, out
    assert re.search(r"alice +│.*│ 10 +│", cli(home, "registry", "operators", "list")[1])

    async def caps() -> dict[str, int | None]:
        async with store_of(home) as s:
            return {op.name: op.uptime_nodes for op in await s.list_operators()}

    assert asyncio.run(caps()) == {"alice": 10}
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "0")
    assert code == 0 and "no uptime cap" in out
    assert re.search(r"alice +│.*│ no cap +│", cli(home, "registry", "operators", "list")[1])
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "default")
    assert code == 0 and asyncio.run(caps()) == {"alice": None}
    code, out = cli(home, "registry", "operators", "set", "ghost", "--uptime-nodes", "3")
    assert code == 1 and "no operator" in out
    for bad in ("-1", "1.5", "lots"):
        code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", bad)
        assert code == 2 and "whole number" in out, (bad, out)
    assert asyncio.run(caps()) == {"alice": None}


def test_revoke_operator_and_node(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0

    async def claim() -> None:
        async with store_of(home) as s:
            await s.claim_node_key("node-x", "pk", "alice", 1, datetime.now(timezone.utc))
            await s.claim_node_key("node-y", "pk2", "alice", 1, datetime.now(timezone.utc))

    asyncio.run(claim())
    code, out = cli(home, "registry", "operators", "list")
    assert "node-x" in out and "node-y" in out  # a node id a line
    code, out = cli(home, "registry", "nodes", "revoke", "node-x")
    assert code == 0 and "revoked" in out
    # found 2026-12-03: the list showed a revoked node as any other of the operator's
    assert re.search(
        r"node-x \(revoked\) +│\n.*node-y", cli(home, "registry", "operators", "list")[1]
    )
    assert cli(home, "registry", "nodes", "revoke", "node-ghost")[0] == 1
    code, out = cli(home, "registry", "operators", "revoke", "alice")
    assert code == 0 and "node-x, node-y" in out
    assert cli(home, "registry", "operators", "revoke", "nobody")[0] == 1

    async def revoked() -> list[str]:
        async with store_of(home) as s:
            return await s.revoked_nodes_since(datetime(2000, 1, 1, tzinfo=timezone.utc))

    assert asyncio.run(revoked()) == ["node-x", "node-y"]


@pytest.mark.parametrize("where", ["env", "file"])
def test_admin_commands_need_the_stores_admin_key(tmp_path: Path, where: str) -> None:
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    if where == "env":
        code, out = cli(home, "registry", "operators", "list", env={"LLM_MESH_ADMIN_KEY": "wrong"})
    else:
        (home / "admin.key").write_text("lma_wrong\n")
        code, out = cli(home, "registry", "operators", "list")
    assert code == 1 and "admin key" in out
    assert cli(home, "registry", "nodes", "revoke", "x", env={"LLM_MESH_ADMIN_KEY": "no"})[0] == 1


def test_node_keys_init_makes_the_key_once(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(home, "node", "keys", "init")
    assert code == 0 and "made" in out
    key = home / "node.key"
    assert key.stat().st_mode & 0o777 == 0o600
    first = key.read_bytes()
    node_id = next(line for line in out.splitlines() if line.startswith("node id: "))
    code, out = cli(home, "node", "keys", "init")
    assert code == 0 and "exists" in out and node_id in out
    assert key.read_bytes() == first  # never overwritten
    key.write_text("not a key")
    code, out = cli(home, "node", "keys", "init")
    assert code == 1 and "never overwritten" in out
    assert key.read_text() == "not a key"


# --- client API keys -----------------------------------------------------------------------


def _key_from(out: str) -> str:
    return next(line.strip() for line in out.splitlines() if line.startswith("lmk_"))


def test_keys_create_out_of_fresh_ids_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every draw an id already taken: ``keys create`` ended in a RuntimeError traceback
    (found 2026-12-05, review29); one line that says what happened and what to do."""
    from LLM_Mesh.registry import api_keys

    home = tmp_path / "mesh"
    code, out = cli(home, "registry", "keys", "create", "--name", "first")
    assert code == 0, out
    taken = _key_from(out)[4:]
    monkeypatch.setattr(api_keys.secrets, "token_urlsafe", lambda _n: taken)
    code, out = cli(home, "registry", "keys", "create", "--name", "second")
    assert code == 1, out
    assert "Traceback" not in out and "RuntimeError" not in out
    assert "error:" in out and "try again" in out and "8" in out, out


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    code, out = cli(
        home, "registry", "keys", "create", "--name", "ci", "--rpm", "30", "--tpm", "5000",
        "--avoid-regions", "us, eu", "--strict-regions",
    )  # fmt: skip
    assert code == 0, out
    key = _key_from(out)

    async def stored() -> list[tuple[str | None, str, int | None, int | None, list[str], bool]]:
        async with store_of(home) as s:
            return [
                (k.name, k.key_hash, k.rpm, k.tpm, k.avoid_regions, k.strict_regions)
                for k in await s.list_api_keys()
            ]

    assert asyncio.run(stored()) == [("ci", hash_secret(key), 30, 5000, ["eu", "us"], True)]
    code, out = cli(home, "registry", "keys", "create", "--name", "ci")
    assert code == 1 and "exists" in out
    assert cli(home, "registry", "keys", "create", "--rpm", "0")[0] != 0  # at least 1
    code, out = cli(home, "registry", "keys", "list")
    assert code == 0 and "ci" in out and "eu, us (strict)" in out and key not in out
    code, out = cli(home, "registry", "keys", "revoke", "ci")
    assert code == 0 and "revoked" in out
    code, out = cli(home, "registry", "keys", "list")
    assert "UTC" in out.split("ci", 1)[1]  # a revocation time
    assert cli(home, "registry", "keys", "revoke", "nobody")[0] == 1
    code, out = cli(home, "registry", "keys", "create", "--name", "open", "--allow-keep")
    assert code == 0, out

    async def keeping() -> dict[str | None, bool]:
        async with store_of(home) as s:
            return {k.name: k.allow_prompt_keeping for k in await s.list_api_keys()}

    assert asyncio.run(keeping()) == {"ci": False, "open": True}
    code, out = cli(home, "registry", "keys", "list")
    assert "nodes keeping prompts allowed" in out.split("open", 1)[1], out
    code, out = cli(home, "registry", "keys", "list", env={"LLM_MESH_ADMIN_KEY": "wrong"})
    assert code == 1 and "admin key" in out


async def test_a_key_revoked_with_the_cli_is_refused_by_the_running_registry(
    tmp_path: Path,
) -> None:
    from tests.registry.helpers import ADMIN_KEY, running

    home = tmp_path / "mesh"
    home.mkdir()
    env = {"LLM_MESH_ADMIN_KEY": ADMIN_KEY}
    store = SqlStore(Settings(home=home).effective_database_url)
    async with running(home, store=store) as h:  # type: ignore[arg-type]
        await h.register("a")
        code, out = await asyncio.to_thread(cli, home, "registry", "keys", "create", env=env)
        assert code == 0, out
        key = _key_from(out)
        auth = {"Authorization": f"Bearer {key}"}
        body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
        key_id = out.split("API key ", 1)[1].split()[0]
        # a new key's balance is 0 (402); the admin grants it one
        code, out = await asyncio.to_thread(
            cli, home, "registry", "grant", key_id, "10000000", env=env
        )
        assert code == 0, out
        assert (
            await h.client.post("/v1/chat/completions", json=body, headers=auth)
        ).status_code == 200
        code, out = await asyncio.to_thread(
            cli, home, "registry", "keys", "revoke", key_id, env=env
        )
        assert code == 0, out
        await h.runtime.keys.poll()  # what the registry's loop does every second
        r = await h.client.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_operators_set_says_the_cap_in_words_and_the_largest_number(tmp_path: Path) -> None:
    """Found 2026-12-05 (newuser31): ``--uptime-nodes 0`` said "uptime cap none per reward
    period", ``default`` "uptime cap the registry's setting per reward period", and
    ``--uptime-nodes 9999999`` "takes a whole number" of a whole number (the limit unsaid)."""
    home = tmp_path / "mesh"
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "0")
    assert code == 0 and "operator alice: no uptime cap" in out, out
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "default")
    said = " ".join(out.split())
    assert code == 0 and "uptime cap: the registry's LLM_MESH_REWARD_UPTIME_NODES" in said, out
    code, out = cli(home, "registry", "operators", "set", "alice", "--uptime-nodes", "9999999")
    assert code == 2 and "up to 999999" in " ".join(out.split()), out


@pytest.mark.parametrize(
    "args",
    [
        ("registry", "operators", "add", "alice"),
        ("registry", "keys", "create", "--name", "ci"),
        ("registry", "grant", "alice", "100"),
    ],
)
def test_no_new_sqlite_store_in_a_home_whose_registry_serves_another(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Found 2026-12-07 (newuser43): in a PostgreSQL replica's home (its start leaves
    ``ledger.checkpoint``, no ``registry.db``), ``registry operators add NAME`` without the
    database URL made a new SQLite store there, exit 0; the registry refused the token."""
    home = tmp_path / "replica"
    home.mkdir(mode=0o700)
    (home / "ledger.checkpoint").write_text("{}")
    code, out = cli(home, *args)
    assert code == 1, out
    assert "registry.db does not exist, yet a registry ran in this home" in out
    assert "--database-url or LLM_MESH_DATABASE_URL" in out
    assert not (home / "registry.db").exists()
    (home / "ledger.checkpoint").rename(home / "ledger.checkpoint.aside")  # on purpose: made
    assert cli(home, "registry", "operators", "add", "alice")[0] == 0
    assert (home / "registry.db").exists()


def test_a_new_sqlite_store_is_said_with_where_a_registry_must_serve_it(tmp_path: Path) -> None:
    """Found 2026-12-07 (newuser45): an admin whose registry runs with another home (`up
    --home X`) ran `registry operators add bob` in a new shell (its default home, empty): a
    new store was made there, the token printed, exit 0, and only "made this store's admin
    key" hinted at it; the running registry then refused bob's node (401, unknown token)."""
    home = tmp_path / "fresh"
    code, out = cli(home, "registry", "operators", "add", "bob")
    said = " ".join(out.split())
    assert code == 0 and "lmo_" in out, out
    assert f"note: no store was in {home}: made a new one, {home}/registry.db" in said, out
    assert f"llm-mesh registry serve --home {home}" in said
    assert "run this command with its home (--home or LLM_MESH_HOME)" in said
    code, out = cli(home, "registry", "operators", "add", "carol")  # the store is there now
    assert code == 0 and "note:" not in out, out
