"""Canary probes against nodes that tell probes from users' requests by their body.

Each liar here answers honestly only what every probe used to look like, and a cheaper
model's text to the rest (what real users mostly send); the drawn probe shapes must
catch it, and an honest node must pass the same shapes.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.canary_fresh import DEFAULT_FRESH_SHARE
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_shape import CHAT_PATH, DEFAULT_MIX, Shape
from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD
from tests.registry.canary_mesh import (
    MODEL,
    LogprobNodes,
    an_hour_later,
    canned,
    mesh,
    nodes_view,
    prober,
    prompt_of,
    register,
    trust,
)
from tests.registry.helpers import ADMIN, Harness, running

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
    sees the tally as at the start of the hour and no last probe's time (the admin does)."""
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
    mine = {n["node_id"]: n for n in admin.json()["nodes"]}["honest"]
    stamp = q.records["honest"][MODEL].last_probe_at
    assert stamp is not None
    assert mine["canary_passed"] == 1 and mine["canary_last_probe"] == stamp.isoformat()
    an_hour_later(q)
    passed, score, page, _parts = await seen()
    assert passed == 1 and score > before[1]
    assert "canary_last_probe" not in (await nodes_view(mesh))["honest"]
    assert stamp.strftime("%Y-%m-%d") not in page and "last probe" not in page


SAMPLING_FIELDS = ("seed", "presence_penalty", "frequency_penalty", "stop")


def multi_turn_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to completions and single-turn chats (a user message after at most a system
    message: every chat probe was that), canned text to the conversations users send."""
    messages = body.get("messages") or []
    if not any(m.get("role") == "assistant" for m in messages):
        return long_model(body)
    return canned(body)


def sampling_fields_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to requests without ``seed``, penalties or ``stop`` (no probe sent one),
    canned text to requests with any of them."""
    if any(k in body for k in SAMPLING_FIELDS):
        return canned(body)
    return long_model(body)


async def test_a_node_honest_only_to_single_turn_chats_is_caught(mesh: Harness) -> None:
    await setup(mesh, multi_turn_liar)
    honest, liar = await probe_both(mesh, range(80))
    assert {r.verdict for r in honest} <= {"pass", "unverified"}
    assert liar[-1].verdict == "fail" and liar[-1].quarantined, liar
    verifier_bodies = [c["body"] for c in mesh.nodes.nodes["verifier:8801"].calls]
    multi = [
        b for b in verifier_bodies if "assistant" in [m["role"] for m in b.get("messages", [])]
    ]
    assert multi  # the reference was asked with the probe's earlier exchanges


async def test_a_node_honest_only_to_requests_without_seed_penalties_or_stop_is_caught(
    mesh: Harness,
) -> None:
    await setup(mesh, sampling_fields_liar)
    honest, liar = await probe_both(mesh, range(60))
    assert {r.verdict for r in honest} <= {"pass", "unverified"}
    assert liar[-1].verdict == "fail" and liar[-1].quarantined, liar
    node_bodies = [c["body"] for c in mesh.nodes.nodes["honest:8801"].calls]
    verifier_bodies = [c["body"] for c in mesh.nodes.nodes["verifier:8801"].calls]
    for key in SAMPLING_FIELDS:  # each sent, and the references asked with them too
        assert any(key in b for b in node_bodies) and any(key in b for b in verifier_bodies)


STOP_VOCAB = (" ab", " cd", " ef", "\n\n", "```", "###", " gh", "\n", " Q", ":")


def stop_model(body: dict[str, Any], *, honour_stop: bool = True) -> dict[str, Any]:
    """A deterministic greedy 'model' whose text holds common stop strings, ending its text
    before the first ``stop`` string it spells while its tokens run on to the one holding
    it (llama.cpp's: measured on the real model, 2026-12-05); ``finish_reason`` ``stop``."""
    rng = random.Random(prompt_of(body) + repr(body.get("messages", [])[:-1]))
    n = min(60, limit_of(body) or 256)
    toks = [rng.choice(STOP_VOCAB) for _ in range(60)][:n]
    lps = [-rng.uniform(0.05, 1.0) for _ in range(60)][:n]
    text = "".join(toks)
    fin = "length" if n < 60 else "stop"
    stops = body.get("stop") or []
    hits = [text.find(s) for s in stops if s in text] if honour_stop else []
    if hits:
        cut = min(hits)
        end = next(i for i in range(n) if len("".join(toks[: i + 1])) > cut)
        end = next(i for i in range(end, n) if any(s in "".join(toks[: i + 1]) for s in stops))
        toks, lps, text, fin = toks[: end + 1], lps[: end + 1], text[:cut], "stop"
    lp = {
        "tokens": toks,
        "token_logprobs": lps,
        "top_logprobs": [{t: v, " zz": v - 3} for t, v in zip(toks, lps, strict=True)],
        "text_offset": list(range(len(toks))),
    }
    want = bool(body.get("logprobs")) or body.get("logprobs") == 0
    return {"choices": [{"index": 0, "text": text, "logprobs": lp if want else None,
                         "finish_reason": fin}]}  # fmt: skip


