"""The audit by peers of stated token counts through the real mesh in process
(``tests/inprocess_mesh.py``: the real registry, real sim nodes): a node honest to probes
but stating a token a byte to users' requests, beside two honest nodes of its model, is
quarantined for the model and its earnings held after enough answers; honest nodes with
different text mixes are not; too few answers: no verdict (``registry/usage_audit.py``,
``core/usage_audit.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

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


async def _ask(mesh: InProcessMesh, node_id: str, prompt: str, i: int) -> dict[str, Any]:
    """A user's request pinned to ``node_id``: completion or chat, streamed or not."""
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "allow_nodes": [node_id]}
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
    return {"stream": body["stream"]}


async def _kinds(mesh: InProcessMesh) -> set[str]:
    """The kinds of the ledger's entries so far."""
    rt = _rt(mesh)
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    return {e.kind for e in entries}


async def _traffic(mesh: InProcessMesh, plan: dict[str, list[str]], rounds: int) -> None:
    """``rounds`` requests to each node of ``plan`` (one of its prompts each), in turn;
    a node quarantined meanwhile gets no more (it is out of the model's routing)."""
    quality = _rt(mesh).quality
    assert quality is not None
    for i in range(rounds):
        for name, prompts in plan.items():
            if not quality.quarantined(mesh.id_of(name), MODEL):
                await _ask(mesh, mesh.id_of(name), prompts[i % len(prompts)], i)
        await _rt(mesh).usage_audit.settled()  # type: ignore[union-attr]


def test_a_node_honest_to_probes_stating_a_byte_a_token_to_users_is_quarantined_and_held(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("h1", "h2", "liar"):
        mesh.add_node(MODEL, name)
    node = mesh.nodes["liar"]
    monkeypatch.setattr(node.engine, "stream", inflating_but_to_probes(node.engine.stream))
    rt, auditor = _rt(mesh), _audit(mesh)
    liar_id = mesh.id_of("liar")
    assert "hold" not in mesh.call(_kinds(mesh))
    # a probe of it passes: its counts are honest for the probe's prompt
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    monkeypatch.setattr(prober, "verifiers_for", lambda node, model: [mesh.id_of("h1")])
    from LLM_Mesh.core.canary_shape import COMPLETIONS_PATH, Shape

    shape = Shape(path=COMPLETIONS_PATH, stream=False, max_tokens=24)
    probed = mesh.call(prober.probe(liar_id, MODEL, PROBE_PROMPT, shape))
    assert probed.verdict == "pass", probed
    # users' traffic: too few answers for a verdict (the liar MIN - 1 with the probe; h1 as
    # many with the probe's reference it answered as the verifier; h2 MIN - 2)
    plan = {"h1": ENGLISH, "h2": ENGLISH + OTHER, "liar": ENGLISH + OTHER}
    mesh.call(_traffic(mesh, plan, MIN - 2))
    assert not rt.quality.quarantined(liar_id, MODEL)  # type: ignore[union-attr]
    assert not auditor.verdicts
    mesh.call(_traffic(mesh, plan, 2))  # its MIN-th answer, its peers' too
    (verdict,) = auditor.verdicts
    assert verdict.node_id == liar_id and verdict.requests == MIN and verdict.share > 0.8
    assert rt.quality.quarantined(liar_id, MODEL)  # type: ignore[union-attr]
    assert rt.quality.held(liar_id)  # type: ignore[union-attr]
    (rec,) = rt.quality.quarantines(liar_id)  # type: ignore[union-attr]
    assert rec.reason is not None and rec.reason.startswith("usage_audit: ")
    for honest in ("h1", "h2"):  # not flagged; held as its operator's (the mesh's one
        # operator: as after a failed probe, registry/held.py)
        assert not rt.quality.quarantines(mesh.id_of(honest))  # type: ignore[union-attr]
        assert rt.quality.held(mesh.id_of(honest))  # type: ignore[union-attr]
    # from the verdict on the operator's answers are held (``hold``, not ``settle``)
    mesh.call(_ask(mesh, mesh.id_of("h1"), ENGLISH[0], 0))
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
    assert seen["verdicts"][0]["share"] > 0.8  # (its probe counted honest)
    mine = next(n for n in listed["nodes"] if n["node_id"] == liar_id)
    assert mine["quarantined"][0]["reason"].startswith("usage_audit: ")
    assert f'llm_mesh_gateway_usage_audit_flags_total{{kind="{verdict.kind}"}} 1.0' in scraped


def test_honest_nodes_with_different_text_mixes_are_not_flagged(mesh: InProcessMesh) -> None:
    for name in ("h1", "h2", "h3"):
        mesh.add_node(MODEL, name)
    rt, auditor = _rt(mesh), _audit(mesh)
    plan = {"h1": ENGLISH, "h2": OTHER, "h3": ENGLISH + OTHER}
    mesh.call(_traffic(mesh, plan, 3 * MIN))
    assert not auditor.verdicts
    for name in plan:
        assert not rt.quality.quarantines(mesh.id_of(name))  # type: ignore[union-attr]
    rows = {r["node_id"]: r for r in auditor.audit.view()}
    assert all(r["requests"] == 3 * MIN and r["peers"] == 2 for r in rows.values())
