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
    own = ("http://127.0.0.1:8801",)
    async with running(tmp_path, private_node_origins=own, local_mesh="up") as h:
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
            assert "its own node's (`llm-mesh up`'s registry)" in message, message
            # found 2026-12-03: it named only `registry serve --allow-private-nodes`, which
            # `up` users do not run; `up` has its own flag for nodes on this machine now
            assert "restart it as `llm-mesh up --allow-local-nodes`" in message, message
            assert "llm-mesh registry serve --allow-private-nodes" in message
            assert "127.0.0.1:8801" not in message.replace(url, "")  # the allowed one: not said
        assert h.table.get("other") is None


async def test_registry_serve_with_one_private_origin_names_its_own_flags(tmp_path: Path) -> None:
    """``registry serve --allow-private-node URL`` (not `up`): its refusal says `serve`'s flags."""
    async with running(tmp_path, private_node_origins=("http://127.0.0.1:8801",)) as h:
        r = await h.client.post("/mesh/nodes", json=registration("x", url="http://127.0.0.1:9"))
        assert r.status_code == 403, r.text
        message = r.json()["error"]["message"]
        assert "the private origins it was started with (--allow-private-node)" in message
        assert "`llm-mesh registry serve --allow-private-nodes`" in message
        assert "llm-mesh up" not in message


async def _local_dns(host: str, port: int) -> list[str]:
    return {
        "localhost": ["127.0.0.1", "::1"],
        "intranet.example": ["10.20.30.40"],
        "metadata.example": ["169.254.169.254"],
        "half.example": ["127.0.0.1", "10.0.0.5"],  # one loopback answer does not carry the other
    }.get(host, ["93.184.216.34"])


_UP_OWN = ("http://127.0.0.1:8801",)  # what `llm-mesh up` passes for its own node


async def test_up_allow_local_nodes_lets_a_loopback_node_join(tmp_path: Path) -> None:
    """Found 2026-12-03: a node started with ./setup-node-operator.sh on the machine that runs
    `llm-mesh up` was refused (403 loopback), and `up` had no flag to allow it."""
    async with running(
        tmp_path, private_node_origins=_UP_OWN, local_mesh="up", allow_loopback_nodes=True,
        resolver=_local_dns,
    ) as h:  # fmt: skip
        urls = ["http://127.0.0.1:8802", "http://[::1]:8803", "http://localhost:8804"]
        for i, url in enumerate(urls):
            r = await h.client.post("/mesh/nodes", json=registration(f"n{i}", url=url))
            assert r.status_code == 200, r.text
            assert h.table.get(f"n{i}") is not None
        assert h.runtime.pins.addresses("localhost") == ("127.0.0.1", "::1")


async def test_up_without_allow_local_nodes_refuses_a_loopback_node(tmp_path: Path) -> None:
    async with running(tmp_path, private_node_origins=_UP_OWN, local_mesh="up") as h:
        r = await h.client.post("/mesh/nodes", json=registration("n", url="http://127.0.0.1:8802"))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "loopback"
        assert "`llm-mesh up --allow-local-nodes`" in r.json()["error"]["message"]
        assert h.table.get("n") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5:8801", "private"),
        ("http://192.168.0.9:8801", "private"),
        ("http://169.254.169.254", "link_local"),
        ("http://[fe80::1]:8801", "link_local"),
        ("http://[fd00::9]:8801", "private"),
        ("http://0.0.0.0:8801", "unspecified"),
        ("http://[::ffff:127.0.0.1]:8801", "loopback"),  # IPv4-mapped: not allowed
        ("http://[2002:7f00:1::]:8801", "loopback"),  # 6to4 leaves the machine
        ("http://intranet.example:8801", "private"),
        ("http://metadata.example", "link_local"),
        ("http://half.example:8801", "private"),
    ],
)
async def test_up_allow_local_nodes_still_refuses_the_lan_and_metadata(
    tmp_path: Path, url: str, reason: str
) -> None:
    """The attack: with `up --allow-local-nodes`, register a LAN address, the cloud metadata
    address, or a name or IPv6 form that reaches one of them."""
    async with running(
        tmp_path, private_node_origins=_UP_OWN, local_mesh="up", allow_loopback_nodes=True,
        resolver=_local_dns,
    ) as h:  # fmt: skip
        r = await h.client.post("/mesh/nodes", json=registration("evil", url=url))
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["code"] == "node_address_refused" and err["reason"] == reason
        assert (
            "global and loopback addresses only (`llm-mesh up --allow-local-nodes`"
            in (err["message"])
        )
        assert "`llm-mesh registry serve --allow-private-nodes`" in err["message"]
        assert h.table.get("evil") is None
        assert await h.store.get_node("evil") is None


async def test_registry_serve_allow_loopback_nodes(tmp_path: Path) -> None:
    async with running(tmp_path, allow_loopback_nodes=True) as h:
        r = await h.client.post("/mesh/nodes", json=registration("a", url="http://127.0.0.1:88"))
        assert r.status_code == 200, r.text
        r = await h.client.post("/mesh/nodes", json=registration("b", url="http://10.0.0.5:88"))
        assert r.status_code == 403, r.text
        message = r.json()["error"]["message"]
        assert "global and loopback addresses only (--allow-loopback-nodes)" in message
        assert "--allow-private-nodes" in message and "llm-mesh up" not in message


async def test_global_node_registers_and_serves(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        assert len(node.calls) == 1
