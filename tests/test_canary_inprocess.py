"""Canary probes and held earnings through the real mesh in process (``tests/inprocess_mesh.py``:
the real registry and real sim nodes that sign their receipts and registrations, operator
``inprocess``).

- a probe goes through the gateway's stages: the node's answer carries the gateway's
  countersigned receipt, and the ledger pays the node for it exactly as for a user's
  request (same entries, same payer, a receipt hash);
- after a failed probe the node's earnings are held (``hold`` to its held account), the
  operator sees them as held in ``/v1/earnings`` and on the node's own ``/mesh/earnings``
  (what ``llm-mesh node info`` shows), the admin's clear releases them to the operator
  (``release``), and ``ledger verify``'s audit passes throughout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.client import MeshClient
from LLM_Mesh.core.ledger_entry import NETWORK, POOL
from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.held import release
from LLM_Mesh.registry.runtime import Runtime
from tests.inprocess_mesh import ON_THE_MACHINE, REGISTRY_URL, InProcessMesh, node_url
from tests.keyed import held_account, operator_account

MODEL = "gemma-3-270m"
OPERATOR = operator_account("inprocess")


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
    assert rt.settlement is not None and rt.ledger is not None and rt.quality is not None
    return rt


async def _ask_as_user(mesh: InProcessMesh, body: dict[str, Any]) -> dict[str, Any]:
    async with mesh.client() as c:
        r = await c.post(REGISTRY_URL + "/v1/completions", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def _entries(mesh: InProcessMesh) -> dict[str, list[tuple[str, str, str, int, bool]]]:
    """Ledger entries per request id: (kind, from, to, amount, has a receipt hash)."""
    rt = _rt(mesh)
    await rt.settlement.flush()  # type: ignore[union-attr]
    entries, _ = await rt.ledger.entries(-1, 10_000)  # type: ignore[union-attr]
    out: dict[str, list[tuple[str, str, str, int, bool]]] = {}
    for e in entries:
        if e.request_id:
            out.setdefault(e.request_id, []).append(
                (e.kind, e.from_account, e.to_account, e.amount, e.receipt_hash is not None)
            )
    return out


def test_a_probe_is_answered_receipted_and_paid_like_a_user_request(mesh: InProcessMesh) -> None:
    mesh.add_node(MODEL, "n1")
    node_id = mesh.id_of("n1")
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    prompt = "def fibonacci(n):"
    raw = prober.body(MODEL, prompt)
    probe = mesh.call(prober.ask(node_id, MODEL, raw, prompt))
    user = mesh.call(_ask_as_user(mesh, {**json.loads(raw), "allow_nodes": [node_id]}))
    pm, um = probe["mesh"], user["mesh"]
    assert pm["node_id"] == um["node_id"] == node_id
    assert pm["cost"] == um["cost"] > 0  # priced from the catalog alike
    assert set(pm["receipt"]) == set(um["receipt"])  # the gateway's countersigned receipt
    assert pm["receipt"]["request_id"] == pm["request_id"]
    assert probe["choices"][0]["logprobs"] == user["choices"][0]["logprobs"]
    paid = mesh.call(_entries(mesh))
    by_probe, by_user = paid[pm["request_id"]], paid[um["request_id"]]
    assert by_probe == by_user
    assert by_probe[0] == ("settle", POOL, OPERATOR, by_probe[0][3], True)
    assert {e[0] for e in by_probe} <= {"settle", "fee"}


def test_earnings_after_a_failed_probe_are_held_then_released(mesh: InProcessMesh) -> None:
    mesh.add_node(MODEL, "n1")
    node_id = mesh.id_of("n1")
    rt = _rt(mesh)
    body = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 200}
    before = mesh.call(_ask_as_user(mesh, body))["mesh"]
    # the first failed probe (as CanaryProber.probe records one): quarantined, earnings held
    mesh.call(rt.quality.record(node_id, "another-model", ok=False, reason="canary: token"))  # type: ignore[union-attr]
    during = mesh.call(_ask_as_user(mesh, body))["mesh"]
    paid = mesh.call(_entries(mesh))
    held = held_account(node_id)
    assert paid[before["request_id"]][0][:3] == ("settle", POOL, OPERATOR)
    hold = paid[during["request_id"]]
    assert hold[0][:3] == ("hold", POOL, held) and hold[0][4]  # with its receipt's hash
    assert hold[1][:3] == ("fee", POOL, NETWORK)
    share = hold[0][3]
    earned = paid[before["request_id"]][0][3]

    token = mesh.operator_token
    assert token

    async def report() -> dict[str, Any]:
        async with MeshClient(REGISTRY_URL, http_client=mesh.client()) as client:
            return await client.earnings(token)

    mine = mesh.call(report())
    assert mine["held"] == share and mine["held_by_node"] == {node_id: share}
    assert mine["totals"]["earned"] == earned and mine["balance"] == earned  # held is not paid
    with mesh.sync_client() as c:
        on_node = c.get(node_url("n1") + "/mesh/earnings", headers=ON_THE_MACHINE).json()
    assert on_node["held"] == share  # what `llm-mesh node info` shows

    # the admin clears the node: routed again, the held earnings paid to the operator
    assert mesh.call(rt.quality.clear(node_id)) == ["another-model"]  # type: ignore[union-attr]
    # (a memory store keeps node keys in memory: the registry names the operator's account)
    to = rt.settlement.operators[node_id]  # type: ignore[union-attr]
    assert mesh.call(release(rt.ledger, node_id, to)) == (share, OPERATOR)  # type: ignore[arg-type]
    after = mesh.call(_ask_as_user(mesh, body))["mesh"]
    paid = mesh.call(_entries(mesh))
    assert paid[after["request_id"]][0][:3] == ("settle", POOL, OPERATOR)
    assert mesh.call(report())["held"] == 0
    audited = mesh.call(audit(StoreSource(rt.ledger, rt.settings.ledger_origin)))  # type: ignore[arg-type]
    assert audited.ok, audited.findings
    assert audited.balances[held] == 0
    assert audited.balances[OPERATOR] == earned + share + paid[after["request_id"]][0][3]


def test_probes_of_every_shape_pass_on_an_honest_sim_node(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real sim nodes through the real gateway: completion and chat, streamed or not, every
    length and form the shapes draw; the honest node passes each one. (Sim nodes declare
    no sha256: the other node is made its verifier here.)"""
    import random

    mesh.add_node(MODEL, "v1")
    mesh.add_node(MODEL, "n1")
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    monkeypatch.setattr(prober, "verifiers_for", lambda node, model: [mesh.id_of("v1")])
    # and as the probe reads them again after the node answered (_still_vouching, attack45)
    monkeypatch.setattr(prober, "_verifiers_of", lambda *a: [mesh.id_of("v1")])
    seen = set()
    for seed in range(16):
        prober.rng = random.Random(seed)
        result = mesh.call(prober.probe(mesh.id_of("n1"), MODEL))
        assert result.verdict in ("pass", "unverified"), result
        seen.add(result.detail.split(" ")[0].rstrip(","))
    # the three rules ran; the sim's runner-up is exactly tie_margin below each word, so a
    # stream has no sure token to compare (fake nodes in tests/registry/canary_mesh.py have
    # some); a sampled probe (core/canary_sampled.py) matches: these sim nodes ignore the
    # temperature (SimEngine(sampled=True) samples: tests/registry/test_canary_sampled.py);
    # a sampled stream's text (core/canary_sampled_text.py, probe32) matches too, and so
    # does a non-streamed text that asked no logprobs (probe33; "text only:" unverified)
    assert seen == {"match", "text", "sampled_match", "sampled_text_match"}


