"""The dashboard's JSON: chart series, a node's history, the server's ledger check."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.registry.ledger import CheckpointRecord
from tests.inprocess_mesh import InProcessMesh
from tests.registry.dashboard.conftest import MODEL, chat, ledger_entries


def get_json(mesh: InProcessMesh, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    with mesh.sync_client() as c:
        r = c.get(path)
        return r.status_code, r.json()


def test_series_counts_requests_and_since_returns_only_the_new_buckets(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    _s, empty = get_json(inprocess_mesh, "/dashboard/api/series")
    assert empty["bucket_s"] == 5 and empty["window_s"] == 3600
    assert len(empty["points"]["t"]) == 720
    assert sum(empty["points"]["requests"]) == 0
    chat(inprocess_mesh, 3)
    chat(inprocess_mesh, 2, stream=True)
    _s, body = get_json(inprocess_mesh, "/dashboard/api/series")
    p = body["points"]
    assert sum(p["requests"]) == 5 and sum(p["errors"]) == 0
    assert set(p) >= {"t", "req_per_s", "errors_per_s", "latency_p50_ms", "latency_p95_ms",
                      "ttft_p50_ms", "ttft_p95_ms", "tokens_per_s"}  # fmt: skip
    last = max(i for i, n in enumerate(p["requests"]) if n)
    assert p["latency_p50_ms"][last] is not None and p["ttft_p50_ms"][last] is not None
    assert p["tokens_per_s"][last] > 0
    since = p["t"][-1]
    _s, newer = get_json(inprocess_mesh, f"/dashboard/api/series?since={since}")
    assert newer["points"]["t"][0] == since and len(newer["points"]["t"]) <= 2


@pytest.mark.parametrize("bad", ["x", "nan", "inf"])
def test_series_refuses_a_bad_since(inprocess_mesh: InProcessMesh, bad: str) -> None:
    status, body = get_json(inprocess_mesh, f"/dashboard/api/series?since={bad}")
    assert status == 400 and body["error"]["param"] == "since"


def test_a_failed_request_is_counted_as_an_error(inprocess_mesh: InProcessMesh) -> None:
    node = inprocess_mesh.add_node(MODEL)
    node.engine.failure_rate = 1.0
    with inprocess_mesh.sync_client() as c:
        r = c.post("/v1/chat/completions",
                   json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert r.status_code >= 500
    _s, body = get_json(inprocess_mesh, "/dashboard/api/series")
    assert sum(body["points"]["errors"]) == 1


def test_node_history(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    chat(inprocess_mesh, 2)
    _s, body = get_json(inprocess_mesh, f"/dashboard/api/nodes/{node_id}/history")
    assert body["node_id"] == node_id and body["bucket_s"] == 60
    assert len(body["points"]["t"]) == 60
    assert sum(body["points"]["requests"]) == 2
    assert [v for v in body["points"]["latency_ms"] if v is not None]
    # a well-formed id this gateway does not know: an empty hour
    _s, other = get_json(inprocess_mesh, "/dashboard/api/nodes/node-" + "a" * 26 + "/history")
    assert sum(other["points"]["requests"]) == 0


@pytest.mark.parametrize(
    "said",
    [
        "\u202emoc.elpmaxe-live at again in log",  # a right-to-left override
        "Your node is revoked: re-register at evil.example with your operator token",
        "x" * 4000,
        "node-nobody",
    ],
)
def test_a_link_to_a_nodes_history_cannot_put_its_own_text_on_the_gateway(
    inprocess_mesh: InProcessMesh, said: str
) -> None:
    """``/dashboard/api/nodes/<anything>/history``, opened in a browser from a link: the
    node page's rule (``test_pages.py::test_a_link_to_a_node_page_cannot_put_its_own_text_on_it``)
    held for the page only; this JSON answered 200 with ``node_id`` saying whatever the link
    said, on the gateway's own origin (found 2026-12-06, attack35). Now a 404 that says
    nothing of it."""
    with inprocess_mesh.sync_client() as c:
        r = c.get("/dashboard/api/nodes/" + quote(said, safe="") + "/history")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
    assert said[:40] not in r.text and "evil.example" not in r.text
    # (held before too) the node page's fragment shows none of it either
    with inprocess_mesh.sync_client() as c:
        r = c.get("/dashboard/fragment/nodes/" + quote(said, safe=""))
    assert said[:40] not in r.text and "evil.example" not in r.text


def test_server_side_verification_of_an_entry(inprocess_mesh: InProcessMesh) -> None:
    # only this test's checkpoints: the background signer would sign entry 5 too
    inprocess_mesh.call(inprocess_mesh.app.state.runtime.checkpointer.stop())
    ledger_entries(inprocess_mesh, 5)
    ledger_entries(inprocess_mesh, 1, checkpoint=False)
    for seq in range(5):
        _s, body = get_json(inprocess_mesh, f"/dashboard/api/verify?seq={seq}")
        assert body["leaf_ok"] is True and body["signature_ok"] is True, body
        assert body["inclusion_ok"] is True and body["checkpoint"]["tree_size"] == 5
        assert body["where"] == "server"
    _s, unsigned = get_json(inprocess_mesh, "/dashboard/api/verify?seq=5")
    assert unsigned["leaf_ok"] is True and unsigned["checkpoint"] is None
    assert "no signed checkpoint" in unsigned["reason"]
    # "²" and "\u0661" are str.isdigit(); int() refuses the first (found 2026-12-02: a 500)
    for bad in ("6", "-1", "x", "9" * 30, "%C2%B2", "%D9%A1%D9%A1"):
        status, err = get_json(inprocess_mesh, f"/dashboard/api/verify?seq={bad}")
        assert status == 400 and err["error"]["param"] == "seq"


def test_server_side_verification_refuses_a_checkpoint_of_another_key(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint signed by a key the ledger does not publish is not accepted."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    ledger_entries(inprocess_mesh, 2)
    rt = inprocess_mesh.app.state.runtime
    size, root = inprocess_mesh.call(rt.ledger.head())
    other = Ed25519PrivateKey.generate()
    raw = other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    forged = sign_checkpoint(other, raw, rt.checkpointer.origin, size, root, 1)
    real = rt.ledger.checkpoints

    async def forged_checkpoints(after: int, limit: int) -> tuple[list[CheckpointRecord], bool]:
        _got, more = await real(after, limit)
        return [CheckpointRecord(size, root.hex(), 1, base64.b64encode(raw).decode(),
                                 forged.note)], more  # fmt: skip

    monkeypatch.setattr(rt.ledger, "checkpoints", forged_checkpoints)
    _s, body = get_json(inprocess_mesh, "/dashboard/api/verify?seq=0")
    assert body["signature_ok"] is False and "does not publish" in body["reason"]
