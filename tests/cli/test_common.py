"""``cli/common.first_answering``: which of several registry replicas ``ledger verify`` and
``ledger witness`` use, asked of replicas that answer with a gzip bomb or a byte at a time
(a real socket, ``tests/hostile_gateway.py``); ``registry_settings``: the registry a
command asks in a node's home (node.toml's ``registry_url`` after the flag and the variable)."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from LLM_Mesh.cli.common import fail, first_answering, registry_settings, registry_source
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.client_retry import NO_KEY_HINT
from LLM_Mesh.errors import error_from_payload
from LLM_Mesh.node.config import NodeConfig, save_node_config
from tests.cli.registry_404 import serve_http
from tests.hostile_gateway import serve


@pytest.fixture
def gateway() -> Iterator[str]:
    yield from serve()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["drip", "bomb"])
async def test_a_replica_answering_a_drip_or_a_bomb_is_not_read(gateway: str, kind: str) -> None:
    """Found 2026-12-03: its answer was read whole (``client.get``): 65 MiB inflated from a
    gzip bomb, a byte each 0.05 s held the command 11 s (as long as the replica liked).

    Its head must come within ``timeout_s``: 0.5 s was not always enough for this test's own
    server thread on a loaded box (flaky36: both cases failed at load ~15, the replica
    skipped); 5 s is, and the drip read whole (61 s) is still far past the bound."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        got = await first_answering([f"{gateway}/{kind}", "http://other.test"], timeout_s=5.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == f"{gateway}/{kind}"  # it answered: the one to use
    assert time.monotonic() - t0 < 30.0  # its body not read: the drip's takes 61 s
    assert peak < 8 << 20, peak


async def test_a_replica_that_refuses_the_connection_is_skipped(gateway: str) -> None:
    closed = _closed_port()
    assert await first_answering([closed, f"{gateway}/drip"], timeout_s=0.5) == f"{gateway}/drip"
    assert await first_answering([closed, closed + "/x"], timeout_s=0.5) == closed + "/x"


