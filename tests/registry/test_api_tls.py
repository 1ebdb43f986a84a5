"""POST /mesh/nodes and TLS: ``--require-tls`` refuses plain-HTTP nodes, a node's certificate
fingerprint (signed registration) is pinned, and a restarted registry asks https nodes to
register again before it trusts them (it learns their pin only from a registration)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import registration, running

FP = "ab" * 32
FP_SHOWN = ":".join(["AB"] * 32)


async def test_plain_http_node_refused_under_require_tls(tmp_path: Path) -> None:
    async with running(tmp_path, require_tls=True) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1"))
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["type"] == "permission_error"
        assert err["param"] == "url"
        assert err["reason"] == "tls_required"
        assert "requires TLS" in err["message"]
        assert h.table.get("n1") is None
        assert await h.store.get_node("n1") is None


async def test_https_node_accepted_under_require_tls_and_pinned(tmp_path: Path) -> None:
    async with running(tmp_path, require_tls=True) as h:
        url = "https://n1.example:8801"
        r = await h.client.post(
            "/mesh/nodes", json=registration("n1", url=url, tls_fingerprint=FP_SHOWN)
        )
        assert r.status_code == 200, r.text
        assert h.runtime.pins.fingerprint(url + "/v1/completions") == FP  # normalised
        assert h.runtime.pins.host_fingerprint("n1.example", 8801) == FP
        # re-registering without one unpins: the node is then verified by the CA bundle
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url))
        assert r.status_code == 200, r.text
        assert h.runtime.pins.fingerprint(url + "/v1/completions") is None


async def test_plain_http_allowed_without_require_tls(tmp_path: Path) -> None:
    """Without ``--require-tls`` and with ``--allow-plain-http-nodes`` (a lab), http nodes on
    other machines register as before (the default: ``test_api_plain_http.py``)."""
    async with running(tmp_path, allow_plain_http_nodes=True) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1"))
        assert r.status_code == 200, r.text


async def test_fingerprint_for_plain_http_is_400(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", tls_fingerprint=FP))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "tls_fingerprint"
        assert h.table.get("n1") is None


async def test_malformed_fingerprint_is_400(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        body = registration("n1", url="https://n1.example:8801", tls_fingerprint="abc")
        r = await h.client.post("/mesh/nodes", json=body)
        assert r.status_code == 400, r.text
        assert h.table.get("n1") is None


async def test_restarted_registry_knows_https_nodes_pins_from_the_store(tmp_path: Path) -> None:
    """The pin is stored with the registration (migration 0017): after a restart the https
    node's heartbeat is taken and its pin is known. A row that does not tell its pin (written
    by a replica of the previous version) still asks the node to register again (404
    unknown_node, and it re-registers at once, with its fingerprint) instead of being called
    unpinned."""
    store = MemoryStore()
    url = "https://n1.example:8801"
    async with running(tmp_path, store=store) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url, tls_fingerprint=FP))
        assert r.status_code == 200, r.text
        assert (await h.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        r = await h.client.post("/mesh/nodes", json=registration("n2"))  # plain http
        assert r.status_code == 200, r.text
    async with running(tmp_path, store=store) as h:
        assert h.runtime.pins.fingerprint(url) == FP
        assert (await h.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert (await h.client.post("/mesh/nodes/n2/heartbeat", json={})).status_code == 200
    rec = await store.get_node("n1")
    assert rec is not None and rec.tls_fingerprint == FP
    await store.upsert_node(replace(rec, tls_fingerprint=None))  # an older replica's row
    async with running(tmp_path, store=store) as h:
        r = await h.client.post("/mesh/nodes/n1/heartbeat", json={})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "unknown_node"
        # a plain-http node has no certificate to learn: it carries on
        assert (await h.client.post("/mesh/nodes/n2/heartbeat", json={})).status_code == 200
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url, tls_fingerprint=FP))
        assert r.status_code == 200, r.text
        assert (await h.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert h.runtime.pins.fingerprint(url) == FP


async def test_another_node_cannot_repin_a_live_nodes_address(tmp_path: Path) -> None:
    """Certificate pins are kept per address (``host:port``), not per node: another
    operator's node registering its own key at a live node's URL (or the same host and
    port written otherwise: upper case, a path, ``http://``) replaced that node's pin with
    its own fingerprint, or removed it, so the gateway refused the victim's certificate:
    its requests failed over, its health checks failed, out of routing and earning nothing
    until it registered again, and the attacker could do it again at once (found
    2026-12-05). Now 403 ``node_url_taken`` while the holder is live (not offline, heard
    from within the expiry, its last check not failed); the same node, or any node once
    the holder is gone, registers there as before."""
    async with running(tmp_path, allow_plain_http_nodes=True) as h:
        url = "https://n1.example:8801"
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url, tls_fingerprint=FP))
        assert r.status_code == 200, r.text
        for evil_url, fp in [
            (url, "cd" * 32),
            ("https://N1.example:8801/v2", "cd" * 32),
            (url, None),
            ("http://n1.example:8801", None),
        ]:
            body = registration("evil", url=evil_url)
            if fp is not None:
                body["tls_fingerprint"] = fp
            r = await h.client.post("/mesh/nodes", json=body)
            assert r.status_code == 403, (evil_url, r.text)
            assert r.json()["error"]["reason"] == "node_url_taken"
            assert h.runtime.pins.fingerprint(url + "/v1/completions") == FP
            assert h.runtime.pins.host_fingerprint("n1.example", 8801) == FP
            assert h.table.get("evil") is None
        # the node itself re-registers (a new certificate) as before
        r = await h.client.post(
            "/mesh/nodes", json=registration("n1", url=url, tls_fingerprint="ef" * 32)
        )
        assert r.status_code == 200, r.text
        # once it is gone (its heartbeats expired), another key may serve at that address
        h.clock.advance(h.runtime.settings.heartbeat_expiry_s + 1)
        stored = h.store.nodes["n1"]  # the store's write checks it too, by the wall clock
        assert stored.last_heartbeat_at is not None
        stored.last_heartbeat_at -= timedelta(seconds=h.runtime.settings.heartbeat_expiry_s + 1)
        r = await h.client.post("/mesh/nodes", json=registration("n2", url=url, tls_fingerprint=FP))
        assert r.status_code == 200, r.text
        assert h.runtime.pins.fingerprint(url + "/v1/completions") == FP
