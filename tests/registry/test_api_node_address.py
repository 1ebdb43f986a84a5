"""POST /mesh/nodes refuses node URLs the registry must not call (no SSRF), in OpenAI's
error shape, before the node reaches the table, the router or the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.registry.helpers import registration, running


async def _private_dns(host: str, port: int) -> list[str]:
    return {"intranet.example": ["10.20.30.40"], "metadata.example": ["169.254.169.254"]}.get(
        host, ["93.184.216.34"]
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8801", "loopback"),
        ("http://[::1]:8801", "loopback"),
        ("http://0.0.0.0:8801", "unspecified"),
        ("http://169.254.169.254", "link_local"),
        ("http://10.0.0.5:8801", "private"),
        ("http://172.16.0.9:8801", "private"),
        ("http://192.168.0.9:8801", "private"),
        ("http://[fd00::9]:8801", "private"),
        ("http://[::ffff:10.0.0.5]:8801", "private"),
        ("http://2130706433:8801", "loopback"),
        ("http://0x7f000001:8801", "loopback"),
        ("http://intranet.example:8801", "private"),
        ("http://metadata.example", "link_local"),
    ],
)
async def test_private_node_is_refused_403(tmp_path: Path, url: str, reason: str) -> None:
    async with running(tmp_path, resolver=_private_dns) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url))
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["type"] == "permission_error"
        assert err["code"] == "node_address_refused"
        assert err["param"] == "url"
        assert err["reason"] == reason
        assert "global addresses only" in err["message"]
        assert h.table.get("n1") is None
        assert await h.store.get_node("n1") is None
        assert (await h.client.get("/mesh/nodes")).json()["nodes"] == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://user:pw@node.example:8801", "userinfo"),
        ("http://127.1:8801", "ip_spelling"),
    ],
)
async def test_refusals_with_private_nodes_allowed(tmp_path: Path, url: str, reason: str) -> None:
    """``--allow-private-nodes`` allows private addresses, never userinfo or odd spellings."""
    async with running(tmp_path, allow_private_nodes=True) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "url"
        assert r.json()["error"]["reason"] == reason
        assert h.table.get("n1") is None


async def test_private_nodes_allowed_by_the_flag(tmp_path: Path) -> None:
    async with running(tmp_path, allow_private_nodes=True, resolver=_private_dns) as h:
        for i, url in enumerate(["http://127.0.0.1:8801", "http://intranet.example:8801"]):
            r = await h.client.post("/mesh/nodes", json=registration(f"n{i}", url=url))
            assert r.status_code == 200, r.text
        assert h.runtime.pins.addresses("intranet.example") == ("10.20.30.40",)


async def test_one_private_origin_allowed(tmp_path: Path) -> None:
    """What ``llm-mesh up`` does: its own node's origin only."""
    async with running(tmp_path, private_node_origins=("http://127.0.0.1:8801",)) as h:
        r = await h.client.post(
            "/mesh/nodes", json=registration("own", url="http://127.0.0.1:8801")
        )
        assert r.status_code == 200, r.text
        for url in ("http://127.0.0.1:22", "http://169.254.169.254:8801"):
            r = await h.client.post("/mesh/nodes", json=registration("other", url=url))
            assert r.status_code == 403, r.text
            # found 2026-12-02: it said "run it with --allow-private-nodes", a flag `llm-mesh
            # up` does not have; now it says what this registry allows and what to run
            message = r.json()["error"]["message"]
            assert "`llm-mesh up`'s registry: its own node's only" in message, message
            assert "llm-mesh registry serve --allow-private-nodes" in message
            assert "127.0.0.1:8801" not in message.replace(url, "")  # the allowed one: not said
        assert h.table.get("other") is None


async def test_global_node_registers_and_serves(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        assert len(node.calls) == 1
