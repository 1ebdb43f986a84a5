"""``llm-mesh node models|plan|pause|resume|drain|info`` (no sockets: mock and ASGI transports)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.node_commands import node_app
from LLM_Mesh.core.model_files import fake_gguf
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.config import NodeConfig, load_node_config, save_node_config
from LLM_Mesh.node.control import fetch_demand, parse_demand
from LLM_Mesh.node.downloads import file_sha256
from tests.cli.node_commands_fixtures import invoke, runner, use_transport

GGUF = fake_gguf(payload=b"\x00" * 100)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "mesh"


# --- models ------------------------------------------------------------------------------


def test_add_a_local_file_then_list_it(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "my-model.gguf"
    src.write_bytes(GGUF)
    save_node_config(NodeConfig(engine="sim", models=["gemma-3-270m"]), home / "node.toml")
    r = invoke("models", "add", str(src), "--name", "tiny", "--home", str(home))
    assert r.exit_code == 0, r.output
    stored = home / "models" / "tiny.gguf"
    assert stored.read_bytes() == GGUF
    assert load_node_config(home / "node.toml").models == ["gemma-3-270m", str(stored)]
    again = invoke("models", "add", str(src), "--name", "tiny", "--home", str(home))
    assert "already in" in again.output
    listing = invoke("models", "list", "--home", str(home))
    assert listing.exit_code == 0
    assert "tiny" in listing.output and file_sha256(stored)[:16] in listing.output
    assert "yes" in listing.output  # configured


def test_add_rejects_a_file_that_is_not_gguf(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"not a model at all")
    r = invoke("models", "add", str(bad), "--home", str(home))
    assert r.exit_code == 1 and "GGUF" in r.output
    assert not list(home.glob("models/*.gguf"))


def test_add_of_a_name_that_is_no_catalog_id_url_or_file_says_what_it_takes(
    home: Path, tmp_path: Path
) -> None:
    """Found 2026-12-07 (newuser45): ``node models add gemma3`` (a catalog id mistyped) said
    only "gemma3 is not a file", and a folder or a path that does not exist the same;
    ``node start --model gemma3`` names the catalog ids."""
    r = invoke("models", "add", "gemma3", "--home", str(home))
    said = " ".join(r.output.split())
    assert r.exit_code == 1
    assert "'gemma3' is neither a catalog id, an http(s) URL nor a file" in said, said
    assert "catalog ids: gemma-3-270m, mistral-7b," in said
    missing = tmp_path / "gone.gguf"
    r = invoke("models", "add", str(missing), "--home", str(home))
    assert f"{missing} does not exist" in " ".join(r.output.split()), r.output
    r = invoke("models", "add", str(tmp_path), "--home", str(home))
    said = " ".join(r.output.split())
    assert f"{tmp_path} is a folder, not a file: name the .gguf file in it" in said, said


def test_add_prints_no_blank_line_of_its_progress_bar(home: Path, tmp_path: Path) -> None:
    """Found 2026-12-07 (small45): a failed ``node models add`` printed a blank line on
    stdout, and a successful one before its "added": rich's progress bar, stopped on a
    console that is no terminal (where it shows nothing), prints an empty line."""
    r = invoke("models", "add", "gemma3", "--home", str(home))
    assert r.exit_code == 1 and r.stdout == "", repr(r.stdout)
    src = tmp_path / "tiny.gguf"
    src.write_bytes(GGUF)
    r = invoke("models", "add", str(src), "--name", "tiny", "--home", str(home))
    assert r.exit_code == 0 and r.stdout.startswith("added tiny: "), repr(r.stdout)


def test_add_from_a_url_verifies_the_sha256(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        served.append(str(request.url))
        return httpx.Response(200, content=GGUF, headers={"content-length": str(len(GGUF))})

    use_transport(monkeypatch, httpx.MockTransport(server))
    url = "https://files.example/models/coder-1b.Q4.gguf"
    r = invoke("models", "add", url, "--sha256", "0" * 64, "--home", str(home))
    assert r.exit_code == 1 and "sha256 mismatch" in r.output
    assert not (home / "models" / "coder-1b.Q4.gguf").exists()
    good = hashlib.sha256(GGUF).hexdigest()
    r = invoke("models", "add", url, "--sha256", good, "--home", str(home))
    assert r.exit_code == 0, r.output
    assert (home / "models" / "coder-1b.Q4.gguf").read_bytes() == GGUF
    assert "no " in r.output and "node.toml" in r.output  # none to update
    assert served == [url, url]
    r = invoke("models", "add", url, "--sha256", "xyz", "--home", str(home))
    assert r.exit_code == 1 and "64 hex digits" in r.output


def test_list_with_no_files(home: Path) -> None:
    r = invoke("models", "list", "--home", str(home))
    assert r.exit_code == 0 and "no model files" in r.output


# --- plan --------------------------------------------------------------------------------


@pytest.fixture
def big_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import LLM_Mesh.node.hardware as hw

    machine = Hardware(cpu_count=8, memory_bytes=32 * 10**9, disk_free_bytes=100 * 10**9)
    monkeypatch.setattr(hw, "detect_hardware", lambda _home: machine)


def _order(output: str, *models: str) -> list[int]:
    return [output.index(m) for m in models]


def test_plan_without_demand_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch, big_machine: None
) -> None:
    use_transport(monkeypatch, httpx.MockTransport(lambda _r: httpx.Response(404)))
    r = invoke("plan", "--home", str(home), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "no demand data" in r.output and "does not publish demand" in r.output
    assert "gemma-3-270m" in r.output and "llama-2-70b-chat" in r.output
    # found 2026-12-07: the estimate read as this machine's speed (79 said, 1-4 measured)
    squashed = " ".join(r.output.split())
    assert "est. tok/s" in squashed and "not measured here" in squashed
    assert "measured here: `llm-mesh node info`" in squashed and "llm-mesh ask" in squashed


def test_plan_ranks_by_demand(
    home: Path, monkeypatch: pytest.MonkeyPatch, big_machine: None
) -> None:
    demand = {
        "models": [
            {"model": "code-llama-7b", "requests_waiting": 9, "requests_refused": 30},
            {"model": "mistral-7b", "nodes_serving": 5},
        ]
    }
    use_transport(monkeypatch, httpx.MockTransport(lambda _r: httpx.Response(200, json=demand)))
    r = invoke("plan", "--home", str(home), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "demand from http://reg.test (2 models)" in r.output
    a, b = _order(r.output, "code-llama-7b", "mistral-7b")
    assert a < b


async def test_fetch_demand_treats_failures_as_no_data() -> None:
    def boom(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(boom)) as c:
        demand, note = await fetch_demand(c, "http://reg.test")
    assert demand is None and "unreachable" in note
    bodies: list[Any] = [[1, 2], {"models": "x"}]
    for body in bodies:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _r, b=body: httpx.Response(200, json=b))
        ) as c:
            demand, note = await fetch_demand(c, "http://reg.test")
        assert demand is None and "not understood" in note
    parsed = parse_demand({"models": [{"id": "a", "requests_waiting": "2"}, {"nope": 1}, 3]})
    assert parsed is not None and parsed["a"].requests_waiting == 2 and list(parsed) == ["a"]


def test_start_passes_n_threads_to_the_node(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import LLM_Mesh.node_manager as nm

    started: list[NodeConfig] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.config))
    result = invoke("start", "--engine", "sim", "--n-threads", "1", "--home", str(home))
    assert result.exit_code == 0, result.output
    assert [c.n_threads for c in started] == [1]
    bad = invoke("start", "--engine", "sim", "--n-threads", "0", "--home", str(home))
    assert bad.exit_code != 0 and "n_threads" in bad.output


def test_start_passes_stream_interval_to_the_node(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import LLM_Mesh.node_manager as nm

    started: list[NodeConfig] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.config))
    r = invoke("start", "--engine", "sim", "--stream-interval-s", "0.03", "--home", str(home))
    assert r.exit_code == 0, r.output
    assert [c.stream_interval_s for c in started] == [0.03]
    bad = invoke("start", "--engine", "sim", "--stream-interval-s", "5", "--home", str(home))
    assert bad.exit_code != 0 and "stream_interval_s" in bad.output


def test_start_with_a_missing_model_file_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothere.gguf"
    result = runner.invoke(
        node_app,
        ["start", "--engine", "llama-cpp", "--model", str(missing), "--home", str(home),
         "--port", "1", "--registry", "http://127.0.0.1:9"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "does not exist" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_start_reads_home_node_toml_unless_no_config(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import LLM_Mesh.node_manager as nm

    started: list[NodeConfig] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.config))
    home.mkdir(parents=True)
    save_node_config(
        NodeConfig(engine="sim", models=["mistral-7b"], port=8899, region="eu-west"),
        home / "node.toml",
    )
    assert invoke("start", "--home", str(home)).exit_code == 0
    assert (started[-1].engine, started[-1].models, started[-1].port) == (
        "sim",
        ["mistral-7b"],
        8899,
    )
    assert invoke("start", "--home", str(home), "--port", "8900").exit_code == 0
    assert started[-1].port == 8900 and started[-1].region == "eu-west"  # flags override the file
    assert invoke("start", "--home", str(home), "--no-config", "--engine", "sim").exit_code == 0
    assert started[-1].region is None and started[-1].port == 8801
    (home / "node.toml").write_text("port = [\n")
    broken = runner.invoke(node_app, ["start", "--home", str(home)])
    assert broken.exit_code == 1 and "Traceback" not in broken.output


def test_a_second_node_on_the_same_key_stops_and_says_why(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-02: ``llm-mesh up`` and then ``llm-mesh node start --engine sim`` in
    the same ``$LLM_MESH_HOME`` shared ``node.key``: the second registered under the
    first's id, and the first's model left the mesh with nothing said."""
    import LLM_Mesh.node_manager as nm
    from LLM_Mesh.node.keys import key_in_use

    started: list[NodeConfig] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: started.append(self.config))
    with key_in_use(home / "node.key"):  # the node already running on this home
        result = runner.invoke(node_app, ["start", "--engine", "sim", "--home", str(home)])
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and started == [], result.output
        assert "another node is running with the key" in said
        # found 2026-12-03: it said "give this node its own --home or --key-file", and
        # ./setup-node-operator.sh, the way the user's document starts a node, has no --home
        assert "LLM_MESH_HOME=DIR" in said and "./setup-node-operator.sh has no --home" in said
        assert "--home DIR (llm-mesh node start, up, demo)" in said
        assert "--key-file FILE (llm-mesh node start)" in said
        own = tmp_path / "own.key"
        args = ["start", "--engine", "sim", "--home", str(home), "--key-file", str(own)]
        assert invoke(*args).exit_code == 0 and len(started) == 1  # its own key: runs
    assert invoke("start", "--engine", "sim", "--home", str(home)).exit_code == 0
    assert len(started) == 2  # the first one gone: the key is free again


