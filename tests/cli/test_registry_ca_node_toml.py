"""Every command that reaches a registry (it takes ``--registry-ca``) trusts the home's
node.toml ``registry_ca`` when neither ``--registry-ca`` nor ``$LLM_MESH_REGISTRY_CA``
names a CA file (those still win), through one code path, ``cli/common.registry_settings``.

Found 2026-12-06 (cli37): cli36 taught ``node start``, ``earnings`` and ``ledger statement
--operator`` to read it; ``ask``, ``status``, ``models``, ``balance``, ``ledger verify``,
``ledger witness``, ``ledger statement`` (without ``--operator``) and ``receipt verify``
in the same node home still failed ``CERTIFICATE_VERIFY_FAILED`` (failed before: no request
reached the registry). A real https server (stdlib, self-signed) answers every path 404:
past the handshake, each command reads that answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.node.config import NodeConfig, save_node_config
from LLM_Mesh.node.tls import make_self_signed
from tests.cli.registry_404 import serve_https

runner = CliRunner()


@pytest.fixture
def https_registry(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    with serve_https(tmp_path) as served:
        yield served


def _node_home(home: Path, url: str, ca: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    save_node_config(
        NodeConfig(engine="sim", models=["mistral-7b"], registry_url=url, registry_ca=ca),
        home / "node.toml",
    )
    return home


def _run(
    home: Path, command: list[str], url: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    base = {"COLUMNS": "300", "LLM_MESH_HOME": str(home), "LLM_MESH_REGISTRY_CA": "",
            "LLM_MESH_REGISTRY_URL": "", "LLM_MESH_API_KEY": ""}  # fmt: skip
    out = runner.invoke(app, [*command, "--registry", url], env={**base, **(env or {})}, input="{}")
    return out.exit_code, " ".join(out.output.split())


COMMANDS = {
    "ask": ["ask", "hi"],
    "status": ["status"],
    "models": ["models"],
    "balance": ["balance"],
    "ledger-verify": ["ledger", "verify"],
    "ledger-witness": ["ledger", "witness"],
    "ledger-statement": ["ledger", "statement", "--account", "user:a"],
    "receipt-verify": ["receipt", "verify", "-"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_node_homes_registry_ca_is_trusted(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str]
) -> None:
    url, cert, paths = https_registry
    home = _node_home(tmp_path / "mesh", url, str(cert))
    _, said = _run(home, command, url)
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert paths, said  # a request reached the registry, past TLS


def test_relative_registry_ca_is_under_the_home(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, cert, paths = https_registry
    home = tmp_path / "mesh"
    home.mkdir()
    (home / "ca.pem").write_bytes(cert.read_bytes())
    _node_home(home, url, "ca.pem")
    _, said = _run(home, ["status"], url)
    assert paths and "CERTIFICATE_VERIFY_FAILED" not in said, said


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("command", [["ask", "hi"], ["status"], ["ledger", "verify"]],
                         ids=["ask", "status", "ledger-verify"])  # fmt: skip
def test_the_flag_and_the_variable_still_win(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str], how: str
) -> None:
    """Another CA named by ``--registry-ca`` or ``$LLM_MESH_REGISTRY_CA``: that one is
    trusted, not node.toml's, so the self-signed registry is refused, nothing sent."""
    url, cert, paths = https_registry
    other = tmp_path / "other.crt"
    make_self_signed(other, tmp_path / "other.key", ["127.0.0.1"])
    home = _node_home(tmp_path / "mesh", url, str(cert))
    env = {"LLM_MESH_REGISTRY_CA": str(other)} if how == "env" else {}
    flag = ["--registry-ca", str(other)] if how == "flag" else []
    code, said = _run(home, [*command, *flag], url, env)
    assert code == 1 and not paths, said
    assert "CERTIFICATE_VERIFY_FAILED" in said, said


