"""The gateway's key: made once, handed to nodes at registration, signing every forwarded
request for the node it goes to (``registry/gateway_key.py``, the send stage)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from LLM_Mesh.core.gateway_auth import (
    HDR_GATEWAY,
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    GatewayVerifier,
)
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.core.key_rotation import vouches_for
from LLM_Mesh.core.schemas import RegistrationAccepted
from LLM_Mesh.errors import BadSignature, ReplayedMessage
from LLM_Mesh.registry.gateway_key import load_or_create_registry_key, registry_key_path
from tests.registry.helpers import make_settings, registration, running

CHAT = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


def test_the_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = registry_key_path(make_settings(tmp_path))
    first = load_or_create_registry_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = load_or_create_registry_key(path)
    assert path.read_bytes() == before
    assert first.private_bytes_raw() == again.private_bytes_raw()


def test_a_corrupt_key_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "registry.key"
    path.write_text("not a key")
    with pytest.raises(ValueError, match="not a readable Ed25519 key"):
        load_or_create_registry_key(path)
    assert path.read_text() == "not a key"


async def test_registration_answer_carries_the_gateway_key(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        accepted = RegistrationAccepted.model_validate(r.json())
        signer = h.runtime.signer
        assert accepted.registry_public_key == signer.public_key
        assert accepted.registry_id == signer.registry_id
    # a restart (or a replica with the same $LLM_MESH_HOME/registry.key) keeps the key
    async with running(tmp_path) as h2:
        r = await h2.client.post("/mesh/nodes", json=registration("node-a"))
        assert r.json()["registry_public_key"] == accepted.registry_public_key


async def test_the_answer_announces_a_rotation_only_with_a_previous_key(tmp_path: Path) -> None:
    """``registry.key.previous``: every registration answer carries its signature naming
    the current key (``key_rotation``), which a node that pinned the previous key checks;
    without that file, no statement."""
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        assert r.json().get("key_rotation") is None
        old = h.runtime.signer.public_key
    key_file = registry_key_path(make_settings(tmp_path))
    key_file.rename(tmp_path / "registry.key.previous")  # the operator's rotation
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        accepted = r.json()
        new = h.runtime.signer.public_key
        # a heartbeat names the gateway: a node that pinned another registers again
        hb = await h.client.post("/mesh/nodes/node-a/heartbeat", json={})
        assert hb.json()["registry_id"] == h.runtime.signer.registry_id
        # and that its gateway sends the body's SHA-256: a node that missed the registration's
        # answer learns it here (found 2026-12-04)
        assert hb.json()["gateway_body_sha256"] is True
    assert new != old and accepted["registry_public_key"] == new
    statement = accepted["key_rotation"]
    assert statement["public_key"] == new and statement["previous_public_key"] == old
    assert vouches_for(statement, old, new)
    assert not vouches_for(statement, new, new)


@pytest.mark.parametrize("stream", [False, True])
async def test_every_forwarded_request_is_signed_for_its_node(tmp_path: Path, stream: bool) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        key = h.runtime.signer.public_key
        body = {**CHAT, "stream": stream}
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        (call,) = node.calls
        headers, raw = call["headers"], call["raw"]
        verifier = GatewayVerifier(key, "node-a")
        assert verifier.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())
        with pytest.raises(ReplayedMessage):  # what went to the node cannot be sent again
            verifier.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())
        assert headers[HDR_GATEWAY] == h.runtime.signer.registry_id
        assert headers["x-request-id"] == r.headers["x-mesh-request-id"]


async def test_a_node_refusing_the_gateway_is_skipped(tmp_path: Path) -> None:
    """A node that has not pinned the key yet (401) did nothing: the next node serves."""
    async with running(tmp_path) as h:
        await h.register("node-a", behavior="401")
        await h.register("node-b")
        for _ in range(4):
            r = await h.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200, r.text
            assert r.json()["mesh"]["node_id"] == "node-b"


async def test_only_refusing_nodes_is_503_not_the_nodes_401(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a", behavior="401")
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "model_unavailable" and "refused the gateway" in err["message"]


def _agreed(h: object, node_id: str, kx: NodeKx, answer: dict[str, object]) -> GatewayVerifier:
    """The node's side of the answer: its verifier with the key it agreed."""
    rt = h.runtime  # type: ignore[attr-defined]
    v = GatewayVerifier(rt.signer.public_key, node_id)
    v.session_key = kx.agree(v.key, v.registry_id, node_id, answer.get("gateway_kx_key"),
                             answer.get("gateway_kx_signature"))  # fmt: skip
    return v


