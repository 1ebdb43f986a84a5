"""The audit by peers of stated token counts through the real mesh in process
(``tests/inprocess_mesh.py``: the real registry, real sim nodes): a node honest to probes
but stating a token a byte to users' requests, beside two honest nodes of its model, is
quarantined for the model and its earnings held after enough answers; honest nodes with
different text mixes are not; too few answers: no verdict (``registry/usage_audit.py``,
``core/usage_audit.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.canary_shape import COMPLETIONS_PATH, Shape
from LLM_Mesh.core.usage_audit import AuditPolicy
from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.usage_audit import UsageAuditor
from tests.inprocess_mesh import ON_THE_MACHINE, REGISTRY_URL, InProcessMesh

MODEL = "gemma-3-270m"
PROBE_PROMPT = "The capital of France is"
MIN = 12  # answers a node (and each peer) needs: the test's policy
ENGLISH = [
    "Write a short story about a lighthouse keeper who",
    "The history of the Roman Empire begins with",
    "Explain why the sky is blue in simple terms.",
    "def fibonacci(n):",
]
OTHER = [
    "Il était une fois, dans un petit village de Provence,",
    "Die Geschichte der deutschen Eisenbahn beginnt im Jahr",
    "Объясните, почему небо голубое.",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[InProcessMesh]:
    m = InProcessMesh(tmp_path / "mesh").start()
    try:
        yield m
    finally:
        m.close()


def _rt(mesh: InProcessMesh) -> Runtime:
    assert mesh.app is not None
    rt: Runtime = mesh.app.state.runtime
    assert rt.quality is not None and rt.usage_audit is not None
    return rt


def _audit(mesh: InProcessMesh) -> UsageAuditor:
    """The gateway's auditor with the test's smaller policy (checked every answer)."""
    rt = _rt(mesh)
    rt.usage_audit = UsageAuditor(
        rt.quality, policy=AuditPolicy(min_requests=MIN, check_every=1), metrics=rt.metrics
    )
    return rt.usage_audit


def inflating_but_to_probes(stream: Any) -> Any:
    """An engine's ``stream`` that states one token a UTF-8 byte of its text + 16 (at most
    ``max_tokens``: a stream's count above it is cut as a break) and its prompt at the
    estimate's bound, except for the probe's prompt (it knows it: honest to probes only)."""
    from LLM_Mesh.node.engines.base import CancelFlag, Delta, GenerationRequest, Usage

    async def inflated(req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        msgs = req.messages or []
        said = (req.prompt or "") + "".join(str(m.get("content", "")) for m in msgs)
        text = ""
        async for d in stream(req, cancel):
            text += d.text
            if d.usage is not None and PROBE_PROMPT not in said:
                prompt = (
                    len((req.prompt or "").encode())
                    + 16
                    + sum(len(str(m.get("content", "")).encode()) + 8 for m in msgs)
                )
                stated = min(len(text.encode()) + 16, req.max_tokens or 1 << 20)
                d = Delta(d.text, d.finish_reason, Usage(prompt, stated), d.logprobs)
            yield d

    return inflated


async def _ask(mesh: InProcessMesh, prompt: str, i: int, pin: str | None = None) -> dict[str, Any]:
    """A user's request (pinned to ``pin``'s node, else routed by the gateway): completion or
    chat, streamed or not; its ``mesh`` (a stream's: ``{}``)."""
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 200}
    if pin is not None:
        body["allow_nodes"] = [mesh.id_of(pin)]
    chat = i % 2 == 1
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["stream"] = i % 4 >= 2
    path = "/v1/chat/completions" if chat else "/v1/completions"
    async with mesh.client() as c:
        r = await c.post(REGISTRY_URL + path, json=body)
    assert r.status_code == 200, r.text
    return {} if body["stream"] else dict(r.json()["mesh"])


async def _kinds(mesh: InProcessMesh) -> set[str]:
    """The kinds of the ledger's entries so far."""
    rt = _rt(mesh)
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    return {e.kind for e in entries}


async def _round(mesh: InProcessMesh, prompts: list[str], i: int) -> None:
    """Three users' requests at once, routed by the gateway (each node answers one at a
    time, ``ttft_s``: the least loaded takes the next), then the audit's quarantines."""
    await asyncio.gather(*(_ask(mesh, prompts[(i + k) % len(prompts)], i + k) for k in range(3)))
    await _rt(mesh).usage_audit.settled()  # type: ignore[union-attr]


def _counted(auditor: UsageAuditor, mesh: InProcessMesh, name: str) -> int:
    u = auditor.audit.usage.get((MODEL, mesh.id_of(name)))
    return 0 if u is None else u.requests


