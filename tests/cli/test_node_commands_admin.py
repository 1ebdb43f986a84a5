"""``llm-mesh node`` commands that ask a running node: pause, resume, drain, info (its
counters and earnings), which node they reach (the home's node.toml, the home it runs in), and
what they say when none answers or the admin API refuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig, local_node_url, save_node_config
from LLM_Mesh.node.control import wait_drained
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from tests.cli.node_commands_fixtures import invoke, use_transport

# --- the running node -----------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeService]:
    async def no_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    svc = NodeService(
        NodeConfig(engine="sim", models=["gemma-3-270m"], register=False),
        Settings(home=tmp_path / "h"),
        engine=SimEngine(["gemma-3-270m"], ttft_s=0, sleep=no_sleep),
        hardware=Hardware(cpu_count=3, memory_bytes=4 * 10**9),
    )
    asyncio.run(svc.start())
    app = create_node_app(svc, manage_lifespan=False)
    use_transport(monkeypatch, httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)))
    yield svc
    asyncio.run(svc.stop())


def test_pause_resume_drain_no_wait(node: NodeService) -> None:
    r = invoke("pause")
    assert r.exit_code == 0 and node.node_id in r.output and "paused" in r.output
    assert node.state.value == "paused"
    assert "online" in invoke("resume", "--node-url", "http://127.0.0.1:8801/").output
    r = invoke("drain", "--no-wait")
    assert r.exit_code == 0 and node.state.value == "draining"
    r = invoke("drain", "--timeout", "5")  # nothing in flight: drained at once
    assert r.exit_code == 0 and "drained" in r.output


def test_info_shows_identity_models_and_counters(node: NodeService) -> None:
    node.requests_served, node.tokens_generated = 7, 321
    r = invoke("info")
    assert r.exit_code == 0, r.output
    for text in (node.node_id, "gemma-3-270m", "7 (0 failed)", "321", "3 CPUs", "standalone"):
        assert text in r.output, text


def test_info_counts_requests_their_client_left_apart(node: NodeService) -> None:
    node.requests_served, node.requests_failed, node.requests_cancelled = 6, 0, 1
    r = invoke("info")
    assert r.exit_code == 0, r.output
    assert "6 (0 failed, 1 cancelled)" in r.output


def test_commands_fail_cleanly_when_no_node_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    use_transport(monkeypatch, httpx.MockTransport(refused))
    for cmd in ("info", "pause", "resume", "drain"):
        r = invoke(cmd)
        assert r.exit_code == 1 and "no node answers" in r.output


def test_commands_reach_the_node_of_the_homes_node_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-03: with a second node set up as the README says
    (``LLM_MESH_HOME=~/.llm-mesh-node2 ./setup-node-operator.sh --port 8802``),
    ``LLM_MESH_HOME=~/.llm-mesh-node2 llm-mesh node drain`` drained ``llm-mesh up``'s node
    on 8801: the commands went to 8801 whatever node.toml said."""
    seen: list[str] = []

    def node(r: httpx.Request) -> httpx.Response:
        seen.append(f"{r.url.scheme}://{r.url.host}:{r.url.port}")
        return httpx.Response(200, json={"node_id": "n", "state": "paused"})

    use_transport(monkeypatch, httpx.MockTransport(node))
    home = tmp_path / "mesh-home"  # conftest's $LLM_MESH_HOME
    save_node_config(NodeConfig(engine="sim", host="127.0.0.1", port=8802), home / "node.toml")
    for args in (["pause"], ["resume"], ["drain", "--no-wait"]):
        assert invoke(*args).exit_code == 0
    assert seen == ["http://127.0.0.1:8802"] * 3, seen
    save_node_config(
        NodeConfig(engine="sim", host="0.0.0.0", port=8803, tls_cert="c.pem", tls_key="k.pem"),
        home / "node.toml",
    )
    seen.clear()
    invoke("pause")
    invoke("pause", "--node-url", "http://127.0.0.1:9000")
    assert seen == ["https://127.0.0.1:8803", "http://127.0.0.1:9000"], seen


def test_commands_reach_the_node_running_in_the_home_without_a_node_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-05 (newuser31): a node started as the README says, ``LLM_MESH_HOME=DIR
    llm-mesh node start --port 8803 ...`` (no node.toml), and ``llm-mesh up --node-port
    18801``'s: ``node drain``/``info`` in that home went to 8801 ("no node answers", or
    another home's node there, e.g. ``up``'s). A running node writes where it listens into
    its key's lock, which the commands read while the node holds it; node.toml's port
    comes second (flags override it), 8801 last."""
    from LLM_Mesh.node.keys import key_in_use

    seen: list[str] = []

    def node(r: httpx.Request) -> httpx.Response:
        seen.append(f"{r.url.scheme}://{r.url.host}:{r.url.port}")
        return httpx.Response(200, json={"node_id": "n", "state": "paused"})

    use_transport(monkeypatch, httpx.MockTransport(node))
    home = tmp_path / "mesh-home"  # conftest's $LLM_MESH_HOME
    with key_in_use(home / "node.key", "http://127.0.0.1:18803"):
        for args in (["pause"], ["resume"], ["drain", "--no-wait"]):
            assert invoke(*args).exit_code == 0
        save_node_config(NodeConfig(engine="sim", port=8802), home / "node.toml")
        invoke("pause")  # started with --port 18803 over node.toml's 8802
    invoke("pause")  # stopped: node.toml's again
    assert seen == ["http://127.0.0.1:18803"] * 4 + ["http://127.0.0.1:8802"], seen
    assert (home / "node.key.lock").read_bytes() == b""  # nothing stale left


def test_commands_take_the_home_a_node_was_started_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-05 (newuser32): ``llm-mesh up --home DIR`` and ``node start --home
    DIR`` take the home as a flag, but ``node pause|resume|drain|info --home DIR`` was
    ``No such option: --home`` (exit 2): an operator had to know to write
    ``LLM_MESH_HOME=DIR`` in front, and without it reached $LLM_MESH_HOME's node (or
    ``up``'s on 8801) instead of the one started with ``--home``."""
    from LLM_Mesh.node.keys import key_in_use

    seen: list[str] = []

    def node(r: httpx.Request) -> httpx.Response:
        seen.append(f"{r.url.scheme}://{r.url.host}:{r.url.port}")
        return httpx.Response(200, json={"node_id": "n", "state": "paused"})

    use_transport(monkeypatch, httpx.MockTransport(node))
    other = tmp_path / "node2-home"
    with key_in_use(other / "node.key", "http://127.0.0.1:18804"):
        for args in (["pause"], ["resume"], ["drain", "--no-wait"]):
            r = invoke(*args, "--home", str(other))
            assert r.exit_code == 0, r.output
        save_node_config(NodeConfig(engine="sim", port=8802), other / "node.toml")
    r = invoke("pause", "--home", str(other))  # stopped: that home's node.toml
    assert r.exit_code == 0, r.output
    assert seen == ["http://127.0.0.1:18804"] * 3 + ["http://127.0.0.1:8802"], seen