def stop_ignoring(body: dict[str, Any]) -> dict[str, Any]:
    """The same model, answering past the ``stop`` strings the request sent."""
    return stop_model(body, honour_stop=False)


async def test_an_honest_node_passes_probes_its_stop_strings_end(mesh: Harness) -> None:
    """Probes that send ``stop`` (and a seed, penalties, earlier exchanges): the honest
    answer ends before the stop string, its tokens run on into it, the reference (asked
    with the same list) does the same: it passes, streamed or not; a node answering past
    the stop strings fails."""
    await register(mesh, "verifier", stop_model)
    await register(mesh, "honest", stop_model)
    await register(mesh, "liar", stop_ignoring)
    await trust(mesh, "verifier")
    p = prober(mesh)
    p.mix = replace(DEFAULT_MIX, stop_share=1.0, seed_share=0.5, penalty_share=0.5)
    results = []
    for seed in range(40):
        p.rng = random.Random(seed)
        results.append(await p.probe("honest", MODEL))
    assert {r.verdict for r in results} <= {"pass", "unverified"}, [
        r for r in results if r.verdict not in ("pass", "unverified")
    ]
    assert sum(r.verdict == "pass" for r in results) > 30
    cut = [c for c in mesh.nodes.nodes["honest:8801"].calls
           if not c["body"].get("stream") and stop_model(c["body"])["choices"][0]["text"]
           != stop_ignoring(c["body"])["choices"][0]["text"]]  # fmt: skip
    assert cut  # the stop strings did end answers short
    caught = []
    for seed in range(40):
        p.rng = random.Random(seed)
        caught.append(await p.probe("liar", MODEL))
        if caught[-1].verdict == "fail":
            break
    assert caught[-1].verdict == "fail", caught


async def test_the_reference_cache_keeps_the_newest_references(mesh: Harness) -> None:
    """Multi-turn probes and sampling fields make references of their own, so the cache
    drops its oldest past ``max_references`` rather than growing for ever."""
    await setup(mesh, long_model)
    p = prober(mesh)
    p.max_references = 3
    for prompt in ("a", "b", "c", "d", "e"):
        assert (await p.probe("honest", MODEL, prompt, Shape())).verdict == "pass"
    assert len(p.references) == 3
    calls = len(mesh.nodes.nodes["verifier:8801"].calls)
    assert (await p.probe("honest", MODEL, "e", Shape())).verdict == "pass"  # still cached
    assert len(mesh.nodes.nodes["verifier:8801"].calls) == calls


def keyed_liar(body: dict[str, Any]) -> dict[str, Any]:
    """Honest to ordinary requests, canned text to the keyed ones (paying users): the class
    the gateway tells nodes (core/priority.py)."""
    return canned(body) if body.get(PRIORITY_FIELD) == KEYED else long_model(body)


def keyed_share(h: Harness, keyed: int, anonymous: int) -> None:
    for i in range(keyed + anonymous):
        h.runtime.traffic.note(MODEL, i < keyed)


async def test_a_node_honest_only_to_anonymous_requests_is_caught(mesh: Harness) -> None:
    """Probes are anonymous (the pool pays); had they all gone as ordinary, a node could lie
    to every keyed request for ever. They carry the keyed class as often as the model's
    requests do (core/priority_mix.py)."""
    await setup(mesh, keyed_liar)
    keyed_share(mesh, 3, 7)
    honest, liar = await probe_both(mesh, range(60))
    assert {r.verdict for r in honest} <= {"pass", "unverified"}
    assert liar[-1].verdict == "fail" and liar[-1].quarantined, liar


@pytest.mark.parametrize(("keyed", "anonymous"), [(0, 10), (10, 0), (1, 1)])
async def test_probes_carry_the_keyed_class_as_often_as_requests_do(
    mesh: Harness, keyed: int, anonymous: int
) -> None:
    await setup(mesh, long_model)
    keyed_share(mesh, keyed, anonymous)
    p = prober(mesh)
    p.rng = random.Random(3)
    for _ in range(40):
        await p.probe("honest", MODEL)
    calls = [c["body"] for c in mesh.nodes.nodes["honest:8801"].calls]
    got = sum(b.get(PRIORITY_FIELD) == KEYED for b in calls) / len(calls)
    assert abs(got - keyed / (keyed + anonymous)) <= 0.2, got
    assert {b.get(PRIORITY_FIELD) for b in calls} <= {None, KEYED}


