"""``llm-mesh registry serve --trusted-proxies`` (attack35b): ``*`` refused in one line;
``$FORWARDED_ALLOW_IPS`` ignored, said in a WARNING; serve() given loopback and those named."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app

runner = CliRunner()


def _serve(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import LLM_Mesh.registry.app as registry_app

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(kw))
    monkeypatch.delenv("LLM_MESH_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    return seen


@pytest.mark.parametrize("args", [["--trusted-proxies", "*"], ["--trusted-proxies", "::/0"]])
def test_anyone_as_a_proxy_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    seen = _serve(monkeypatch)
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 1, out.output
    assert "--trusted-proxies" in out.output and "Traceback" not in out.output
    assert seen == []


def test_by_default_loopback_and_the_environments_variable_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen = _serve(monkeypatch)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    with caplog.at_level(logging.WARNING, logger="LLM_Mesh.registry"):
        out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert [kw["trusted_proxies"] for kw in seen] == [("127.0.0.1", "::1")]
    said = [r.getMessage() for r in caplog.records if "FORWARDED_ALLOW_IPS" in r.getMessage()]
    assert len(said) == 1 and "is ignored" in said[0], said


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_balancer_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str) -> None:
    seen = _serve(monkeypatch)
    args = ["--trusted-proxies", "10.0.0.5"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("LLM_MESH_TRUSTED_PROXIES", "10.0.0.5")
    out = runner.invoke(app, ["registry", "serve", "--home", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    assert [kw["trusted_proxies"] for kw in seen] == [("127.0.0.1", "::1", "10.0.0.5")]
