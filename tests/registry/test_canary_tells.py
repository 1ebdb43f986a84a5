"""Canary probes against nodes that tell probes from users' requests by their body.

Each liar here answers honestly only what every probe used to look like, and a cheaper
model's text to the rest (what real users mostly send); the drawn probe shapes must
catch it, and an honest node must pass the same shapes.
"""

from __future__ import annotations

import random
import re
from typing import Any

from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Shape
from tests.registry.helpers import ADMIN, Harness
from tests.registry.test_canary import (
    MODEL,
    an_hour_later,
    canned,
    mesh,
    nodes_view,
    prober,
    prompt_of,
    register,
    trust,
)

__all__ = ["mesh"]  # the fixture


def limit_of(body: dict[str, Any]) -> int | None:
    got = body.get("max_completion_tokens", body.get("max_tokens"))
    return got if isinstance(got, int) else None


def long_model(body: dict[str, Any]) -> dict[str, Any]:
    """A deterministic greedy 'model' that goes on past the reference's 32 tokens: 60
    tokens per prompt (a limit cuts it), with log-probabilities when asked."""
    rng = random.Random(prompt_of(body))
    n = min(60, limit_of(body) or 256)
    letters = "abcdefghijklmnopqrstuvwxyz"
    toks = [" " + rng.choice(letters) + rng.choice(letters) for _ in range(60)][:n]
    lps = [-rng.uniform(0.05, 1.0) for _ in range(60)][:n]
    lp = {
        "tokens": toks,
        "token_logprobs": lps,
        "top_logprobs": [{t: v, " zz": v - 3} for t, v in zip(toks, lps, strict=True)],
        "text_offset": list(range(n)),
    }
    want = bool(body.get("logprobs")) or body.get("logprobs") == 0
    fin = "length" if n < 60 else "stop"
    choice = {"index": 0, "text": "".join(toks), "logprobs": lp if want else None}
    return {"choices": [{**choice, "finish_reason": fin}]}


def short_limit_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to requests asking at most 32 tokens (every probe did), canned text to
    requests asking more or setting no limit (most users' requests)."""
    limit = limit_of(body)
    if limit is not None and limit <= DEFAULT_MIX.max_tokens:
        return long_model(body)
    return canned(body)


def lone_message_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to completions and to chats of exactly one user message (every chat probe
    was that), canned text to chats with a system message."""
    messages = body.get("messages")
    if messages is None or [m.get("role") for m in messages] == ["user"]:
        return long_model(body)
    return canned(body)


async def setup(h: Harness, liar: Any) -> None:
    await register(h, "verifier", long_model)
    await register(h, "honest", long_model)
    await register(h, "liar", liar)
    await trust(h, "verifier")


async def probe_both(h: Harness, seeds: range, shape_ok: Any = None) -> tuple[list[Any], Any]:
    """Probe ``honest`` and ``liar`` with the same drawn shapes; the liar's verdicts end
    at its first failure."""
    p = prober(h)
    honest_results, liar_results = [], []
    for seed in seeds:
        p.rng = random.Random(seed)
        honest_results.append(await p.probe("honest", MODEL))
        if not liar_results or liar_results[-1].verdict != "fail":
            p.rng = random.Random(seed)
            liar_results.append(await p.probe("liar", MODEL))
    return honest_results, liar_results


async def test_a_node_honest_only_to_short_limits_is_caught(mesh: Harness) -> None:
    await setup(mesh, short_limit_liar)
    honest, liar = await probe_both(mesh, range(60))
    assert {r.verdict for r in honest} <= {"pass", "unverified"}, [
        r for r in honest if r.verdict not in ("pass", "unverified")
    ]
    assert sum(r.verdict == "pass" for r in honest) > 40
    assert liar[-1].verdict == "fail" and liar[-1].quarantined, liar


async def test_an_honest_node_passes_probes_asking_more_than_the_reference(
    mesh: Harness,
) -> None:
    """A probe asking 512 tokens, or none, is judged on the reference's 32: the honest
    node's longer answer passes, another model's text fails, streamed or not."""
    await setup(mesh, canned)
    p = prober(mesh)
    for path in ("/v1/completions", CHAT_PATH):
        for limit in (64, 512, None):
            for stream in (False, True):
                shape = Shape(path=path, max_tokens=limit, stream=stream)
                ok = await p.probe("honest", MODEL, "def f():", shape)
                assert ok.verdict == "pass", (shape, ok)
    bad = await p.probe("liar", MODEL, "def f():", Shape(max_tokens=None))
    assert bad.verdict == "fail", bad


async def test_a_node_honest_only_to_lone_user_messages_is_caught(mesh: Harness) -> None:
    await setup(mesh, lone_message_liar)
    honest, liar = await probe_both(mesh, range(80))
    assert {r.verdict for r in honest} <= {"pass", "unverified"}
    assert liar[-1].verdict == "fail" and liar[-1].quarantined, liar
    verifier_bodies = [c["body"] for c in mesh.nodes.nodes["verifier:8801"].calls]
    systems = [b for b in verifier_bodies if b.get("messages", [{}])[0].get("role") == "system"]
    assert systems  # the reference was asked with the probe's system message


async def test_reading_the_public_tally_after_each_answer_does_not_say_which_was_a_probe(
    mesh: Harness,
) -> None:
    """Played as the node: answer a request, read ``GET /mesh/nodes`` and the dashboard's
    node page, and mark the request a probe if ``canary_passed`` (or the trust score, or
    "last probe") moved. Live, it moved right after the probe and only then. Now the public
    sees the tally as at the start of the hour, the last probe as its day."""
    await setup(mesh, long_model)
    q = mesh.runtime.quality
    assert q is not None

    async def seen() -> tuple[Any, ...]:
        view = (await nodes_view(mesh))["honest"]
        page = await mesh.client.get("/dashboard/fragment/nodes/honest")
        assert page.status_code == 200
        verdicts = re.search(r"Canary verdicts</dt><dd>(.*?)</dd>", page.text, re.S)
        parts = re.search(r"canary [0-9.]+ ×", page.text)
        assert verdicts is not None and parts is not None
        return view["canary_passed"], view["trust_score"], verdicts.group(1), parts.group(0)

    before = await seen()
    r = await mesh.client.post("/v1/completions", json={"model": MODEL, "prompt": "hello"})
    assert r.status_code == 200
    assert await seen() == before  # a user's request: nothing moves
    assert (await prober(mesh).probe("honest", MODEL)).verdict == "pass"
    q.changes += 1  # whatever caching: built again
    assert await seen() == before  # the probe: nothing moves either
    admin = await mesh.client.get("/mesh/nodes", headers=ADMIN)  # the admin's: live
    assert {n["node_id"]: n for n in admin.json()["nodes"]}["honest"]["canary_passed"] == 1
    an_hour_later(q)
    passed, score, page, _parts = await seen()
    assert passed == 1 and score > before[1]
    stamp = q.records["honest"][MODEL].last_probe_at
    assert stamp is not None
    assert stamp.strftime("%Y-%m-%d") in page and stamp.strftime("%H:%M:%S") not in page
