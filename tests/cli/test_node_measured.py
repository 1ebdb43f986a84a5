"""The node's measured speed in the CLI (``core/measured_speed.py``): ``node info``'s
"measured tok/s" column, from a sim node's own answers (in-process, no sockets), and
``node plan``'s beside the estimate while the home's node answers (mock transports)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import node_clients
from LLM_Mesh.cli.node_commands import node_app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.control import MEASURED_READ_S
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from tests.waiting import SOON_S, scaled

runner = CliRunner()
MODEL = "gemma-3-270m"


def use_transport(monkeypatch: pytest.MonkeyPatch, transport: httpx.AsyncBaseTransport) -> None:
    def factory(timeout_s: float = 10.0, registry_ca: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport)

    monkeypatch.setattr(node_clients, "http_client", factory)


def invoke(*args: str) -> Any:
    return runner.invoke(node_app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def _row(output: str, model: str) -> str:
    return next(line for line in output.splitlines() if model in line)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeService]:
    async def no_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    svc = NodeService(
        NodeConfig(engine="sim", models=[MODEL], register=False),
        Settings(home=tmp_path / "h"),
        engine=SimEngine([MODEL], ttft_s=0, tokens_per_s=1000.0, sleep=no_sleep),
        hardware=Hardware(cpu_count=2, memory_bytes=4 * 10**9),
    )
    asyncio.run(svc.start())
    transport = httpx.ASGITransport(
        app=create_node_app(svc, manage_lifespan=False), client=("127.0.0.1", 5000)
    )
    use_transport(monkeypatch, transport)
    yield svc
    asyncio.run(svc.stop())


def test_info_shows_no_measured_speed_before_an_answer_then_the_answers(
    node: NodeService,
) -> None:
    r = invoke("info")
    assert r.exit_code == 0, r.output
    assert "measured tok/s" in r.output
    assert _row(r.output, MODEL).rstrip(" │").endswith("-")
    # an answer of the node's own, through its app: its measured figures in `node info`
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a story"}],
            "max_tokens": 40}  # fmt: skip

    async def ask() -> dict[str, Any]:
        async with node_clients.http_client() as c:
            answer = await c.post("http://127.0.0.1:8801/v1/chat/completions", json=body)
            return dict(answer.json()["mesh"])

    mesh = asyncio.run(ask())
    r = invoke("info")
    assert r.exit_code == 0, r.output
    row = _row(r.output, MODEL)
    assert f"{mesh['tokens_per_s']:.1f} (1 answer, first token" in row and "(simulated)" in row


def _plan_transport(info: Any, seen: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/mesh/info":
            if isinstance(info, Exception):
                raise info
            return httpx.Response(200, json=info) if isinstance(info, dict) else info
        return httpx.Response(404)

    return httpx.MockTransport(answer)


@pytest.fixture
def big_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import LLM_Mesh.node.hardware as hw

    machine = Hardware(cpu_count=8, memory_bytes=32 * 10**9, disk_free_bytes=100 * 10**9)
    monkeypatch.setattr(hw, "detect_hardware", lambda _home: machine)


def test_plan_shows_the_running_nodes_measured_speed_beside_the_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_machine: None
) -> None:
    measured = {"answers": 4, "tokens_per_s": 3.25, "ttft_ms": 900.0, "simulated": False}
    info = {"models": [{"id": MODEL, "measured": measured}, {"id": "mistral-7b"}]}
    seen: list[str] = []
    use_transport(monkeypatch, _plan_transport(info, seen))
    r = invoke("plan", "--home", str(tmp_path / "h"), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "http://127.0.0.1:8801/mesh/info" in seen  # the home's node (none configured)
    assert "measured tok/s" in _row(r.output, "est. tok/s")  # the header, beside it
    assert " 3.2 " in _row(r.output, MODEL) or " 3.3 " in _row(r.output, MODEL)
    assert "(simulated)" not in _row(r.output, MODEL)
    assert _row(r.output, "llama-2-70b-chat").count(" - ") >= 1  # not served: "-"


def test_plan_does_not_show_another_homes_nodes_speeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_machine: None
) -> None:
    """Found 2026-12-07 (user41b): with the home's node stopped, ``node plan`` showed the
    measured tok/s of whatever node answered on the home's port (another home's). The
    home's key names its node, as ``node pause`` checks (``refuse_another_node``)."""
    from LLM_Mesh.node.keys import load_or_create_key

    home = tmp_path / "h"
    mine = load_or_create_key(home / "node.key").node_id
    measured = {"answers": 4, "tokens_per_s": 3.25, "ttft_ms": 900.0, "simulated": False}
    info: dict[str, Any] = {"node_id": "node-someoneelse", "models": [
        {"id": MODEL, "measured": measured}]}  # fmt: skip
    use_transport(monkeypatch, _plan_transport(info, []))
    r = invoke("plan", "--home", str(home), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "measured" not in _row(r.output, "est. tok/s")  # no such column
    said = " ".join(r.output.split())
    assert "is node-someoneelse, not this home's node" in said and mine in said, said
    assert "measured tok/s are not shown" in said, said
    info["node_id"] = mine  # the home's own node: shown as before
    r = invoke("plan", "--home", str(home), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "measured tok/s" in _row(r.output, "est. tok/s")
    assert "not shown" not in r.output


@pytest.mark.parametrize(
    "info",
    [httpx.ConnectError("refused"), httpx.Response(403, json={"error": {}}), httpx.Response(200)],
    ids=["no node", "refused", "not json"],
)
def test_plan_prints_as_before_when_no_node_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_machine: None, info: Any
) -> None:
    use_transport(monkeypatch, _plan_transport(info, []))
    r = invoke("plan", "--home", str(tmp_path / "h"), "--registry", "http://reg.test")
    assert r.exit_code == 0, r.output
    assert "measured" not in _row(r.output, "est. tok/s")  # the header: no such column
    assert "error" not in r.output.lower()


@pytest.fixture
def silent_node() -> Iterator[tuple[int, threading.Event]]:
    """A node that takes connections and never answers (stopped, hung): its port, and an
    event set once the client let go of its connection (the client's wait ended)."""
    let_go = threading.Event()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)

        def hold() -> None:
            conn, _ = s.accept()
            with conn:
                while conn.recv(4096):  # read the request, answer nothing, until closed
                    pass
            let_go.set()

        threading.Thread(target=hold, daemon=True).start()
        yield s.getsockname()[1], let_go