def test_tls_init_makes_a_certificate_once(tmp_path: Path) -> None:
    from LLM_Mesh.core.tls import show_fingerprint
    from LLM_Mesh.tls import certificate_fingerprint

    r = runner.invoke(node_app, ["tls", "init", "--home", str(tmp_path), "--host", "node.lan"])
    assert r.exit_code == 0, r.output
    crt, key = tmp_path / "node-tls.crt", tmp_path / "node-tls.key"
    fp = certificate_fingerprint(crt)
    assert show_fingerprint(fp) in r.output
    assert "made" in r.output
    assert (key.stat().st_mode & 0o777) == 0o600
    again = runner.invoke(node_app, ["tls", "init", "--home", str(tmp_path)])
    assert again.exit_code == 0 and "kept" in again.output
    assert certificate_fingerprint(crt) == fp
    forced = runner.invoke(node_app, ["tls", "init", "--home", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert certificate_fingerprint(crt) != fp


def test_start_passes_the_observability_flags(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import LLM_Mesh.node_manager as nm

    for k in ("LLM_MESH_LOG_FORMAT", "LLM_MESH_METRICS", "LLM_MESH_METRICS_PUBLIC"):
        monkeypatch.delenv(k, raising=False)
    seen: list[Any] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: seen.append(self.settings))
    result = invoke("start", "--engine", "sim", "--home", str(home), "--log-format", "json",
                    "--metrics-public", "--no-metrics")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [(s.log_format, s.metrics_public, s.metrics) for s in seen] == [("json", True, False)]
    bad = invoke("start", "--engine", "sim", "--home", str(home), "--log-format", "xml")
    assert bad.exit_code == 1 and "text or json" in bad.output


def test_a_plain_http_download_needs_its_sha256(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over plain HTTP anyone on the path can hand the operator another file (a GGUF is
    parsed by llama.cpp's C++ loader); without ``--sha256`` nothing would tell (found
    2026-12-02: downloaded and added unverified)."""
    served: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        served.append(str(request.url))
        return httpx.Response(200, content=GGUF, headers={"content-length": str(len(GGUF))})

    use_transport(monkeypatch, httpx.MockTransport(server))
    url = "http://files.example/models/coder-1b.Q4.gguf"
    r = invoke("models", "add", url, "--home", str(home))
    assert r.exit_code == 1 and "--sha256" in r.output and "https" in r.output
    assert served == [] and not (home / "models" / "coder-1b.Q4.gguf").exists()
    good = hashlib.sha256(GGUF).hexdigest()
    r = invoke("models", "add", url, "--sha256", good, "--home", str(home))
    assert r.exit_code == 0, r.output
    r = invoke("models", "add", "https://files.example/m/other.gguf", "--home", str(home))
    assert r.exit_code == 0, r.output  # https: the server's size, over TLS


def test_every_node_start_option_says_what_it_does() -> None:
    """A node operator reads ``node start --help``: no option without a line of help
    (``--max-concurrency`` and ``--max-queue`` had none)."""
    import typer.main

    command = typer.main.get_command(node_app)
    start = command.commands["start"]  # type: ignore[attr-defined]
    silent = [p.name for p in start.params if not getattr(p, "help", None)]
    assert silent == [], silent


def test_trusted_peers_come_from_the_flag_node_toml_and_env(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trusted_peers (core/peer_exempt.py): not counted against the per-peer cap; the flag,
    node.toml and LLM_MESH_TRUSTED_PEERS add up; none by default; a bad entry is refused."""
    import LLM_Mesh.node_manager as nm

    rules: list[object] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: rules.append(self.exemption))
    monkeypatch.setenv("LLM_MESH_TRUSTED_PEERS", "2001:db8:5::/48")
    home.mkdir(parents=True, exist_ok=True)
    toml = 'engine = "sim"\nmodels = ["m"]\ntrusted_peers = ["10.1.0.0/16"]\n'
    (home / "node.toml").write_text(toml)
    r = invoke("start", "--trusted-peers", "203.0.113.7", "--home", str(home))
    assert r.exit_code == 0, r.output
    (rule,) = rules
    assert callable(rule)
    assert rule("203.0.113.7") and rule("2001:db8:5::9") and not rule("203.0.113.8")
    assert not rule("10.1.2.3")  # the flag replaces node.toml's, as every flag does
    monkeypatch.delenv("LLM_MESH_TRUSTED_PEERS")
    rules.clear()
    assert invoke("start", "--home", str(home)).exit_code == 0
    assert rules[0]("10.1.2.3") and not rules[0]("2001:db8:5::9")  # type: ignore[operator]
    bad = invoke("start", "--trusted-peers", "gw.example", "--home", str(home))
    assert bad.exit_code != 0 and "trusted_peers" in bad.output


def test_node_earnings_says_where_earnings_are() -> None:
    """Found 2026-12-06 (newuser35b, an operator's walk): ``llm-mesh node earnings`` (README
    names the node's ``earnings`` endpoint beside ``info`` and ``pause``) said only "No such
    command 'earnings'"; it names the two commands that show them, and is not listed."""
    from LLM_Mesh.cli.main import app

    runner = CliRunner()
    out = runner.invoke(app, ["node", "earnings", "--days", "7"], env={"COLUMNS": "200"})
    said = " ".join(out.output.split())
    assert out.exit_code == 2, out.output
    assert "`llm-mesh node info` shows this node's earnings" in said, said
    assert "`llm-mesh earnings` your operator's" in said, said
    listing = runner.invoke(app, ["node", "--help"], env={"COLUMNS": "200"}).output
    assert "│ earnings" not in listing and "│ info" in listing, listing


def test_tls_init_says_a_start_command_that_serves_it_from_that_home(tmp_path: Path) -> None:
    """Found 2026-12-06 (newuser35b): ``node tls init --home H`` said ``serve it: llm-mesh
    node start --tls-cert ... --tls-key ...``: run so, it started ``~/.llm-mesh``'s node, and
    in H (node.toml's ``public_url`` http, as setup-node-operator.sh writes for a loopback
    registry) it stopped: ``public_url must be https://``. It names the home and an https
    URL with node.toml's host and port."""
    save_node_config(
        NodeConfig(port=18999, public_url="http://node.lan:18999"), tmp_path / "node.toml"
    )
    r = runner.invoke(node_app, ["tls", "init", "--home", str(tmp_path)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("serve it: ")]
    assert line == (
        f"serve it: llm-mesh node start --home {tmp_path} --public-url https://node.lan:18999 "
        f"--tls-cert {tmp_path / 'node-tls.crt'} --tls-key {tmp_path / 'node-tls.key'}"
    ), line


def test_start_says_where_its_registry_url_came_from(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's settings carry the URL's source with the URL it took from ``--registry``
    or node.toml (cli40 made ``Settings.registry_source`` the one record of it; before,
    ``node start`` replaced the URL and left the source of the one it replaced)."""
    import LLM_Mesh.node_manager as nm

    monkeypatch.delenv("LLM_MESH_REGISTRY_URL", raising=False)
    seen: list[Any] = []
    monkeypatch.setattr(nm.NodeManager, "run", lambda self: seen.append(self.settings))
    r = invoke("start", "--engine", "sim", "--home", str(home),
               "--registry", "http://127.0.0.1:9/")  # fmt: skip
    assert r.exit_code == 0, r.output
    (home / "node.toml").write_text('registry_url = "http://127.0.0.1:7/"\n')
    r = invoke("start", "--engine", "sim", "--home", str(home))
    assert r.exit_code == 0, r.output
    assert [(s.registry_url, s.registry_source) for s in seen] == [
        ("http://127.0.0.1:9", "--registry"),
        ("http://127.0.0.1:7", str(home / "node.toml")),
    ]