def test_a_node_honest_to_probes_stating_a_byte_a_token_to_users_is_quarantined_and_held(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("h1", "h2", "liar"):
        mesh.add_node(MODEL, name, ttft_s=0.05, sleep=asyncio.sleep)
    node = mesh.nodes["liar"]
    monkeypatch.setattr(node.engine, "stream", inflating_but_to_probes(node.engine.stream))
    rt, auditor = _rt(mesh), _audit(mesh)
    assert rt.quality is not None
    liar_id = mesh.id_of("liar")
    assert "hold" not in mesh.call(_kinds(mesh))
    # a probe of it passes: its counts are honest for the probe's prompt
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    monkeypatch.setattr(prober, "verifiers_for", lambda node, model: [mesh.id_of("h1")])
    # and as the probe reads them again after the node answered (_still_vouching, attack45)
    monkeypatch.setattr(prober, "_verifiers_of", lambda *a: [mesh.id_of("h1")])
    shape = Shape(path=COMPLETIONS_PATH, stream=False, max_tokens=24)
    probed = mesh.call(prober.probe(liar_id, MODEL, PROBE_PROMPT, shape))
    assert probed.verdict == "pass", probed
    # users' traffic, routed by the gateway: no verdict while the liar has too few answers
    for i in range(10 * MIN):
        if rt.quality.quarantined(liar_id, MODEL):
            break
        few = _counted(auditor, mesh, "liar") + 3 < MIN  # (a round: 3 answers at most)
        mesh.call(_round(mesh, ENGLISH + OTHER, i))
        assert not (few and auditor.verdicts)  # too few answers: no verdict
    (verdict,) = auditor.verdicts
    # (its share of the caps depends on which prompts the router gave it: 0.9 for most
    # mixes, 0.896 seen; an honest sim node's is 0.15-0.17)
    assert verdict.node_id == liar_id and verdict.requests >= MIN and verdict.share > 0.8
    assert verdict.peers_median < 0.3 and verdict.share > 2 * verdict.peers_median
    assert rt.quality.quarantined(liar_id, MODEL) and rt.quality.held(liar_id)
    (rec,) = rt.quality.quarantines(liar_id)
    assert rec.reason is not None and rec.reason.startswith("usage_audit: ")
    for honest in ("h1", "h2"):  # not flagged; held as its operator's (the mesh's one
        # operator: as after a failed probe, registry/held.py)
        assert not rt.quality.quarantines(mesh.id_of(honest))
        assert rt.quality.held(mesh.id_of(honest))
    # from the verdict on the operator's answers are held (``hold``, not ``settle``)
    mesh.call(_ask(mesh, ENGLISH[0], 0))
    assert "hold" in mesh.call(_kinds(mesh))
    # the admin sees it: the audit's view and the node listing's quarantine
    admin_key = (mesh.settings.home / "admin.key").read_text().strip()
    admin = {"authorization": f"Bearer {admin_key}"}
    with mesh.sync_client() as c:
        seen = c.get(REGISTRY_URL + "/mesh/usage-audit", headers=admin).json()
        listed = c.get(REGISTRY_URL + "/mesh/nodes", headers=admin).json()
        assert c.get(REGISTRY_URL + "/mesh/usage-audit").status_code == 401
        scraped = c.get(REGISTRY_URL + "/metrics", headers=ON_THE_MACHINE).text
    assert [v["node_id"] for v in seen["verdicts"]] == [liar_id]
    assert seen["verdicts"][0]["share"] > 0.8
    mine = next(n for n in listed["nodes"] if n["node_id"] == liar_id)
    assert mine["quarantined"][0]["reason"].startswith("usage_audit: ")
    assert f'llm_mesh_gateway_usage_audit_flags_total{{kind="{verdict.kind}"}} 1.0' in scraped


def test_honest_nodes_with_different_text_mixes_are_not_flagged(mesh: InProcessMesh) -> None:
    """Three honest sim nodes, the gateway routing English and other languages' prompts
    among them (each its own mix): every one audited, none flagged."""
    for name in ("h1", "h2", "h3"):
        mesh.add_node(MODEL, name, ttft_s=0.05, sleep=asyncio.sleep)
    rt, auditor = _rt(mesh), _audit(mesh)
    prompts = ENGLISH + OTHER + OTHER  # (rounds of 3 of 12: each node its own share)
    for i in range(16 * MIN):  # until each has its answers: the router's spread varies
        if i >= 4 * MIN and all(_counted(auditor, mesh, n) >= MIN for n in ("h1", "h2", "h3")):
            break
        mesh.call(_round(mesh, prompts, i))
        assert not auditor.verdicts
    rows = auditor.audit.view()
    assert len(rows) == 3 and all(r["requests"] >= MIN and r["peers"] == 2 for r in rows)
    for name in ("h1", "h2", "h3"):
        assert not rt.quality.quarantines(mesh.id_of(name))  # type: ignore[union-attr]


def test_a_user_pinning_requests_to_a_node_does_not_move_its_audit(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Framing an honest node: a user sends one node hundreds of requests of text with many
    tokens a byte (digits) through ``allow_nodes`` while its peers get prose. A request
    whose client narrowed the nodes is not counted (a probe neither), so the node's share
    is what the gateway's own routing gave it. Shown with a node that does state a token
    a byte (the worst such text could look like): its pinned answers leave no trace."""
    for name in ("h1", "h2", "target"):
        mesh.add_node(MODEL, name, ttft_s=0.05, sleep=asyncio.sleep)
    node = mesh.nodes["target"]
    monkeypatch.setattr(node.engine, "stream", inflating_but_to_probes(node.engine.stream))
    rt, auditor = _rt(mesh), _audit(mesh)
    for i in range(3 * MIN):
        mesh.call(_ask(mesh, OTHER[3], i, pin="target"))
        mesh.call(_ask(mesh, ENGLISH[i % len(ENGLISH)], i, pin="h1"))
    assert _counted(auditor, mesh, "target") == 0 and _counted(auditor, mesh, "h1") == 0
    assert not auditor.verdicts
    assert not rt.quality.quarantines(mesh.id_of("target"))  # type: ignore[union-attr]
