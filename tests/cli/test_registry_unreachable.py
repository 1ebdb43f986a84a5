"""A registry that does not answer, said by every command that reads one in the same words
(``cli/common.no_registry_answered``): its URL and what to check, never httpx's bare "All
connection attempts failed" (found 2026-12-06: ``ledger statement`` said only that)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.config import NodeConfig, save_node_config
from tests.core.receipt_verify_fixtures import STD_OK, make_receipt
from tests.waiting import scaled

runner = CliRunner()
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port: refused
DOWN2 = "http://127.0.0.1:7"
CHECK = "is a registry running at"  # the hint for a --registry given
PASS = "pass --registry URL or set LLM_MESH_REGISTRY_URL"  # for none given


def said(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = runner.invoke(
        app,
        [*args, "--home", str(home)],
        env={"COLUMNS": "300", "LLM_MESH_API_KEY": "", **(env or {})},
    )
    return out.exit_code, " ".join(out.output.split())


@pytest.fixture
def receipt(tmp_path: Path) -> Path:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(make_receipt(amounts=[100])))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("ledger", "statement", "--account", "user:abc"),
        ("ledger", "statement", "--account", "user:abc", "--key", STD_OK),
        ("ledger", "statement", "--api-key", "sk-mesh-abc"),
        ("ledger", "verify"),
        ("ledger", "witness"),
    ],
    ids=["statement", "statement-key", "statement-api-key", "verify", "witness"],
)
def test_a_named_registry_that_does_not_answer_is_said_with_what_to_check(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Failed before for the three ``ledger statement`` cases ("error: All connection
    attempts failed", nothing else); ``verify`` and ``witness`` pin the shared words."""
    code, out = said(tmp_path, *args, "--registry", DOWN)
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} (ConnectError" in out, out
    assert f"{CHECK} {DOWN}?" in out, out


def test_every_replica_is_named_when_none_answers(tmp_path: Path) -> None:
    """Failed before: ``ledger statement --registry A,B`` said neither."""
    code, out = said(tmp_path, "ledger", "statement", "--account", "user:abc",
                     "--registry", f"{DOWN},{DOWN2}")  # fmt: skip
    assert code == 1 and f"no LLM Mesh registry answered at {DOWN}, {DOWN2}" in out, out


def test_a_configured_registry_that_does_not_answer_says_how_to_name_one(tmp_path: Path) -> None:
    """Failed before: from ``LLM_MESH_REGISTRY_URL``, no ``--registry``."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "ledger", "statement", "--account", "user:abc", env=env)
    assert code == 1 and f"no LLM Mesh registry answered at {DOWN}" in out and PASS in out, out


def test_receipt_verify_does_not_ask_for_the_registry_it_was_given(
    tmp_path: Path, receipt: Path
) -> None:
    """Failed before: "pass --registry URL, or the keys themselves" to a user who had
    passed --registry (the words of 2026-12-05's fix for `ledger verify`)."""
    code, out = said(tmp_path, "receipt", "verify", str(receipt), "--registry", DOWN)
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} for its keys (ConnectError" in out, out
    assert f"{CHECK} {DOWN}?" in out and "pass --registry" not in out, out
    assert "the keys themselves (--key KEY, --keys FILE) to verify offline" in out, out


def test_receipt_verify_from_the_configured_registry_says_both_ways_on(
    tmp_path: Path, receipt: Path
) -> None:
    """Pins the words with no --registry: name one, or verify offline."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "receipt", "verify", str(receipt), env=env)
    assert code == 1 and PASS in out and "to verify offline" in out, out


def test_receipt_verify_ledger_says_what_to_check_for_its_entries(
    tmp_path: Path, receipt: Path
) -> None:
    """Failed before: the keys given (offline), ``--ledger`` read the configured registry's
    entries and said only "no registry answered at URL for the request's ledger entries
    (ConnectError: ...)", nothing to check."""
    env = {"LLM_MESH_REGISTRY_URL": DOWN}
    code, out = said(tmp_path, "receipt", "verify", str(receipt), "--key", STD_OK, "--ledger",
                     env=env)  # fmt: skip
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN} for the request's ledger entries" in out
    assert PASS in out, out


HASH = "ab" * 32  # a receipt hash (64 lowercase hex)
ADMIN = {"LLM_MESH_ADMIN_KEY": "admin-key-for-the-test"}


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("receipt", "verify", "RECEIPT"), {}),
        (("receipt", "verify", "RECEIPT", "--key", STD_OK, "--ledger"), {}),
        (("receipt", "fetch", HASH, "--api-key", "lmk_" + "k" * 44), {}),
        (("registry", "canary", "run"), ADMIN),
        (("registry", "usage-audit"), ADMIN),
        (("earnings", "--operator-token", "lmo_" + "t" * 40), {}),
    ],
    ids=["receipt-verify", "receipt-verify-ledger", "receipt-fetch", "canary-run", "usage-audit",
         "earnings"],
)  # fmt: skip
@pytest.mark.parametrize("given", ["--registry", "LLM_MESH_REGISTRY_URL"])
def test_these_commands_say_where_the_url_came_from(
    tmp_path: Path, receipt: Path, args: tuple[str, ...], env: dict[str, str], given: str
) -> None:
    """Failed before (cli40; ``earnings``: cli40b): "no LLM Mesh registry answered at URL ..."
    and no word of where the URL came from, which ``status``, ``models``, ``ledger ...`` say
    (``with_source``)."""
    args = tuple(str(receipt) if a == "RECEIPT" else a for a in args)
    if given == "--registry":
        code, out = said(tmp_path, *args, "--registry", DOWN, env=env)
    else:
        code, out = said(tmp_path, *args, env={**env, "LLM_MESH_REGISTRY_URL": DOWN})
    assert code == 1, out
    assert f"no LLM Mesh registry answered at {DOWN}" in out, out
    assert out.endswith(f"; the URL came from {given}"), out