async def test_watching_the_public_tally_across_probes_tells_only_power_of_two_steps(
    mesh: Harness,
) -> None:
    """Played as the node with one request in each hour, the probe: read ``GET
    /mesh/nodes``, the dashboard's Nodes row and node page after each hour, and count the
    hours in which anything it shows of the canary moved (each such step says that hour's
    request was a probe). With the tally shown exact an hour late, 8 probes gave 8 steps
    (found 2026-12-05); now passed probes are shown in power-of-two steps (1, 2, 4, 8),
    the score computed from them and no last probe's time: 4 steps, ≤ floor(log2 n) + 1."""
    await setup(mesh, long_model)
    q = mesh.runtime.quality
    assert q is not None

    async def seen() -> tuple[Any, ...]:
        view = (await nodes_view(mesh))["honest"]
        row = (await mesh.client.get("/dashboard/fragment/nodes")).text
        row = row[row.index('data-node="honest"') :]
        cell = re.search(r'data-cell="canary"[^>]*>(.*?)</span>', row, re.S)
        page = (await mesh.client.get("/dashboard/fragment/nodes/honest")).text
        verdicts = re.search(r"Canary verdicts</dt><dd>(.*?)</dd>", page, re.S)
        parts = re.search(r"canary [0-9.]+ ×", page)
        assert verdicts is not None and parts is not None
        canary = cell.group(1) if cell is not None else None
        return view["canary_passed"], view["trust_score"], canary, verdicts.group(1), parts.group(0)

    n, steps = 8, 0
    last = await seen()
    for i in range(n):
        prober(mesh).rng = random.Random(i)
        assert (await prober(mesh).probe("honest", MODEL)).verdict == "pass"
        an_hour_later(q)
        now = await seen()
        steps += now != last
        last = now
    assert q.passed("honest", MODEL) == n  # the exact count, kept
    assert last[0] == 8
    assert steps == 4 <= math.floor(math.log2(n)) + 1


async def test_routing_goes_by_the_exact_count_the_public_sees_coarse(mesh: Harness) -> None:
    """Three probes passed: the public sees 2 (a trust score from 2: canary factor 0.75),
    ``trusted_only`` routing and the admin's listing count 3 (0.80). With a threshold
    between the two, the node is routed ``trusted_only`` requests while the public listing
    shows it below the threshold: the coarse tally changes what is shown, not routing."""
    await setup(mesh, long_model)
    q = mesh.runtime.quality
    assert q is not None
    q.threshold = 0.78
    for i in range(3):
        prober(mesh).rng = random.Random(i)
        assert (await prober(mesh).probe("honest", MODEL)).verdict == "pass"
    an_hour_later(q)
    public = (await nodes_view(mesh))["honest"]
    assert (public["canary_passed"], public["trusted"]) == (2, False)
    assert q.public_score("honest").canary == 0.75 and q.score("honest", MODEL).canary == 0.8
    admin = await mesh.client.get("/mesh/nodes", headers=ADMIN)
    exact = {n["node_id"]: n for n in admin.json()["nodes"]}["honest"]
    assert (exact["canary_passed"], exact["trusted"]) == (3, True)
    # the verifier too: the admin's reference is trusted (since 2026-12-07, user41b)
    assert q.trusted_nodes(MODEL) == frozenset({"honest", "verifier"})
    body = {"model": MODEL, "prompt": "x", "trusted_only": True}
    for _ in range(5):
        r = await mesh.client.post("/v1/completions", json=body)
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] in {"honest", "verifier"}


class MemoryLiar:
    """A node that keeps the public pool's list and remembers every prompt it is sent: it
    answers honestly the ones it knows (the list, and any prompt seen before: a repeat of a
    probe), and while it learns (its first ``learning`` requests); to a prompt new to it
    (what users mostly send) a cheaper model's text. The last message is what it keys on (a
    chat probe's earlier turns come from the pool too)."""

    def __init__(self, learning: int = 0) -> None:
        self.seen: set[str] = set(PROMPTS)
        self.learning = learning
        self.asked = 0
        self.lied = 0

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = prompt_of(body)
        self.asked += 1
        known = prompt in self.seen or self.asked <= self.learning
        self.seen.add(prompt)
        if known:
            return long_model(body)
        self.lied += 1
        return canned(body)


