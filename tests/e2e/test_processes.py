"""Failure behaviour with real processes: unreachable registry, dead node, registry restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.cli.receipt_commands import check, fetch_keys
from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, MessageKind, NodeSigner
from LLM_Mesh.core.receipt_verify import parse_keys
from LLM_Mesh.node.keys import load_or_create_key
from tests.e2e.conftest import free_port, start_mesh
from tests.waiting import SOON_S, START_S, scaled

pytestmark = pytest.mark.e2e


def test_status_with_no_registry_says_so_and_fails() -> None:
    env = {**os.environ, "LLM_MESH_REGISTRY_URL": f"http://127.0.0.1:{free_port()}"}
    out = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.distributed_models"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "unreachable" in (out.stdout + out.stderr).lower()


def _wait(pred, timeout: float = SOON_S) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``pred`` until true, at most ``scaled(timeout)`` s (tests/waiting.py)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _listing(url: str) -> list[dict[str, Any]]:
    """The registry's ``GET /mesh/nodes``, given ``SOON_S`` (scaled) to answer: a registry
    on a loaded box answers late, it is not down (2 s until flakes39: a late answer raised
    ReadTimeout out of the poll, failing the test)."""
    r = httpx.get(url + "/mesh/nodes", timeout=scaled(SOON_S))
    nodes: list[dict[str, Any]] = r.json()["nodes"]
    return nodes


def test_dead_node_gives_a_clear_error_and_the_gateway_stays_up(tmp_path: Path) -> None:
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        ok = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert ok.status_code == 200 and ok.json()["mesh"]["simulated"] is True
        node = mesh._children[-1].proc
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)
        r = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert r.status_code in (502, 503, 504), r.text
        assert r.json()["error"]["message"]
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        # the node leaves routing after missed heartbeats (1 s × 3 here): then a 503 at once
        assert _wait(
            lambda: (
                httpx.post(
                    url + "/v1/completions", json={"model": "mistral-7b", "prompt": "hi"}, timeout=5
                ).status_code
                == 503
            )
        )
    finally:
        mesh.stop()


def test_registry_restart_nodes_come_back_nothing_lost(tmp_path: Path) -> None:
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        for _ in range(3):
            r = httpx.post(
                url + "/v1/completions",
                json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
                timeout=10,
            )
            assert r.status_code == 200

        def counted() -> list[int]:
            return [
                n["requests"] for n in httpx.get(url + "/mesh/nodes", timeout=5).json()["nodes"]
            ]

        # counters drift: the listing shows them up to a second late (registry/node_listing.py)
        assert _wait(lambda: counted() == [3]), counted()
        # no waiting for the request log: a clean shutdown writes what is queued
        reg = mesh._children[0]
        reg.proc.send_signal(signal.SIGTERM)
        reg.proc.wait(15)
        proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *mesh.registry_command()],
            env=mesh._env(),
            stdout=reg.log,
            stderr=subprocess.STDOUT,
        )
        try:

            def node_back() -> bool:
                try:
                    nodes = httpx.get(url + "/mesh/nodes", timeout=2).json()["nodes"]
                except httpx.HTTPError:
                    return False
                return any(n["healthy"] for n in nodes)

            # a process start: 98.5 s for a registry at load 13-18 (tests/waiting.py); 30 s before
            assert _wait(node_back, START_S), "the node did not come back after a registry restart"
            nodes = httpx.get(url + "/mesh/nodes", timeout=5).json()["nodes"]
            assert [n["requests"] for n in nodes] == [3], nodes  # counters survived the restart

            def served() -> bool:  # as a client honouring a 503's Retry-After would, briefly
                r = httpx.post(
                    url + "/v1/completions",
                    json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
                    timeout=10,
                )
                assert r.status_code in (200, 503), r.text
                return r.status_code == 200

            assert _wait(served), "no answer after the node came back"

        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    finally:
        mesh.stop()


def test_chat_stream_continues_on_another_node_when_its_node_dies(tmp_path: Path) -> None:
    import json

    sim = ["--sim-tokens-per-s", "40", "--sim-ttft-s", "0.01"]
    mesh = start_mesh(
        tmp_path / "home", model="mistral-7b", engine="sim", node_args=sim, allow_private_nodes=True
    )
    second_port = free_port()
    second_key = tmp_path / "second.key"  # its own key: its own node id
    second_id = load_or_create_key(second_key).node_id
    second = mesh._spawn(
        "node2",
        ["node", "start", "--engine", "sim", "--model", "mistral-7b", *sim,
         "--key-file", str(second_key), "--port", str(second_port), "--registry", mesh.registry_url],
    )  # fmt: skip
    try:
        url = mesh.registry_url
        assert _wait(
            lambda: sum(n["healthy"] for n in _listing(url)) == 2,
            START_S,  # the second node's start
        )
        body = {
            "model": "mistral-7b",
            "messages": [{"role": "user", "content": "tell me a long story"}],
            "max_tokens": 60,
            "stream": True,
        }
        pids = {second_id: second.proc.pid}
        pids.update(
            {
                n["node_id"]: mesh._children[1].proc.pid
                for n in _listing(url)
                if n["node_id"] != second_id
            }
        )
        events = []
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
            assert r.status_code == 200
            served_by = r.headers["x-mesh-node"]
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                events.append(line[5:].strip())
                if len(events) == 8:
                    os.kill(pids[served_by], signal.SIGKILL)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert not any("error" in c for c in chunks), chunks[-3:]
        assert len({c["id"] for c in chunks}) == 1
        text = "".join(
            (c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices")
        )
        assert len(text.split()) >= 20
        final = chunks[-1]
        assert final["mesh"]["node_id"] != served_by
        assert final["usage"]["completion_tokens"] > 8
        # the receipt covers both parts: the killed node's (unsigned: it broke off, the
        # gateway's count) and the continuing node's (signed); the whole text hashes to it
        keys = parse_keys(fetch_keys(url))
        receipt = check("\n".join("data: " + e for e in events), keys)
        assert [(p.node_id, p.status.value) for p in receipt.parts] == [
            (served_by, "broken"), (final["mesh"]["node_id"], "signed")
        ]  # fmt: skip
        assert receipt.completion_tokens == final["usage"]["completion_tokens"]
    finally:
        mesh.stop()


@pytest.mark.postgres
async def test_registry_on_postgresql_records_requests_and_no_prompt(
    tmp_path: Path, pg_database_url: str
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
        database_url=pg_database_url,
    )
    secret = "a prompt that must never be stored 7c1f"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(3):
                r = await client.post(
                    mesh.registry_url + "/v1/completions",
                    json={"model": "mistral-7b", "prompt": secret, "max_tokens": 4},
                )
                assert r.status_code == 200
    finally:
        mesh.stop()  # shutdown flushes the request log
    conn = await asyncpg.connect(pg_database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        nodes = await conn.fetch("SELECT node_id, requests FROM nodes")
        rows = await conn.fetch("SELECT * FROM requests")
    finally:
        await conn.close()
    assert len(nodes) == 1 and nodes[0]["requests"] == 3
    assert len(rows) == 3 and all(r["outcome"] == "ok" and r["completion_tokens"] > 0 for r in rows)
    assert all(secret not in " ".join(str(v) for v in r.values()) for r in rows)


def test_local_mesh_registry_allows_its_own_node_only(tmp_path: Path) -> None:
    """`up`: the registry takes its own node on loopback, and no other private address."""
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        # https for the metadata address: a plain-http one off loopback is refused before its
        # address is looked at (403 plain_http_remote, test_api_plain_http.py)
        for node_url in (f"http://127.0.0.1:{free_port()}", "https://169.254.169.254"):
            # a real operator (up's own) with a real key: only the address is wrong
            signer = NodeSigner(Ed25519PrivateKey.generate(), time.time)
            reg = {"node_id": signer.node_id, "url": node_url, "models": [{"id": "mistral-7b"}]}
            body = json.dumps(reg).encode()
            headers = signer.headers(MessageKind.REGISTER, body)
            headers[HDR_OPERATOR_TOKEN] = mesh._operator_token or ""
            headers["Content-Type"] = "application/json"
            r = httpx.post(url + "/mesh/nodes", content=body, headers=headers, timeout=10)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "node_address_refused"
        nodes = httpx.get(url + "/mesh/nodes", timeout=5).json()["nodes"]
        assert len(nodes) == 1 and "url" not in nodes[0]  # public: no address
        admin_key = (tmp_path / "home" / "admin.key").read_text().strip()
        admin = {"Authorization": f"Bearer {admin_key}"}
        nodes = httpx.get(url + "/mesh/nodes", headers=admin, timeout=5).json()["nodes"]
        assert [n["url"] for n in nodes] == [mesh.node_url]
        # around the gateway, straight to the node (even from its own machine): 401
        direct = httpx.post(
            mesh.node_url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert direct.status_code == 401, direct.text
        assert direct.json()["error"]["code"] == "invalid_signature"
        r = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        # the real processes agreed a session key at registration (the gateway sends MACs)
        node_log = mesh._children[1].log_path.read_text(errors="replace")
        assert "agreed a session key with gateway" in node_log
    finally:
        mesh.stop()


def test_admin_revokes_a_running_node_from_the_cli(tmp_path: Path) -> None:
    """`llm-mesh registry nodes revoke` on the store while the registry runs: the node leaves
    routing within seconds, its next heartbeat is refused (403 ``revoked``) and the node says
    so once, in words, and stops heartbeating there (no HTTP 403 line per heartbeat)."""
    mesh = start_mesh(
        tmp_path / "home",
        model="mistral-7b",
        engine="sim",
        node_args=["--sim-tokens-per-s", "2000"],
    )
    try:
        url = mesh.registry_url
        (node,) = _listing(url)
        out = subprocess.run(
            [sys.executable, "-m", "LLM_Mesh.cli", "registry", "nodes", "revoke", node["node_id"]],
            env=mesh._env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr

        def gone() -> bool:
            return not any(n["healthy"] for n in _listing(url))

        assert _wait(gone), "the revoked node is still routed"
        r = httpx.post(
            url + "/v1/completions",
            json={"model": "mistral-7b", "prompt": "hi", "max_tokens": 4},
            timeout=10,
        )
        assert r.status_code == 503
        node_log = mesh._children[1].log_path
        said = f"the registry at {url} revoked this node ({node['node_id']})"
        assert _wait(lambda: said in node_log.read_text(errors="replace"))
        time.sleep(3)  # heartbeats would have gone on every second or so: none went
        text = node_log.read_text(errors="replace")
        assert text.count(said) == 1 and "HTTP 403" not in text, text[-2000:]
    finally:
        mesh.stop()
