"""``llm-mesh up --allow-local-nodes``, in process: the flag travels from ``up`` through
``LocalMesh`` to the ``registry serve`` command line ``up`` runs, and that registry (its
settings, as ``registry serve`` builds them) takes a node on loopback and no other private
address. No processes: ``LocalMesh.start`` and ``serve`` are replaced."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import LOCAL_MESH_ENV, LocalMesh
from tests.registry.helpers import registration, running

runner = CliRunner()


def _up_registry_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *up_args: str
) -> tuple[Settings, str]:
    """What ``llm-mesh up *up_args`` would start its registry with, and ``up``'s output."""
    import LLM_Mesh.registry.app as registry_app

    meshes: list[LocalMesh] = []

    def start(self: LocalMesh, progress: object = None) -> None:
        meshes.append(self)
        raise KeyboardInterrupt  # as Ctrl-C while starting: `up` stops and exits 0

    monkeypatch.setattr(LocalMesh, "start", start)
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # `up` sets its handlers: not here
    monkeypatch.delenv("LLM_MESH_ALLOW_PRIVATE_NODES", raising=False)
    out = runner.invoke(app, ["up", "--engine", "sim", "--home", str(tmp_path), *up_args])
    assert out.exit_code == 0, out.output
    [mesh] = meshes
    cmd = mesh.registry_command()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"  # `up`'s registry: loopback only
    seen: list[Settings] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    env = {LOCAL_MESH_ENV: mesh._env()[LOCAL_MESH_ENV]}  # as `up` starts it
    served = runner.invoke(app, [*cmd, "--home", str(tmp_path)], env=env)
    assert served.exit_code == 0, served.output
    [settings] = seen
    return settings, out.output


def _guard(settings: Settings) -> dict[str, object]:
    """The SSRF settings of ``up``'s registry, for the in-process registry."""
    return {
        "allow_private_nodes": settings.allow_private_nodes,
        "private_node_origins": settings.private_node_origins,
        "allow_loopback_nodes": settings.allow_loopback_nodes,
        "local_mesh": settings.local_mesh,
    }


async def _metadata_dns(host: str, port: int) -> list[str]:
    return {"metadata.example": ["169.254.169.254"]}.get(host, ["93.184.216.34"])