@pytest.fixture
def hung() -> Iterator[str]:
    """A replica that takes connections (its listen backlog) and never answers: stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_hung_replica_is_skipped(hung: str, gateway: str) -> None:
    """Found 2026-12-05: with the first replica stopped (SIGSTOP), its ``ReadTimeout`` ended
    ``ledger verify`` with ``error: `` and nothing else, the next replica not asked."""
    assert await first_answering([hung, f"{gateway}/drip"], timeout_s=0.3) == f"{gateway}/drip"


async def test_every_replica_before_the_last_is_tried_in_turn(gateway: str, hung: str) -> None:
    """A live replica between down ones is the one used, not the last: each replica before
    the last is asked in turn after a refusal or a hang (testdup38: with none of them asked,
    or the asking stopped at the first one down, every other test here but the drip's and
    the bomb's passed, and tests/cli/test_registry_replicas_cli.py's 7 of 7)."""
    closed, live = _closed_port(), f"{gateway}/drip"
    assert await first_answering([closed, live, closed + "/x"], timeout_s=0.5) == live
    assert await first_answering([closed, hung, live, closed + "/x"], timeout_s=0.3) == live


def test_an_error_without_a_message_is_said_by_its_kind(capsys: pytest.CaptureFixture[str]) -> None:
    fail(httpx.ReadTimeout(""))
    assert "error: ReadTimeout: no answer within the timeout" in capsys.readouterr().err
    fail(KeyError())
    assert "error: KeyError" in capsys.readouterr().err


def test_a_wrong_api_key_is_told_in_the_clis_words(capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway's 401 tells an HTTP client to send no Authorization header; a user of
    ``llm-mesh ask --api-key lmk_typo`` is told to leave out the flag and the variable
    (failed before: the header's words; newuser43)."""
    payload = {
        "error": {
            "message": f"incorrect API key provided: lmk_...wxyz; {NO_KEY_HINT}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    fail(error_from_payload(401, payload))
    said = " ".join(capsys.readouterr().err.split())
    assert said == (
        "error: incorrect API key provided: lmk_...wxyz; leave out --api-key (and unset "
        "LLM_MESH_API_KEY) to use the mesh without a key"
    ), said


# --- registry_settings: the registry of a node's home (found 2026-12-07, newuser39) -------


def _node_home(home: Path, registry_url: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = NodeConfig(engine="sim", models=["mistral-7b"], registry_url=registry_url)
    save_node_config(config, home / "node.toml")
    return home


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("LLM_MESH_REGISTRY_URL", "LLM_MESH_REGISTRY_CA", "LLM_MESH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_node_homes_registry_is_node_tomls(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    """``./setup-node-operator.sh --registry URL`` wrote node.toml's ``registry_url``:
    ``status``, ``ask``, ... in that home went to ``http://127.0.0.1:8800`` (found 2026-12-07:
    "no LLM Mesh registry answered", while ``earnings`` there went to node.toml's)."""
    home = _node_home(tmp_path / "node", "http://10.0.0.5:8800/v1,https://r2.example.org")
    settings = registry_settings(home)
    assert settings.registry_urls == ("http://10.0.0.5:8800", "https://r2.example.org")
    assert settings.registry_url == "http://10.0.0.5:8800"


def test_the_flag_and_the_variable_win_over_node_toml(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    home = _node_home(tmp_path / "node", "http://10.0.0.5:8800")
    assert registry_settings(home, "http://flag.example:1").registry_urls == (
        "http://flag.example:1",
    )
    clean_env.setenv("LLM_MESH_REGISTRY_URL", "http://env.example:2")
    assert registry_settings(home).registry_urls == ("http://env.example:2",)


def test_a_home_without_node_toml_or_its_url_keeps_the_default(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert registry_settings(plain).registry_urls == ("http://127.0.0.1:8800",)
    assert registry_settings(_node_home(tmp_path / "n", "")).registry_urls == (
        "http://127.0.0.1:8800",
    )


def test_node_tomls_url_without_a_scheme_is_said_naming_node_toml(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _node_home(tmp_path / "node", "10.0.0.5:8800")
    with pytest.raises(typer.Exit):
        registry_settings(home)
    said = " ".join(capsys.readouterr().err.split())
    assert f"registry_url in {home / 'node.toml'}: '10.0.0.5:8800' has no scheme" in said, said


def test_status_in_a_node_home_asks_node_tomls_registry(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """The command as the operator types it, no ``--registry``: the request reaches the
    registry node.toml names (a stand-in answering 404), not the default port."""
    with serve_http() as (url, paths, _):
        home = _node_home(tmp_path / "node", url)
        out = CliRunner().invoke(
            app, ["status"], env={"LLM_MESH_HOME": str(home), "COLUMNS": "200"}
        )
    assert paths == ["/mesh/models"], out.output  # asked there (its 404 said: "error: no")
    assert "8800" not in out.output, out.output


def _unanswered(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = CliRunner().invoke(
        app, [*args], env={"LLM_MESH_HOME": str(home), "COLUMNS": "400", **(env or {})}
    )
    assert out.exit_code == 1, out.output
    said = " ".join(out.output.split())
    assert "no LLM Mesh registry answered at http://127.0.0.1:" in said, said
    return said


@pytest.mark.parametrize("command", [["status"], ["models"], ["ledger", "verify"]])
def test_a_registry_that_did_not_answer_is_said_with_where_its_url_came_from(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Found 2026-12-07: in a node's home "no LLM Mesh registry answered at URL; pass
    --registry URL or set LLM_MESH_REGISTRY_URL", node.toml's ``registry_url`` (where the
    URL came from, what to change) unsaid."""
    home = _node_home(tmp_path / "node", _closed_port())
    said = _unanswered(home, *command)
    assert f"the URL came from registry_url in {home / 'node.toml'}: change it there" in said
    said = _unanswered(home, *command, "--registry", _closed_port())
    assert "the URL came from --registry" in said and "node.toml" not in said, said
    said = _unanswered(home, *command, env={"LLM_MESH_REGISTRY_URL": _closed_port()})
    assert "the URL came from LLM_MESH_REGISTRY_URL" in said, said
    # within the message's last sentence (before: "... registry_url=). (the URL came from ...)")
    assert "; the URL came from" in said and ". (the URL" not in said, said


def test_the_default_registry_is_said_the_default(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    for home in (tmp_path / "plain", _node_home(tmp_path / "n", "")):
        home.mkdir(exist_ok=True)
        said = registry_source(registry_settings(home))
        assert said.startswith("the URL is the default: no --registry"), said


def test_where_the_url_came_from_is_decided_once(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """The order ``registry_settings`` applied, said as it was: not decided again at the
    failure from the environment and node.toml as they are then (before cli40: the
    variable set, or node.toml gone, after the settings were made, and the words named the
    variable, or the default, for a URL read from node.toml)."""
    home = _node_home(tmp_path / "node", "http://10.0.0.9:8800")
    settings = registry_settings(home)
    assert settings.registry_url == "http://10.0.0.9:8800"
    clean_env.setenv("LLM_MESH_REGISTRY_URL", "http://elsewhere.test")
    (home / "node.toml").unlink()
    said = registry_source(settings)
    assert said == (
        f"the URL came from registry_url in {home / 'node.toml'}: change it there, or override it"
    ), said
