"""node.toml's ``registry_ca``: the CA of an https registry with a private CA, kept where the
node's other settings are, and trusted by ``llm-mesh earnings`` and ``node start`` in that
home when neither ``--registry-ca`` nor ``$LLM_MESH_REGISTRY_CA`` names one (the flag wins).

Found 2026-12-06 (cli36, the previous session's "known open"): node.toml had no such key, so
``llm-mesh earnings`` in a node's home failed ``CERTIFICATE_VERIFY_FAILED`` unless
``--registry-ca`` was given every time (and a node.toml naming one was refused: "unknown
keys registry_ca"). A real https server (stdlib, self-signed) answers every path 404: past
the handshake, ``earnings`` says "answered 404"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


TOKEN = "lmo_" + "a" * 40


def _node_home(home: Path, url: str, ca: str | None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    save_node_config(
        NodeConfig(engine="sim", models=["mistral-7b"], operator_token=TOKEN,
                   registry_url=url, registry_ca=ca),
        home / "node.toml",
    )  # fmt: skip
    (home / "node.toml").chmod(0o600)


def _earnings(home: Path, *args: str) -> tuple[int, str]:
    env = {"COLUMNS": "300", "LLM_MESH_HOME": str(home), "LLM_MESH_REGISTRY_CA": "",
           "LLM_MESH_REGISTRY_URL": "", "LLM_MESH_OPERATOR_TOKEN": ""}  # fmt: skip
    out = runner.invoke(app, ["earnings", *args], env=env)
    return out.exit_code, " ".join(out.output.split())


def test_earnings_in_a_node_home_trusts_node_tomls_registry_ca(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    """Failed before: "unknown keys registry_ca" (and without the key: the handshake
    failed, no request reached the registry)."""
    url, cert, paths = https_registry
    _node_home(tmp_path / "mesh", url, str(cert))
    code, said = _earnings(tmp_path / "mesh")
    assert "CERTIFICATE_VERIFY_FAILED" not in said and "unknown keys" not in said, said
    assert paths == ["/v1/earnings?days=30"], said  # past TLS, with node.toml's token
    assert code == 1 and said == "error: no", said  # the 404 answer's message


def test_a_relative_registry_ca_is_under_the_home(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    url, cert, paths = https_registry
    home = tmp_path / "mesh"
    home.mkdir()
    (home / "ca.pem").write_bytes(cert.read_bytes())
    _node_home(home, url, "ca.pem")
    _, said = _earnings(home)
    assert paths and "CERTIFICATE_VERIFY_FAILED" not in said, said


def test_the_flag_still_wins_over_node_toml(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]]
) -> None:
    """``--registry-ca`` names another CA: that one is trusted, not node.toml's (so the
    self-signed registry is refused), and the refusal names the flag, not "no registry"."""
    url, cert, paths = https_registry
    other, other_key = tmp_path / "other.crt", tmp_path / "other.key"
    make_self_signed(other, other_key, ["127.0.0.1"])
    _node_home(tmp_path / "mesh", url, str(cert))
    code, said = _earnings(tmp_path / "mesh", "--registry-ca", str(other))
    assert code == 1 and not paths, said
    assert "CERTIFICATE_VERIFY_FAILED" in said and "--registry-ca" in said, said


def test_a_registry_ca_that_cannot_be_used_names_node_toml(tmp_path: Path) -> None:
    home = tmp_path / "mesh"
    _node_home(home, "https://127.0.0.1:9", str(tmp_path / "missing.pem"))
    code, said = _earnings(home)
    assert code == 1 and f"registry_ca in {home / 'node.toml'}" in said, said
    assert "no such file" in said and "Traceback" not in said, said


def test_node_start_trusts_node_tomls_registry_ca_unless_the_flag_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: node.toml's registry_ca refused ("unknown keys"); the node's calls to
    its registry verify with ``settings.registry_ca`` (node/service.py)."""
    import LLM_Mesh.node_manager as nm

    started: list[Any] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.settings))
    home = tmp_path / "mesh"
    ca, other = tmp_path / "ca.crt", tmp_path / "other.crt"
    make_self_signed(ca, tmp_path / "ca.key", ["127.0.0.1"])
    make_self_signed(other, tmp_path / "other.key", ["127.0.0.1"])
    _node_home(home, "https://127.0.0.1:9", str(ca))
    env = {"LLM_MESH_REGISTRY_CA": "", "LLM_MESH_OPERATOR_TOKEN": ""}
    out = runner.invoke(app, ["node", "start", "--home", str(home)], env=env)
    assert out.exit_code == 0, out.output
    assert started[-1].registry_ca == str(ca)
    out = runner.invoke(
        app, ["node", "start", "--home", str(home), "--registry-ca", str(other)], env=env
    )
    assert out.exit_code == 0, out.output
    assert started[-1].registry_ca == str(other)