def _node_toml(home: Path, **kw: str) -> Path:
    path = home / "node.toml"
    save_node_config(NodeConfig(engine="sim", models=["m"], registry_url=DOWN, **kw), path)
    path.chmod(0o600)
    return path


def test_earnings_with_node_tomls_registry_says_node_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before (cli40b): the token and the URL from node.toml, and no word of it."""
    for name in ("LLM_MESH_OPERATOR_TOKEN", "LLM_MESH_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    path = _node_toml(tmp_path, operator_token="lmo_" + "t" * 40)
    code, out = said(tmp_path, "earnings")
    assert code == 1 and f"no LLM Mesh registry answered at {DOWN}" in out, out
    assert out.endswith(f"; the URL came from registry_url in {path}: change it there, or "
                        "override it"), out  # fmt: skip


@pytest.mark.parametrize("given", ["--registry", "LLM_MESH_REGISTRY_URL", "node.toml"])
def test_node_start_says_where_the_url_it_cannot_reach_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Failed before (cli40b): the node's log said "registry unreachable at URL:
    ConnectError(...): registering again in 1 s" (what a user of ``node start`` sees while it
    retries), and nothing of where the URL came from. Its first registration, for real, at a
    port nothing listens on; the server is not started (``NodeManager.run`` replaced)."""
    import LLM_Mesh.node_manager as nm

    errors: list[str | None] = []

    def run(self: nm.NodeManager) -> None:
        async def once() -> None:
            await self.service.start()  # its agent registers at once, and fails
            try:
                agent, deadline = self.service.agent, time.monotonic() + scaled(20)
                while agent is not None and agent.last_error is None:
                    assert time.monotonic() < deadline, "no registration tried"
                    await asyncio.sleep(0.02)
                errors.append(agent.last_error if agent else None)
            finally:
                await self.service.stop()

        asyncio.run(once())

    monkeypatch.setattr(nm.NodeManager, "run", run)
    for name in ("LLM_MESH_OPERATOR_TOKEN", "LLM_MESH_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    args, env = ["node", "start", "--engine", "sim", "--model", "m"], {}
    if given == "--registry":
        args += ["--registry", DOWN]
    elif given == "LLM_MESH_REGISTRY_URL":
        env = {"LLM_MESH_REGISTRY_URL": DOWN}
    else:
        given = f"registry_url in {_node_toml(tmp_path)}: change it there, or override it"
    code, out = said(tmp_path, *args, env=env)
    assert code == 0, out
    (error,) = errors
    assert error is not None and f"registry unreachable at {DOWN}: ConnectError" in error
    assert error.endswith(f"; the URL came from {given}"), error


@pytest.mark.parametrize("given", ["--registry", "LLM_MESH_REGISTRY_URL", "node.toml"])
def test_node_plan_says_where_the_url_it_cannot_reach_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Failed before (cli40b): "no demand data: the registry at URL is unreachable
    (ConnectError(...))", nothing of where the URL came from. No socket: every call refused
    (the home's node too), the machine a fixed one."""
    import LLM_Mesh.node.hardware as hw
    from LLM_Mesh.cli import node_clients

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    def client(timeout_s: float = 10.0, registry_ca: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(down))

    monkeypatch.setattr(node_clients, "http_client", client)
    monkeypatch.setattr(hw, "detect_hardware", lambda _home: Hardware(cpu_count=8))
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL", raising=False)
    args, env = ["node", "plan"], {}
    if given == "--registry":
        args += ["--registry", DOWN]
    elif given == "LLM_MESH_REGISTRY_URL":
        env = {"LLM_MESH_REGISTRY_URL": DOWN}
    else:
        given = f"registry_url in {_node_toml(tmp_path)}: change it there, or override it"
    code, out = said(tmp_path, *args, env=env)
    assert code == 0, out
    assert f"no demand data: the registry at {DOWN} is unreachable (ConnectError" in out, out
    assert out.endswith(f"; the URL came from {given}"), out