def test_a_registry_ca_that_cannot_be_used_names_node_toml(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, _, paths = https_registry
    home = _node_home(tmp_path / "mesh", url, str(tmp_path / "missing.pem"))
    code, said = _run(home, ["ask", "hi"], url)
    assert code == 1 and not paths, said
    assert f"registry_ca in {home / 'node.toml'}" in said and "Traceback" not in said, said


def test_a_home_without_node_toml_is_as_before(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, _, paths = https_registry
    home = tmp_path / "plain"
    home.mkdir()
    code, said = _run(home, ["status"], url)
    assert code == 1 and not paths and "CERTIFICATE_VERIFY_FAILED" in said, said


def test_node_plan_trusts_the_node_homes_registry_ca(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    """Found 2026-12-06 (review38): ``node plan`` reads node.toml (its models, its registry
    URL) but asked that registry's ``/mesh/demand`` trusting ``$LLM_MESH_REGISTRY_CA``
    only: in a node home whose node.toml names the CA it said "no demand data: the registry
    ... is unreachable (... CERTIFICATE_VERIFY_FAILED ...)" and ranked without demand."""
    url, cert, paths = https_registry
    home = _node_home(tmp_path / "mesh", url, str(cert))
    _, said = _run(home, ["node", "plan"], url)
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert "/mesh/demand" in paths, said  # past TLS: the 404 is read


def test_node_plan_with_another_ca_named_still_fails_closed(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, cert, paths = https_registry
    other = tmp_path / "other.crt"
    make_self_signed(other, tmp_path / "other.key", ["127.0.0.1"])
    home = _node_home(tmp_path / "mesh", url, str(cert))
    _, said = _run(home, ["node", "plan"], url, {"LLM_MESH_REGISTRY_CA": str(other)})
    assert not paths and "CERTIFICATE_VERIFY_FAILED" in said, said


# the admin commands that ask a running registry over http(s) (the admin key,
# ``$LLM_MESH_ADMIN_KEY`` here: a node's home holds no admin.key)
ADMIN_COMMANDS = {
    "canary-run": ["registry", "canary", "run"],
    "usage-audit": ["registry", "usage-audit"],
}
ADMIN_ENV = {"LLM_MESH_ADMIN_KEY": "lma_" + "a" * 43}


@pytest.mark.parametrize("command", ADMIN_COMMANDS.values(), ids=ADMIN_COMMANDS.keys())
def test_admin_commands_trust_the_homes_registry_ca(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str]
) -> None:
    """Found 2026-12-06 (ratelimit38): ``registry canary run`` and ``registry usage-audit``
    read ``$LLM_MESH_REGISTRY_CA`` only (no ``--registry-ca``, no node.toml): an operator
    running a node and the registry on one machine, in the node's home, got
    ``CERTIFICATE_VERIFY_FAILED``. ``registry quarantines`` reads the store, not a
    registry over http(s): no CA to trust."""
    url, cert, paths = https_registry
    home = _node_home(tmp_path / "mesh", url, str(cert))
    _, said = _run(home, command, url, ADMIN_ENV)
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert paths, said  # a request reached the registry, past TLS


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("command", ADMIN_COMMANDS.values(), ids=ADMIN_COMMANDS.keys())
def test_admin_commands_the_flag_and_the_variable_win(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str], how: str
) -> None:
    url, cert, paths = https_registry
    other = tmp_path / "other.crt"
    make_self_signed(other, tmp_path / "other.key", ["127.0.0.1"])
    home = _node_home(tmp_path / "mesh", url, str(cert))
    env = {**ADMIN_ENV, "LLM_MESH_REGISTRY_CA": str(other)} if how == "env" else ADMIN_ENV
    flag = ["--registry-ca", str(other)] if how == "flag" else []
    code, said = _run(home, [*command, *flag], url, env)
    assert code == 1 and not paths, said
    assert "CERTIFICATE_VERIFY_FAILED" in said, said