def test_info_takes_the_home_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[str] = []

    def node(r: httpx.Request) -> httpx.Response:
        seen.append(f"{r.url.host}:{r.url.port}")
        raise httpx.ConnectError("refused")

    use_transport(monkeypatch, httpx.MockTransport(node))
    other = tmp_path / "node2-home"
    save_node_config(NodeConfig(engine="sim", port=8805), other / "node.toml")
    r = invoke("info", "--home", str(other))
    assert r.exit_code == 1 and "no node answers" in r.output, r.output
    assert seen == ["127.0.0.1:8805"], seen


def test_local_node_url() -> None:
    assert local_node_url("0.0.0.0", 8801, False) == "http://127.0.0.1:8801"
    assert local_node_url("::", 8801, True) == "https://127.0.0.1:8801"
    assert local_node_url("::1", 8802, False) == "http://[::1]:8802"
    assert local_node_url("localhost", 8802, False) == "http://localhost:8802"


async def test_wait_drained_polls_until_idle() -> None:
    loads = iter([(2, 1), (1, 0), (0, 0)])
    polls: list[dict[str, Any]] = []

    def health(_r: httpx.Request) -> httpx.Response:
        running, waiting = next(loads)
        return httpx.Response(200, json={"in_flight": running, "queued": waiting})

    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    async with httpx.AsyncClient(transport=httpx.MockTransport(health)) as c:
        last = await wait_drained(c, "http://n", on_poll=polls.append, sleep=sleep)
    assert last == {"in_flight": 0, "queued": 0} and len(polls) == 3 and sleeps == [0.5, 0.5]
    busy: Callable[[httpx.Request], httpx.Response] = lambda _r: httpx.Response(  # noqa: E731
        200, json={"in_flight": 1, "queued": 0}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(busy)) as c:
        with pytest.raises(TimeoutError, match="still 1 running"):
            await wait_drained(c, "http://n", timeout_s=1.0, sleep=sleep)


def test_admin_refused_from_elsewhere_is_reported(
    node: NodeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_node_app(node, manage_lifespan=False)
    use_transport(monkeypatch, httpx.ASGITransport(app=app, client=("203.0.113.9", 5000)))
    r = invoke("pause")
    assert r.exit_code == 1 and "loopback" in r.output
    assert json.loads(json.dumps(node.health()))["state"] == "online"


# --- node info: the node's earnings -------------------------------------------------------------


def _registering_node(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: Callable[[httpx.Request], httpx.Response],
) -> NodeService:
    svc = NodeService(
        NodeConfig(
            engine="sim", models=["gemma-3-270m"], register=True, operator_token="lmo_node",
            registry_url="http://reg.test", allow_http_first_use=True,
        ),
        Settings(home=tmp_path / "h"),
        engine=SimEngine(["gemma-3-270m"], ttft_s=0),
        hardware=Hardware(cpu_count=3, memory_bytes=4 * 10**9),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(registry)),
    )  # fmt: skip
    asyncio.run(svc.start())
    app = create_node_app(svc, manage_lifespan=False)
    use_transport(monkeypatch, httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)))
    return svc


def test_info_shows_the_nodes_earnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.test_earnings_render import REPORT

    asked: list[httpx.Request] = []

    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/earnings":
            asked.append(request)
            return httpx.Response(200, json={**REPORT, "node": request.url.params["node"]})
        return httpx.Response(200, json={"node_id": "x", "heartbeat_interval_s": 3600})

    svc = _registering_node(tmp_path, monkeypatch, registry)
    try:
        r = invoke("info")
    finally:
        asyncio.run(svc.stop())
    assert r.exit_code == 0, r.output
    assert asked and asked[0].headers["authorization"] == "Bearer lmo_node"
    assert asked[0].url.params["node"] == svc.node_id
    earnings = r.output[r.output.index("Earnings") :]
    for part in ("Earnings", "154,321", "Per day", "Per model"):
        assert part in earnings, part


def test_info_says_when_the_registry_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    svc = _registering_node(tmp_path, monkeypatch, registry)
    try:
        r = invoke("info")
    finally:
        asyncio.run(svc.stop())
    assert r.exit_code == 0, r.output  # the node's own info is still shown
    assert svc.node_id in r.output
    assert "earnings unavailable" in r.output and "unreachable" in r.output
    assert "µNT" not in r.output  # no zeros pretending to be earnings