async def test_up_allow_local_nodes_lets_a_loopback_node_join_its_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-03: `./setup-node-operator.sh` next to `llm-mesh up` could not join
    (403 loopback) and the refusal named `registry serve --allow-private-nodes`."""
    settings, _ = _up_registry_settings(monkeypatch, tmp_path, "--allow-local-nodes")
    async with running(tmp_path / "reg", resolver=_metadata_dns, **_guard(settings)) as h:
        r = await h.client.post(
            "/mesh/nodes", json=registration("second", url="http://127.0.0.1:8802")
        )
        assert r.status_code == 200, r.text
        assert h.table.get("second") is not None
        # the attack: the LAN, the cloud metadata address (literal or by name): still refused
        for i, url in enumerate(
            ["http://10.0.0.5:8801", "http://169.254.169.254", "http://metadata.example"]
        ):
            r = await h.client.post("/mesh/nodes", json=registration(f"evil{i}", url=url))
            assert r.status_code == 403, r.text
            assert "`llm-mesh up --allow-local-nodes`" in r.json()["error"]["message"]
            assert h.table.get(f"evil{i}") is None


async def test_up_without_the_flag_refuses_a_second_loopback_node_and_names_the_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings, _ = _up_registry_settings(monkeypatch, tmp_path)
    assert not settings.allow_loopback_nodes and not settings.allow_private_nodes
    async with running(tmp_path / "reg", **_guard(settings)) as h:
        own = await h.client.post(
            "/mesh/nodes", json=registration("own", url="http://127.0.0.1:8801")
        )
        assert own.status_code == 200, own.text  # its own node, as before
        r = await h.client.post(
            "/mesh/nodes", json=registration("second", url="http://127.0.0.1:8802")
        )
        assert r.status_code == 403, r.text
        message = r.json()["error"]["message"]
        assert "restart it as `llm-mesh up --allow-local-nodes`" in message, message
        assert h.table.get("second") is None


def test_up_help_says_what_allow_local_nodes_allows_and_why_it_is_off() -> None:
    out = runner.invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    said = " ".join(out.output.replace("│", " ").split())
    assert "--allow-local-nodes" in said
    assert "loopback (127.0.0.0/8, ::1)" in said and "never a LAN" in said
    assert "Off by default" in said and "127.0.0.1 only" in said


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_loopback_nodes_are_refused_on_a_registry_others_can_reach(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    """A registry listening beyond loopback with ``--allow-loopback-nodes`` would let any
    operator who reaches it point the gateway at this machine's local services: it does
    not start."""
    import LLM_Mesh.registry.app as registry_app

    seen: list[Settings] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    args = ["registry", "serve", "--allow-loopback-nodes", "--host", host, "--home", str(tmp_path)]
    out = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code != 0 and not seen
    said = " ".join(out.output.replace("│", " ").split())
    assert f"--allow-loopback-nodes with --host {host}" in said, said


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_nodes_on_a_loopback_registry_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen: list[Settings] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    args = ["registry", "serve", "--allow-loopback-nodes", "--host", host, "--home", str(tmp_path)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    [settings] = seen
    assert settings.allow_loopback_nodes


async def test_demo_refuses_a_second_loopback_node_and_names_a_command_that_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-03: `llm-mesh demo`'s registry told a second local node to restart it
    as `llm-mesh up --allow-local-nodes`, a flag `demo` does not have; it says it is
    `demo`'s registry (which stops after its one request) and to run `up` with it."""
    import LLM_Mesh.registry.app as registry_app
    from LLM_Mesh.cli import demo as demo_cli

    meshes: list[LocalMesh] = []

    def start(self: LocalMesh, progress: object = None) -> None:
        meshes.append(self)

    async def no_request(*args: object) -> None:
        return None

    monkeypatch.setattr(LocalMesh, "start", start)
    monkeypatch.setattr(LocalMesh, "stop", lambda self: None)
    monkeypatch.setattr(demo_cli, "run_demo", no_request)
    monkeypatch.delenv("LLM_MESH_ALLOW_PRIVATE_NODES", raising=False)
    demo_args = ["demo", "--engine", "sim", "--home", str(tmp_path)]
    out = await asyncio.to_thread(runner.invoke, app, demo_args)  # `demo` runs its own loop
    assert out.exit_code == 0, out.output
    [mesh] = meshes
    seen: list[Settings] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    env = {LOCAL_MESH_ENV: mesh._env()[LOCAL_MESH_ENV]}  # as `demo` starts it
    served = runner.invoke(app, [*mesh.registry_command(), "--home", str(tmp_path)], env=env)
    assert served.exit_code == 0, served.output
    [settings] = seen
    async with running(tmp_path / "reg", **_guard(settings)) as h:
        own = await h.client.post(
            "/mesh/nodes", json=registration("own", url="http://127.0.0.1:8801")
        )
        assert own.status_code == 200, own.text
        r = await h.client.post(
            "/mesh/nodes", json=registration("second", url="http://127.0.0.1:8802")
        )
        assert r.status_code == 403, r.text
        message = r.json()["error"]["message"]
        assert "`llm-mesh demo`'s registry, which stops after its one request" in message
        assert "run `llm-mesh up --allow-local-nodes`" in message, message
        assert "restart it as" not in message, message  # `demo` has no such flag
        assert h.table.get("second") is None
    demo_help = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"}).output
    assert "--allow-local-nodes" not in demo_help  # the message does not name a demo flag


def test_registry_serve_refuses_an_unknown_local_mesh_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import LLM_Mesh.registry.app as registry_app

    seen: list[Settings] = []
    monkeypatch.setattr(registry_app, "serve", lambda settings, **kw: seen.append(settings))
    args = ["registry", "serve", "--home", str(tmp_path)]
    for value, want in (("1", "up"), ("up", "up"), ("demo", "demo"), ("", "")):
        out = runner.invoke(app, args, env={LOCAL_MESH_ENV: value})
        assert out.exit_code == 0, out.output
        assert seen.pop().local_mesh == want
    out = runner.invoke(app, args, env={LOCAL_MESH_ENV: "sideways", "COLUMNS": "200"})
    assert out.exit_code != 0 and not seen
    assert "must be up or demo" in out.output


@pytest.mark.parametrize(
    ("ports", "suggested"),
    [((), "8802"), (("--node-port", "8802"), "8803"), (("--registry-port", "18544",
     "--node-port", "18545"), "18546")],
)  # fmt: skip
def test_up_suggests_a_port_for_another_node_that_its_own_do_not_take(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ports: tuple[str, ...], suggested: str
) -> None:
    """Found 2026-12-07 (newuser44): `up --allow-local-nodes` told another node to take
    `--port 8802` whatever ports the mesh itself had (`--node-port 8802` included)."""
    monkeypatch.setattr(LocalMesh, "start", lambda self, progress=None: None)
    monkeypatch.setattr(LocalMesh, "alive", lambda self: False)  # `up` prints, then stops
    monkeypatch.setattr(LocalMesh, "stop", lambda self: None)
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    args = ["up", "--engine", "sim", "--home", str(tmp_path), "--allow-local-nodes", *ports]
    out = runner.invoke(app, args, env={"COLUMNS": "300"})
    registry = f"http://127.0.0.1:{ports[1] if ports[:1] == ('--registry-port',) else 8800}"
    assert f"./setup-node-operator.sh --registry {registry} --port {suggested}\n" in out.output