@pytest.mark.parametrize("stream", [False, True])
async def test_a_node_that_sends_its_x25519_key_gets_macs(tmp_path: Path, stream: bool) -> None:
    kx = NodeKx()
    async with running(tmp_path) as h:
        node = h.nodes.add("node-a")
        r = await h.client.post(
            "/mesh/nodes", json=registration("node-a", gateway_kx_key=kx.public_key)
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["gateway_kx_key"] == h.runtime.signer.kx_public_key
        v = _agreed(h, "node-a", kx, answer)
        assert v.session_key is not None
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert r.status_code == 200, r.text
        (call,) = node.calls
        headers, raw = call["headers"], call["raw"]
        assert HDR_GATEWAY_MAC in headers and HDR_GATEWAY_SIGNATURE not in headers
        assert v.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())
        with pytest.raises(ReplayedMessage):
            v.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())


async def test_a_node_without_an_x25519_key_is_signed_for(tmp_path: Path) -> None:
    """An older node (no ``gateway_kx_key``): no agreement in the answer, signatures."""
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        assert r.json()["gateway_kx_key"] is None and r.json()["gateway_kx_signature"] is None
        assert (await h.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert HDR_GATEWAY_SIGNATURE in node.calls[0]["headers"]


async def test_the_agreement_follows_the_nodes_key(tmp_path: Path) -> None:
    """A re-registration with a new X25519 key (the node restarted) replaces the session;
    a deregistration drops it; a restarted registry agrees again from a heartbeat."""
    first, second = NodeKx(), NodeKx()
    async with running(tmp_path) as h:
        node = h.nodes.add("node-a")
        r1 = await h.client.post(
            "/mesh/nodes", json=registration("node-a", gateway_kx_key=first.public_key)
        )
        old = _agreed(h, "node-a", first, r1.json())
        r2 = await h.client.post(
            "/mesh/nodes", json=registration("node-a", gateway_kx_key=second.public_key)
        )
        new = _agreed(h, "node-a", second, r2.json())
        assert old.session_key != new.session_key
        assert (await h.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        headers, raw = node.calls[-1]["headers"], node.calls[-1]["raw"]
        with pytest.raises(BadSignature):  # the old process's key does not fit
            old.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())
        new.verify(headers, "/v1/chat/completions", raw, h.runtime.wall_clock())
        assert (await h.client.delete("/mesh/nodes/node-a")).status_code == 204
        assert not h.runtime.signer.has_session("node-a")
    async with running(tmp_path) as h2:  # same registry.key; knows nothing of node-a's key
        h2.nodes.add("node-a")
        await h2.client.post("/mesh/nodes", json=registration("node-a"))
        assert not h2.runtime.signer.has_session("node-a")
        hb = {"in_flight": 0, "queued": 0, "gateway_kx_key": second.public_key}
        r = await h2.client.post("/mesh/nodes/node-a/heartbeat", json=hb)
        assert r.status_code == 200, r.text
        assert h2.runtime.signer.has_session("node-a")
        assert (await h2.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        headers, raw = (
            h2.nodes.nodes["node-a:8801"].calls[-1]["headers"],
            h2.nodes.nodes["node-a:8801"].calls[-1]["raw"],
        )
        new.verify(headers, "/v1/chat/completions", raw, h2.runtime.wall_clock())


async def test_a_previous_key_equal_to_the_current_one_announces_nothing(tmp_path: Path) -> None:
    """``registry.key.previous`` copied instead of moved: no statement (it would name the
    pinned key itself), a WARNING instead."""
    key_file = registry_key_path(make_settings(tmp_path))
    load_or_create_registry_key(key_file)
    (tmp_path / "registry.key.previous").write_bytes(key_file.read_bytes())
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        assert r.json().get("key_rotation") is None
