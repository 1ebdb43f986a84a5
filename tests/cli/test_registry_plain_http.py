"""``registry serve --allow-plain-http-nodes`` / ``LLM_MESH_ALLOW_PLAIN_HTTP_NODES``: the
registry's opt-out from refusing plain-http nodes on other machines (``core/tls.py``), and
its conflict with ``--require-tls``, said in words at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app

runner = CliRunner()
ENV = ("LLM_MESH_ALLOW_PLAIN_HTTP_NODES", "LLM_MESH_REQUIRE_TLS")


@pytest.mark.parametrize(
    ("args", "env", "allowed"),
    [
        ([], {}, False),  # the default: https off loopback
        (["--allow-plain-http-nodes"], {}, True),
        ([], {"LLM_MESH_ALLOW_PLAIN_HTTP_NODES": "1"}, True),
        ([], {"LLM_MESH_ALLOW_PLAIN_HTTP_NODES": "0"}, False),
    ],
)
def test_registry_serve_plain_http_flag(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    allowed: bool,
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    [settings] = seen
    assert settings.allow_plain_http_nodes is allowed
    assert settings.node_transport.refusal("http://10.0.0.5:8801") == (
        None if allowed else "plain_http_remote"
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--allow-plain-http-nodes", "--require-tls"], {}),
        (["--require-tls"], {"LLM_MESH_ALLOW_PLAIN_HTTP_NODES": "1"}),
        (["--allow-plain-http-nodes"], {"LLM_MESH_REQUIRE_TLS": "1"}),
    ],
)
def test_registry_serve_refuses_the_opt_out_with_require_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 1, out.output
    assert "--require-tls" in out.output and "--allow-plain-http-nodes" in out.output
    assert "not both" in out.output
    assert seen == []  # refused before serving