def test_plan_asks_the_registry_while_a_silent_node_is_waited_for(
    tmp_path: Path, big_machine: None, silent_node: tuple[int, threading.Event]
) -> None:
    """Found 2026-12-07: ``node plan`` asked the home's node first and waited up to 2 s for
    its ``/mesh/info``, then asked the registry: a node that takes the connection and says
    nothing held the plan, unsaid. Now both are asked together, the node for at most
    ``MEASURED_READ_S`` (1 s), and a line says it did not answer."""
    port, let_go = silent_node
    registry_asked_while_waiting: list[bool] = []
    with socket.socket() as reg:
        reg.bind(("127.0.0.1", 0))
        reg.listen(8)

        def registry() -> None:  # a registry without /mesh/demand: 404, at once
            conn, _ = reg.accept()
            with conn:
                conn.recv(65536)
                registry_asked_while_waiting.append(not let_go.is_set())
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip

        threading.Thread(target=registry, daemon=True).start()
        toml = tmp_path / "node.toml"
        toml.write_text(
            f'engine = "sim"\nmodels = ["{MODEL}"]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        started = time.monotonic()
        r = invoke("plan", "--home", str(tmp_path / "h"), "--config", str(toml),
                   "--registry", f"http://127.0.0.1:{reg.getsockname()[1]}")  # fmt: skip
        took = time.monotonic() - started
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert f"the node at http://127.0.0.1:{port} did not answer within 1 s" in said, said
    assert "does not publish demand yet" in said, said  # the registry's answer, used
    assert registry_asked_while_waiting == [True]  # asked beside the node, not after it
    assert let_go.wait(scaled(SOON_S))  # the node's connection let go
    # the node held the plan at most its bound (1 s): a generous deadline, as on this box
    assert took < MEASURED_READ_S + scaled(SOON_S), took
