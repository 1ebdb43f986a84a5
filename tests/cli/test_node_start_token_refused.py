"""``node start`` whose operator token the registry does not know exits 78 (EX_CONFIG) with
the registry's words, which the setup script's unit names in ``RestartPreventExitStatus=``:
found 2026-12-05 (polish32): the node retried its registration for ever, and any other
non-zero status would be restarted by ``Restart=on-failure`` every 10 s."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import LLM_Mesh.node_manager as nm
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import RegistrationRefused


def test_an_unknown_token_exits_78_saying_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refused(self: nm.NodeManager) -> None:
        raise RegistrationRefused("registration refused: HTTP 401 unknown operator token")

    monkeypatch.setattr(nm.NodeManager, "run", refused)
    env = {"LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_OPERATOR_TOKEN": "lmo_x"}
    out = CliRunner().invoke(
        app, ["node", "start", "--engine", "sim", "--registry", "http://127.0.0.1:9"], env=env
    )
    assert out.exit_code == 78, out.output
    assert "unknown operator token" in out.output


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_api_key_as_the_operator_token_exits_78_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    """Found 2026-12-06 (newuser34): a node given a user's API key (``lmk_...``) as its
    operator token started, sent the key to the registry in its registration, and stopped
    on ``unknown operator token``; it now says what it was given, before it starts."""
    ran: list[object] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: ran.append(self))
    secret = "lmk_" + "k" * 44
    env = {"LLM_MESH_HOME": str(tmp_path / "home")}
    args = ["node", "start", "--engine", "sim", "--registry", "http://127.0.0.1:9"]
    if how == "flag":
        args += ["--operator-token", secret]
    else:
        env["LLM_MESH_OPERATOR_TOKEN"] = secret
    out = CliRunner().invoke(app, args, env=env)
    said = " ".join(out.output.split())
    assert out.exit_code == 78, said
    assert "that is an API key, not an operator token" in said and secret not in said, said
    assert ran == []


def test_an_os_error_that_is_no_write_refusal_goes_on_as_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """review42c: fulldisk42 made every OSError of the node's whole run one line, even one
    naming no file or of another kind (an SSL error: which certificate unsaid); only a file
    the start could not write is one line, any other goes on as before, its traceback kept."""

    def broken(self: nm.NodeManager) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(nm.NodeManager, "run", broken)
    env = {"LLM_MESH_HOME": str(tmp_path / "home")}
    out = CliRunner().invoke(
        app, ["node", "start", "--engine", "sim", "--registry", "http://127.0.0.1:9"], env=env
    )
    assert isinstance(out.exception, ConnectionResetError), out.output
    assert "error:" not in out.output, out.output
