"""node.toml's ``registry_ca`` is trusted for node.toml's own registry only (found
2026-12-07, small42): ``--registry`` or ``$LLM_MESH_REGISTRY_URL`` naming ANOTHER registry,
with no CA file given, had the CA pinned for node.toml's registry applied to it (trusting a
CA the user never chose for that registry, or failing against a public one as if its
certificate were wrong). Now another registry is checked against the system's CAs (or the
CA file ``--registry-ca`` / ``$LLM_MESH_REGISTRY_CA`` names); node.toml's own registry
(the same scheme, host and port, however written) still trusts it. A real https server
(stdlib, self-signed: ``tests/cli/registry_404.py``) answers every path 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.common import registry_settings
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.registry_urls import same_origins
from LLM_Mesh.node.tls import make_self_signed
from tests.cli.registry_404 import serve_https
from tests.cli.test_registry_ca_node_toml import _node_home

runner = CliRunner()
ELSEWHERE = "https://registry.example.org:8443"  # node.toml's registry: not the one asked


@pytest.fixture
def https_registry(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    with serve_https(tmp_path) as served:
        yield served


def _run(home: Path, command: list[str], url: str, how: str) -> tuple[int, str]:
    env = {"COLUMNS": "300", "LLM_MESH_HOME": str(home), "LLM_MESH_REGISTRY_CA": "",
           "LLM_MESH_REGISTRY_URL": url if how == "env" else "", "LLM_MESH_API_KEY": ""}  # fmt: skip
    flag = ["--registry", url] if how == "flag" else []
    out = runner.invoke(app, [*command, *flag], env=env)
    return out.exit_code, " ".join(out.output.split())


CASES = [(["status"], "flag"), (["status"], "env"), (["ledger", "verify"], "flag"),
         (["node", "plan"], "flag")]  # fmt: skip


@pytest.mark.parametrize(("command", "how"), CASES, ids=[f"{c[-1]}-{h}" for c, h in CASES])
def test_node_tomls_ca_is_not_trusted_for_another_registry(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], command: list[str], how: str
) -> None:
    """The registry named is another than node.toml's, whose pinned CA happens to be the one
    that signed it. Before: trusted (a request reached it). Now the system's CAs: refused."""
    url, cert, paths = https_registry
    home = _node_home(tmp_path / "mesh", ELSEWHERE, str(cert))
    _, said = _run(home, command, url, how)
    assert not paths, said
    assert "CERTIFICATE_VERIFY_FAILED" in said, said


@pytest.mark.parametrize("how", ["flag", "env"])
def test_node_tomls_ca_is_trusted_for_its_own_registry_however_written(
    tmp_path: Path, https_registry: tuple[str, Path, list[str]], how: str
) -> None:
    url, cert, paths = https_registry
    home = _node_home(tmp_path / "mesh", url, str(cert))
    _, said = _run(home, ["status"], url.replace("https://", "HTTPS://") + "/v1/", how)
    assert "CERTIFICATE_VERIFY_FAILED" not in said, said
    assert paths, said  # a request reached it, past TLS


def test_the_ca_given_for_another_registry_is_that_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings as built: node.toml's CA for its own registry only; for another, none (the
    system's CAs), or the file named."""
    cert = tmp_path / "ca.pem"
    make_self_signed(cert, tmp_path / "ca.key", ["127.0.0.1"])
    home = _node_home(tmp_path / "mesh", ELSEWHERE, str(cert))
    for name in ("LLM_MESH_REGISTRY_CA", "LLM_MESH_REGISTRY_URL", "LLM_MESH_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert (
        registry_settings(home, "https://another.example.org", registry_ca=None).registry_ca is None
    )
    own = registry_settings(home, "https://REGISTRY.example.org:8443/", registry_ca=None)
    assert own.registry_ca == str(cert)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "https://registry.example.org")  # port 443
    assert registry_settings(home, None, registry_ca=None).registry_ca is None
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL")
    assert registry_settings(home, None, registry_ca=None).registry_ca == str(cert)  # its own


def test_same_origins() -> None:
    own = ("https://r.example:8443", "https://r2.example")
    assert same_origins(["https://R.example:8443/v1"], own)
    assert same_origins(["https://r2.example:443", "https://r.example:8443"], own)
    assert not same_origins(["https://r.example"], own)  # another port
    assert not same_origins(["http://r2.example:443"], own)  # another scheme
    assert not same_origins(["https://r2.example", "https://x.example"], own)  # one of them
    assert not same_origins([], own) and not same_origins(["https://r.example:8443"], [])
    assert not same_origins(["https://r.example:99999"], ["https://r.example:99999"])


def test_node_start_with_another_registry_does_not_take_node_tomls_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``node start --registry URL`` naming another registry than node.toml's: its CA is
    not the node's for it (before: it was); the same registry however written still is."""
    import LLM_Mesh.node_manager as nm

    started: list[Any] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.settings))
    home = tmp_path / "mesh"
    ca = tmp_path / "ca.crt"
    make_self_signed(ca, tmp_path / "ca.key", ["127.0.0.1"])
    _node_home(home, ELSEWHERE, str(ca))
    env = {"LLM_MESH_REGISTRY_CA": "", "LLM_MESH_OPERATOR_TOKEN": "", "LLM_MESH_REGISTRY_URL": ""}
    for registry, trusted in (("https://another.example.org", None),
                              (ELSEWHERE.upper() + "/", str(ca))):  # fmt: skip
        args = ["node", "start", "--home", str(home), "--registry", registry]
        out = runner.invoke(app, args, env=env)
        assert out.exit_code == 0, out.output
        assert started[-1].registry_ca == trusted, registry