async def test_a_node_honest_only_to_prompts_it_knows_is_caught_by_fresh_prompts(
    mesh: Harness,
) -> None:
    """Found 2026-12-06 (fresh35): every probe's prompt came from the pool (by default the
    64 public ones), so a node keeping the list, or remembering what it was sent, answered
    every probe honestly and lied to all else. Played first as before (``fresh_share`` 0:
    never caught, though it lied to every user's new prompt); then with the default share of
    fresh prompts (``core/canary_fresh.py``): caught, and an honest node passes them."""
    liar = MemoryLiar()
    await setup(mesh, liar)
    p = prober(mesh)
    assert p.fresh_share == DEFAULT_FRESH_SHARE > 0  # the app's default (Settings)
    p.fresh_share = 0.0  # the pool alone, as before fresh35
    honest, before = await probe_both(mesh, range(60))
    assert [r.verdict for r in before].count("fail") == 0 and liar.lied == 0, before
    assert liar({"prompt": "def f(x):"}) == canned({})  # a user's new prompt: lied to
    liar.lied = 0
    p.fresh_share = DEFAULT_FRESH_SHARE
    honest, after = await probe_both(mesh, range(100, 160))
    assert after[-1].verdict == "fail" and after[-1].quarantined, after
    assert after[-1].prompt not in PROMPTS and liar.lied >= 1
    assert {r.verdict for r in honest} <= {"pass", "unverified"}, honest
    assert sum(r.verdict == "pass" and r.prompt not in PROMPTS for r in honest) > 10


async def test_a_node_that_learns_a_private_pool_is_caught_by_fresh_prompts(
    mesh: Harness,
) -> None:
    """With a private pool (``LLM_MESH_CANARY_PROMPTS_MODE=replace``) the node cannot keep
    the list, but answering honestly while it learns and remembering every prompt, it
    answers every later probe of the pool honestly: never caught before fresh35. Fresh
    prompts are new to it each time."""
    private = tuple(f"def private_step_{i}(rows):\n    " for i in range(8))
    liar = MemoryLiar(learning=200)
    await setup(mesh, liar)
    p = prober(mesh)
    p.prompts = private
    p.fresh_share = 0.0
    for seed in range(60):  # it learns: every probe answered honestly
        p.rng = random.Random(seed)
        assert (await p.probe("liar", MODEL)).verdict in ("pass", "unverified")
    assert set(private) <= liar.seen and liar.lied == 0
    liar.learning = 0  # from now on it lies to whatever it has not seen
    _, before = await probe_both(mesh, range(60, 120))
    assert [r.verdict for r in before].count("fail") == 0 and liar.lied == 0, before
    p.fresh_share = DEFAULT_FRESH_SHARE
    _, after = await probe_both(mesh, range(120, 180))
    assert after[-1].verdict == "fail" and after[-1].quarantined, after
    assert after[-1].prompt not in private


async def test_a_fresh_prompts_reference_is_asked_each_time_and_not_kept(mesh: Harness) -> None:
    """The cost: each fresh probe is one more verifier request (a cache miss by design), and
    its reference is not cached (it is never asked again), so the pool's references stay."""
    await setup(mesh, long_model)
    p = prober(mesh)
    p.fresh_share = 1.0
    verifier = mesh.nodes.nodes["verifier:8801"]
    prompts = []
    for seed in range(20):
        p.rng = random.Random(seed)
        before = len(verifier.calls)
        r = await p.probe("honest", MODEL)
        assert r.verdict in ("pass", "unverified"), r
        assert len(verifier.calls) == before + 1  # its own reference, asked anew
        assert prompt_of(verifier.calls[-1]["body"]) == r.prompt
        prompts.append(r.prompt)
    assert len(set(prompts)) == 20 and not set(prompts) & set(PROMPTS)
    assert p.references == {}  # none kept


async def test_the_registry_passes_its_fresh_share_to_the_prober(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=LogprobNodes(), canary_fresh_share=0.2) as h:
        assert prober(h).fresh_share == 0.2


class ConversationLiar(MemoryLiar):
    """:class:`MemoryLiar` that looks at every user turn of a chat, not the last alone: a
    conversation with any turn it knows is a probe's, answered honestly."""

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        turns = [m["content"] for m in body.get("messages", ()) if m.get("role") == "user"]
        if any(t in self.seen for t in turns[:-1]):
            self.asked += 1
            return long_model(body)
        return super().__call__(body)


async def test_a_fresh_probe_carries_no_public_prompt_in_its_earlier_turns(
    mesh: Harness,
) -> None:
    """Found 2026-12-06 (review36): a fresh probe's chat history (the earlier user turns of
    a multi-turn chat, ``core/canary_shape.choose``) was drawn from the pool, by default the
    64 public prompts, so a node keeping the list knew about one fresh chat probe in
    seven (chat 0.4 × history 0.35) for a probe by its earlier turns, and answered it
    honestly: 7 of 60 here. A fresh probe's earlier turns are fresh prompts too."""
    liar = ConversationLiar()
    await setup(mesh, liar)
    p = prober(mesh)
    p.fresh_share = 1.0
    spotted = 0
    for seed in range(60):
        p.rng = random.Random(seed)
        before = liar.lied
        r = await p.probe("liar", MODEL)
        assert r.verdict != "error", r
        spotted += liar.lied == before
        if r.quarantined:  # caught: cleared, probed on
            await p.quality.clear("liar")
    assert spotted == 0, spotted