def inflating(stream: Any) -> Any:
    """An engine's ``stream`` whose last delta states one token a UTF-8 byte of its text
    + 16 and its prompt at the estimate's bound (bytes + 8 a message + 16)."""
    from collections.abc import AsyncIterator

    from LLM_Mesh.node.engines.base import CancelFlag, Delta, GenerationRequest, Usage

    async def inflated(req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        text = ""
        async for d in stream(req, cancel):
            text += d.text
            if d.usage is not None:
                prompt = (
                    len((req.prompt or "").encode())
                    + 16
                    + sum(len(str(m.get("content", "")).encode()) + 8 for m in req.messages or [])
                )
                d = Delta(d.text, d.finish_reason, Usage(prompt, len(text.encode()) + 16),
                          d.logprobs)  # fmt: skip
            yield d

    return inflated


def test_a_sim_node_stating_a_byte_a_token_is_caught_by_a_probe(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real sim nodes whose engine's counts are inflated (their text and log-probabilities
    the model's): one token a UTF-8 byte of the text + 16, the prompt at the estimate's
    bound. A probe of each endpoint, streamed or not, fails such a node on its count; the
    honest node beside them passes the same probes (every shape:
    ``test_probes_of_every_shape_pass_on_an_honest_sim_node``)."""
    from LLM_Mesh.core.canary_shape import CHAT_PATH, COMPLETIONS_PATH, Shape

    mesh.add_node(MODEL, "v1")
    mesh.add_node(MODEL, "honest")
    shapes = [(p, s) for p in (COMPLETIONS_PATH, CHAT_PATH) for s in (False, True)]
    for i in range(len(shapes)):  # a liar a shape (each probe quarantines one)
        liar = mesh.add_node(MODEL, f"liar{i}")
        monkeypatch.setattr(liar.engine, "stream", inflating(liar.engine.stream))
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    monkeypatch.setattr(prober, "verifiers_for", lambda node, model: [mesh.id_of("v1")])
    monkeypatch.setattr(prober, "_verifiers_of", lambda *a: [mesh.id_of("v1")])
    prompt = "The capital of France is"
    for i, (path, stream) in enumerate(shapes):
        shape = Shape(path=path, stream=stream, max_tokens=24)
        ok = mesh.call(prober.probe(mesh.id_of("honest"), MODEL, prompt, shape))
        # (a sim stream has no sure token to compare: unverified, its count within)
        assert ok.verdict == ("unverified" if stream else "pass"), ok
        bad = mesh.call(prober.probe(mesh.id_of(f"liar{i}"), MODEL, prompt, shape))
        assert bad.verdict == "fail" and bad.quarantined, bad
        assert bad.detail.startswith(("usage_completion: ", "usage_prompt: ")), bad


def test_streamed_probes_of_every_shape_pass_on_an_honest_sim_node(
    mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real sim nodes through the real gateway (``NodeStream``, ``SseRelay``: the node's
    ``usage`` as a client gets it): streamed probes of every drawn shape (chat and
    completion, ``stop`` lists, ``n``, ``stream_options.include_usage``, longer limits) and
    a ``stop`` string that fires in the answer (the node's count holds the word it cut;
    simusage31), each passes, its count held to the reference's entries; ``temperature: 0``
    throughout (a sampled probe is never streamed)."""
    import random
    from dataclasses import replace

    from LLM_Mesh.core.canary_shape import CHAT_PATH, COMPLETIONS_PATH, DEFAULT_MIX, Shape

    mesh.add_node(MODEL, "v1")
    mesh.add_node(MODEL, "n1")
    assert mesh.app is not None
    prober = mesh.app.state.canary
    assert isinstance(prober, CanaryProber)
    monkeypatch.setattr(prober, "verifiers_for", lambda node, model: [mesh.id_of("v1")])
    monkeypatch.setattr(prober, "_verifiers_of", lambda *a: [mesh.id_of("v1")])
    node = mesh.id_of("n1")
    prober.mix = replace(DEFAULT_MIX, stream_share=1.0)
    for seed in range(40):
        prober.rng = random.Random(seed)
        result = mesh.call(prober.probe(node, MODEL))
        assert result.verdict in ("pass", "unverified"), result
    sent = [f.body for f in mesh.router.forwarded if f.host.startswith("n1.")]
    assert all(b["stream"] for b in sent)  # some sampled (probe32): their text judged
    assert any(b["temperature"] == 0 for b in sent) and any(b["temperature"] for b in sent)
    assert any("messages" in b for b in sent) and any("prompt" in b for b in sent)
    assert any("stop" in b for b in sent) and any(b.get("n") == 1 for b in sent)
    # a stop string that fires: the fifth word of the reference's answer
    prompt = "The capital of France is"
    for path in (COMPLETIONS_PATH, CHAT_PATH):
        whole = mesh.call(prober.reference(mesh.id_of("v1"), MODEL, "", prompt, Shape(path=path)))
        word = whole.tokens[4].token
        assert word.strip() and word not in whole.text[: whole.text.index(word)]
        for stream in (True, False):
            shape = Shape(path=path, stream=stream, max_tokens=24, sampling=(("stop", (word,)),))
            result = mesh.call(prober.probe(node, MODEL, prompt, shape))
            assert result.verdict == ("unverified" if stream else "pass"), (shape, result)
