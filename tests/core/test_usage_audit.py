"""The audit by peers of stated token counts (``core/usage_audit.py``): pure, seeded."""

from __future__ import annotations

import random
from statistics import median

import pytest

from LLM_Mesh.core.usage_audit import (
    AuditPolicy,
    AuditSample,
    Evidence,
    NodeUsage,
    UsageAudit,
    median_without,
)

MODEL = "gemma-3-270m"
POLICY = AuditPolicy(min_requests=40, check_every=1)


def honest(rng: random.Random, tokens_a_byte: float) -> AuditSample:
    """An answer of 20-400 bytes and a prompt of 2-600 bytes, counted at ``tokens_a_byte``
    (± 20 % an answer) plus an end token; a chat template's few tokens in the prompt."""
    out, prompt = rng.randint(20, 400), rng.randint(2, 600)
    jitter = rng.uniform(0.8, 1.2)
    completion = int(out * tokens_a_byte * jitter) + 1
    prompt_tokens = int(prompt * tokens_a_byte * jitter) + 6
    return AuditSample(completion, out + 16, prompt_tokens, prompt + 8 + 16)


def byte_a_token(rng: random.Random) -> AuditSample:
    """The same traffic, stated at the gateway's caps (a token a byte + 16)."""
    s = honest(rng, 0.27)
    return AuditSample(s.completion_cap, s.completion_cap, s.prompt_cap, s.prompt_cap)


def test_a_node_stating_a_byte_a_token_beside_two_honest_nodes_is_flagged() -> None:
    rng = random.Random(1)
    audit = UsageAudit(POLICY)
    verdicts = []
    for _ in range(POLICY.min_requests):
        for node in ("a", "b"):
            assert audit.observe(node, MODEL, honest(rng, 0.27)) is None
        v = audit.observe("liar", MODEL, byte_a_token(rng))
        if v is not None:
            verdicts.append(v)
    assert len(verdicts) == 1
    v = verdicts[0]
    assert (v.node_id, v.model, v.kind, v.peers, v.requests) == ("liar", MODEL, "completion", 2, 40)
    assert v.share == 1.0 and v.peers_median < 0.35
    assert v.describe().startswith("usage_audit: completion tokens at 1.00 of the gateway's cap")
    # its sums start over: no second verdict without fresh evidence
    assert audit.verdict("liar", MODEL) is None
    assert audit.usage[(MODEL, "liar")].requests == 0


def test_inflating_only_the_prompt_is_flagged_on_the_prompt() -> None:
    rng = random.Random(2)
    audit = UsageAudit(POLICY)
    got = None
    for _ in range(POLICY.min_requests):
        for node in ("a", "b"):
            audit.observe(node, MODEL, honest(rng, 0.27))
        s = honest(rng, 0.27)
        got = audit.observe("liar", MODEL, AuditSample(s.completion, s.completion_cap,
                                                       s.prompt_cap, s.prompt_cap))  # fmt: skip
    assert got is not None and got.kind == "prompt" and got.share == 1.0


def test_honest_nodes_with_different_text_mixes_are_not_flagged() -> None:
    """One node's traffic all English (~0.25 tokens a byte), one all code, one all
    Russian or Chinese (fewer bytes a token: up to 1.5 times the English share): none is
    flagged, each against the others' median."""
    rng = random.Random(3)
    audit = UsageAudit(POLICY)
    mixes = {"english": 0.25, "code": 0.30, "cjk": 0.375}
    for _ in range(10 * POLICY.min_requests):
        for node, rate in mixes.items():
            assert audit.observe(node, MODEL, honest(rng, rate)) is None
    for node in mixes:
        assert audit.verdict(node, MODEL) is None
    rows = {r["node_id"]: r for r in audit.view()}
    assert rows["cjk"]["requests"] == 10 * POLICY.min_requests
    assert rows["cjk"]["peers"] == 2


def test_too_few_samples_give_no_verdict() -> None:
    rng = random.Random(4)
    audit = UsageAudit(POLICY)
    for _ in range(POLICY.min_requests - 1):  # the liar one answer short
        for node in ("a", "b"):
            audit.observe(node, MODEL, honest(rng, 0.27))
        assert audit.observe("liar", MODEL, byte_a_token(rng)) is None
    assert audit.verdict("liar", MODEL) is None
    # ... and with enough of its own but peers short of theirs: none either
    audit2 = UsageAudit(POLICY)
    for i in range(2 * POLICY.min_requests):
        if i < POLICY.min_requests - 1:
            audit2.observe("a", MODEL, honest(rng, 0.27))
        assert audit2.observe("liar", MODEL, byte_a_token(rng)) is None


def test_a_model_with_one_node_is_not_audited() -> None:
    rng = random.Random(5)
    audit = UsageAudit(POLICY)
    for _ in range(5 * POLICY.min_requests):
        assert audit.observe("liar", MODEL, byte_a_token(rng)) is None
    # nor do another model's nodes count as its peers
    for _ in range(POLICY.min_requests):
        audit.observe("a", "other-model", honest(rng, 0.27))
    assert audit.verdict("liar", MODEL) is None


def test_a_colluding_majority_sets_the_median_and_an_honest_node_is_not_flagged() -> None:
    rng = random.Random(6)
    audit = UsageAudit(POLICY)
    for _ in range(2 * POLICY.min_requests):
        for node in ("liar1", "liar2"):
            assert audit.observe(node, MODEL, byte_a_token(rng)) is None
        assert audit.observe("honest", MODEL, honest(rng, 0.27)) is None


def test_just_under_the_factor_is_not_flagged_just_over_is() -> None:
    audit = UsageAudit(POLICY)
    for _ in range(POLICY.min_requests):
        audit.observe("a", MODEL, AuditSample(25, 100, 25, 100))
        audit.observe("b", MODEL, AuditSample(25, 100, 25, 100))
        assert audit.observe("under", MODEL, AuditSample(50, 100, 25, 100)) is None  # 2.0x
    got = None
    for _ in range(POLICY.min_requests):
        got = audit.observe("over", MODEL, AuditSample(51, 100, 25, 100)) or got
    assert got is not None and got.node_id == "over"


def test_a_node_that_starts_inflating_after_a_long_honest_record_is_caught() -> None:
    """Past the window its sums are halved: the recent inflation is not diluted for ever."""
    rng = random.Random(7)
    policy = AuditPolicy(min_requests=40, window=200, check_every=1)
    audit = UsageAudit(policy)
    for _ in range(2000):
        for node in ("a", "b", "turncoat"):
            assert audit.observe(node, MODEL, honest(rng, 0.27)) is None
    got = None
    for _ in range(400):
        for node in ("a", "b"):
            audit.observe(node, MODEL, honest(rng, 0.27))
        got = got or audit.observe("turncoat", MODEL, byte_a_token(rng))
    assert got is not None and got.node_id == "turncoat"
    assert all(u.requests < 200 for u in audit.usage.values())


def test_memory_is_bounded_least_recently_answered_forgotten() -> None:
    audit = UsageAudit(AuditPolicy(max_entries=3))
    for node in ("a", "b", "c"):
        audit.observe(node, MODEL, AuditSample(1, 10, 1, 10))
    audit.observe("a", MODEL, AuditSample(1, 10, 1, 10))  # a answered again: b is the oldest
    audit.observe("d", MODEL, AuditSample(1, 10, 1, 10))
    assert set(audit.usage) == {(MODEL, "a"), (MODEL, "c"), (MODEL, "d")}
    assert set(audit.by_model[MODEL]) == {"a", "c", "d"}
    audit.forget("a")
    assert set(audit.by_model[MODEL]) == {"c", "d"}


# Time windows: a node is compared with its peers over the same windows (bucket_s), not
# with their sums over the whole day (a node online only at some hours sees their mix).
WINDOWED = AuditPolicy(min_requests=40, check_every=1, bucket_s=300.0, bucket_min=3)
HOUR = 3600.0
PLAIN, DIGITS = 0.27, 0.60  # the day's mix; a batch job of digits (2.2 times: measured)


def _day(audit: UsageAudit, rng: random.Random, night: str, sample: str, hour: int) -> list:
    """One day in windows of 5 minutes: peers ``a`` and ``b`` answer 3 requests each a
    window all day, the plain mix except at 22:00-23:00 (a batch job of digits); ``night``
    answers 4 a window from ``hour`` for an hour only: the hour's traffic (``honest``), or
    stated a token a byte (``liar``). The verdicts given."""
    verdicts = []
    for w in range(int(24 * HOUR / WINDOWED.bucket_s)):
        now = w * WINDOWED.bucket_s + 1.0
        at_night = 22 * HOUR <= now < 23 * HOUR
        rate = DIGITS if at_night else PLAIN
        for _ in range(3):
            for node in ("a", "b"):
                verdicts.append(audit.observe(node, MODEL, honest(rng, rate), now))
        if hour * HOUR <= now < (hour + 1) * HOUR:
            for _ in range(4):
                s = honest(rng, rate) if sample == "honest" else byte_a_token(rng)
                verdicts.append(audit.observe(night, MODEL, s, now))
    return [v for v in verdicts if v is not None]


def test_an_honest_node_online_only_during_a_digit_heavy_hour_is_not_flagged() -> None:
    """It sees that hour's mix (digits: 2.2 times the day's); against its peers' sums over
    the whole day it was flagged for when it was online (before the windows). Against their
    share in the same windows (the same digits) it is at 1 time."""
    rng = random.Random(11)
    audit = UsageAudit(WINDOWED)
    assert _day(audit, rng, "night", "honest", 22) == []
    audit.observe("a", MODEL, honest(rng, PLAIN), 24 * HOUR + 1.0)  # the last window closes
    ev = audit.evidence("night", MODEL)
    assert ev is not None and ev.requests == 48  # its answers, all in windows shared
    share, theirs = ev.share("completion"), ev.peers_share("completion")
    assert share is not None and theirs is not None and 0.8 < share / theirs < 1.25
    assert share > 2 * 0.27  # (the day's mix: what its peers' whole-day sums stand at)
    assert audit.verdict("night", MODEL) is None


def test_a_liar_online_at_the_same_times_as_its_peers_is_still_flagged() -> None:
    rng = random.Random(12)
    audit = UsageAudit(WINDOWED)
    (v,) = _day(audit, rng, "liar", "liar", 10)  # online 10:00-11:00 only, as its peers were
    assert (v.node_id, v.kind, v.requests, v.peers) == ("liar", "completion", 40, 2)
    assert v.share == 1.0 and v.peers_median < 0.35  # the plain mix of that hour
    # ... and online all day beside them
    audit2 = UsageAudit(WINDOWED)
    got = []
    for w in range(40):
        now = w * WINDOWED.bucket_s
        for node in ("a", "b"):
            for _ in range(3):
                audit2.observe(node, MODEL, honest(rng, PLAIN), now)
        for _ in range(3):
            got.append(audit2.observe("liar", MODEL, byte_a_token(rng), now))
    v2 = next(v for v in got if v is not None)  # (its answers in the open window count)
    assert v2.node_id == "liar" and v2.requests == 40 and v2.share == 1.0
    assert v2.peers_median < 0.35


def test_a_liar_online_alone_is_not_judged_no_evidence() -> None:
    """Online only at hours no peer answers (its peers by day, it at night): no window
    shared, no evidence, no verdict (as with a model it alone serves)."""
    rng = random.Random(13)
    audit = UsageAudit(WINDOWED)
    for w in range(int(24 * HOUR / WINDOWED.bucket_s)):
        now = w * WINDOWED.bucket_s
        if now < 20 * HOUR:  # its peers: until 20:00
            for node in ("a", "b"):
                for _ in range(3):
                    assert audit.observe(node, MODEL, honest(rng, PLAIN), now) is None
        else:  # the liar: from 20:00, alone
            for _ in range(4):
                assert audit.observe("liar", MODEL, byte_a_token(rng), now) is None
    ev = audit.evidence("liar", MODEL)
    assert ev is not None and ev.requests == 0 and audit.verdict("liar", MODEL) is None
    row = next(r for r in audit.view() if r["node_id"] == "liar")
    assert row["requests"] == 0 and row["peers_completion_share"] is None


def test_windows_closed_are_not_kept() -> None:
    """Memory: each model's open window only; a node's evidence is a few sums."""
    rng = random.Random(14)
    audit = UsageAudit(WINDOWED)
    for w in range(100):
        for node in ("a", "b"):
            for _ in range(3):
                audit.observe(node, MODEL, honest(rng, PLAIN), w * WINDOWED.bucket_s)
    assert audit.bucket == {MODEL: 99}
    assert audit.usage[(MODEL, "a")].current.requests == 3
    assert audit.usage[(MODEL, "a")].evidence.requests == 99 * 3


def test_median_without_one_value_is_the_others_median() -> None:
    rng = random.Random(15)
    for n in range(2, 12):
        values = sorted(rng.choice([0.1, 0.2, 0.25, 0.3, 0.9]) for _ in range(n))
        for v in set(values):
            rest = list(values)
            rest.remove(v)
            assert median_without(values, v) == median(rest)


def test_context_tier_is_the_smallest_declared_context_a_request_fits() -> None:
    from LLM_Mesh.core.usage_audit import context_tier

    assert context_tier(5000, []) == 0 and context_tier(5000, [0, 0]) == 0  # none declared
    assert context_tier(4096, [4096, 8192, 0]) == 0  # fits every node
    assert context_tier(4097, [4096, 32_768, 8192, 0]) == 8192
    assert context_tier(9000, [32_768, 4096, 8192]) == 32_768
    assert context_tier(40_000, [4096, 32_768]) == -1  # fits none


def test_a_liar_answering_under_bucket_min_a_window_is_still_judged() -> None:
    """A liar that refuses past 2 answers in any 10 minutes (under ``bucket_min``) beside
    busy peers: its windows were never shared (no evidence, paid its inflated counts for
    ever). Its own answers are judged against the peers counted in each window; it is not
    one of the peers' medians (a share of 2 answers is noise)."""
    rng = random.Random(16)
    audit = UsageAudit(WINDOWED)
    got = []
    for w in range(60):
        now = w * WINDOWED.bucket_s
        for node in ("a", "b"):
            for _ in range(4):
                assert audit.observe(node, MODEL, honest(rng, PLAIN), now) is None
        for _ in range(2):
            got.append(audit.observe("liar", MODEL, byte_a_token(rng), now))
    v = next(v for v in got if v is not None)
    assert (v.node_id, v.kind, v.peers, v.share) == ("liar", "completion", 2, 1.0)
    assert v.peers_median < 0.35


def test_an_honest_node_answering_under_bucket_min_a_window_is_not_flagged() -> None:
    rng = random.Random(17)
    audit = UsageAudit(WINDOWED)
    for w in range(200):
        now = w * WINDOWED.bucket_s
        for node in ("a", "b"):
            for _ in range(4):
                assert audit.observe(node, MODEL, honest(rng, PLAIN), now) is None
        for _ in range(1 + w % 2):
            assert audit.observe("slow", MODEL, honest(rng, PLAIN), now) is None
    ev = audit.evidence("slow", MODEL)
    assert ev is not None and ev.requests > WINDOWED.min_requests  # judged, within 2x
    # the slow node is no one's peer in a window: a's peers are b alone
    ev_a = audit.evidence("a", MODEL)
    assert ev_a is not None and ev_a.peers == 1


def test_the_admins_listing_sorts_each_models_window_once_not_once_a_node() -> None:
    """``view`` over a model of n nodes: one table of the open window (O(n log n)), not one
    a node (O(n² log n): 2.1 s for 2,000 nodes, on the gateway's event loop; now 0.03 s)."""
    rng = random.Random(18)
    audit = UsageAudit(WINDOWED)
    for i in range(300):
        for _ in range(3):
            audit.observe(f"n{i}", MODEL, honest(rng, PLAIN), 1.0)
    calls = 0
    original = audit._table

    def counted(nodes: dict) -> object:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return original(nodes)

    audit._table = counted  # type: ignore[method-assign]
    rows = audit.view()
    assert len(rows) == 300 and calls == 1


# Sums, bounds and boundaries, each said exactly (mutation testing, mut31b).
SMALL = AuditPolicy(min_requests=6, check_every=1, bucket_min=1)


def test_a_sample_adds_no_negative_count_and_a_count_above_its_cap_adds_the_cap() -> None:
    u = NodeUsage()
    u.add(AuditSample(-5, -1, -5, -1))
    u.add(AuditSample(0, 0, 0, 0))
    assert (u.requests, u.completion, u.completion_cap, u.prompt, u.prompt_cap) == (2, 0, 0, 0, 0)
    assert u.share("completion") is None and u.share("prompt") is None  # no cap yet
    u.add(AuditSample(9, 1, 2, 4))
    assert (u.share("completion"), u.share("prompt")) == (1.0, 0.5)


def test_halving_keeps_whole_numbers_rounded_down() -> None:
    u = NodeUsage(3, 5, 11, 7, 13)
    u.halve()
    assert (u.requests, u.completion, u.completion_cap, u.prompt, u.prompt_cap) == (1, 2, 5, 3, 6)
    ev = Evidence(5, 7, 2, {"completion": 3.0, "prompt": 1.0}, {"completion": 1.0, "prompt": 5.0},
                  {"completion": 2.0, "prompt": 4.0})  # fmt: skip
    ev.halve()
    assert (ev.requests, ev.peer_requests, ev.peers) == (2, 3, 2)
    assert (ev.priced, ev.cap, ev.ref) == ({"completion": 1.5, "prompt": 0.5},
                                           {"completion": 0.5, "prompt": 2.5},
                                           {"completion": 1.0, "prompt": 2.0})  # fmt: skip
    assert (ev.share("completion"), ev.peers_share("completion")) == (3.0, 2.0)  # a cap under 1


def test_a_node_with_one_answer_a_window_counts_where_bucket_min_is_1() -> None:
    """Each kind against the other nodes' shares of that kind; a kind a node has no cap of
    (here a's completion) adds nothing, its other kind still does."""
    audit = UsageAudit(SMALL)
    audit.observe("a", MODEL, AuditSample(0, 0, 5, 10))
    audit.observe("b", MODEL, AuditSample(3, 10, 7, 10))
    a, b = audit.evidence("a", MODEL), audit.evidence("b", MODEL)
    assert a is not None and b is not None
    assert (a.requests, a.peer_requests, a.peers) == (1, 1, 1)
    assert (a.share("completion"), a.share("prompt"), a.peers_share("prompt")) == (None, 0.5, 0.7)
    assert (b.share("completion"), b.peers_share("completion")) == (None, None)  # no peer has one
    assert b.peers_share("prompt") == 0.5
    audit.observe("c", MODEL, AuditSample(1, 10, 9, 10))
    c = audit.evidence("c", MODEL)
    assert c is not None and c.peers_share("completion") == 0.3  # b's: a has none


def test_a_verdict_on_the_prompt_when_the_completion_has_no_cap() -> None:
    audit = UsageAudit(SMALL)
    for _ in range(SMALL.min_requests):
        audit.observe("a", MODEL, AuditSample(2, 10, 2, 10))
    got = [audit.observe("liar", MODEL, AuditSample(0, 0, 10, 10)) for _ in range(6)]
    assert got[:5] == [None] * 5
    v = got[5]  # its 6th answer, its peer's 6 answers: exactly min_requests each
    assert v is not None and (v.kind, v.share, v.peers_median, v.requests) == (
        "prompt",
        1.0,
        0.2,
        6,
    )


def test_a_verdict_at_exactly_min_requests_when_checking_every_answer() -> None:
    policy = AuditPolicy(min_requests=7, check_every=1, bucket_min=1)
    audit = UsageAudit(policy)
    for _ in range(7):
        audit.observe("a", MODEL, AuditSample(2, 10, 2, 10))
    got = [audit.observe("liar", MODEL, AuditSample(10, 10, 2, 10)) for _ in range(7)]
    assert got[:6] == [None] * 6 and got[6] is not None and got[6].requests == 7


def test_a_node_at_exactly_window_answers_is_halved() -> None:
    audit = UsageAudit(AuditPolicy(window=4, bucket_s=600.0))
    for _ in range(4):
        audit.observe("a", MODEL, AuditSample(1, 10, 1, 10), 1.0)
    assert audit.usage[(MODEL, "a")].current.requests == 2
    # ... and its evidence, at exactly window answers in shared windows
    audit = UsageAudit(AuditPolicy(window=6, bucket_s=600.0, bucket_min=3))
    for w in range(3):
        for node in ("a", "b"):
            for _ in range(3):
                audit.observe(node, MODEL, AuditSample(1, 10, 1, 10), w * 600.0)
    assert audit.usage[(MODEL, "a")].evidence.requests == 3  # 3, then 6 halved to 3


def test_a_model_never_answered_has_no_evidence_and_no_verdict() -> None:
    audit = UsageAudit(SMALL)
    audit.observe("a", MODEL, AuditSample(1, 10, 1, 10))
    assert audit.evidence("a", "other") is None and audit.verdict("a", "other") is None


def test_one_pair_kept_when_max_entries_is_1() -> None:
    audit = UsageAudit(AuditPolicy(max_entries=1))
    audit.observe("a", MODEL, AuditSample(1, 10, 1, 10))
    audit.observe("b", MODEL, AuditSample(1, 10, 1, 10))
    assert list(audit.usage) == [(MODEL, "b")] and list(audit.by_model[MODEL]) == ["b"]


def test_a_time_that_is_no_finite_number_is_window_0() -> None:
    audit = UsageAudit(SMALL)
    for now in (float("inf"), float("nan"), -float("inf")):
        audit.observe("a", MODEL, AuditSample(1, 10, 1, 10), now)
    assert audit.bucket == {MODEL: 0} and audit.usage[(MODEL, "a")].current.requests == 3


def test_forgetting_a_node_for_one_model_or_all_and_the_last_node_of_a_model() -> None:
    audit = UsageAudit(SMALL)
    for model in ("m1", "m2"):
        for node in ("a", "b"):
            audit.observe(node, model, AuditSample(1, 10, 1, 10))
    audit.forget("a", "m1")
    assert set(audit.usage) == {("m1", "b"), ("m2", "a"), ("m2", "b")}
    audit.forget("b")
    assert set(audit.usage) == {("m2", "a")} and set(audit.by_model) == {"m2"}
    assert audit.bucket == {"m2": 0}  # m1's window forgotten with its last node


def test_the_view_lists_each_pair_with_its_shares_to_four_places() -> None:
    audit = UsageAudit(SMALL)
    audit.observe("a", MODEL, AuditSample(1, 3, 2, 3))
    audit.observe("b", MODEL, AuditSample(1, 6, 1, 3))
    assert audit.view()[0] == {
        "node_id": "a", "model": MODEL, "requests": 1, "peer_requests": 1,
        "open_window_requests": 1, "completion_share": 0.3333,
        "peers_completion_share": 0.1667, "prompt_share": 0.6667,
        "peers_prompt_share": 0.3333, "peers": 1,
    }  # fmt: skip


def test_a_node_under_bucket_min_is_held_to_the_median_of_every_peer_counted() -> None:
    """A node with fewer than ``bucket_min`` answers in the window is no peer of its own:
    its reference is the median of all the counted nodes' shares (odd and even counts)."""
    policy = AuditPolicy(bucket_min=2)
    for shares, expected in (
        ((0.2,), 0.2),
        ((0.6, 0.2), 0.4),
        ((0.6, 0.1, 0.2), 0.2),
        ((0.6, 0.1, 0.4, 0.2), 0.3),
        ((0.6, 0.1, 0.4, 0.2, 0.9), 0.4),
        ((0.6, 0.1, 0.4, 0.2, 0.9, 0.8), 0.5),
    ):
        audit = UsageAudit(policy)
        for i, share in enumerate(shares):
            for _ in range(2):
                audit.observe(f"p{i}", MODEL, AuditSample(round(share * 10), 10, 1, 10))
        audit.observe("slow", MODEL, AuditSample(5, 10, 1, 10))
        ev = audit.evidence("slow", MODEL)
        assert ev is not None and (ev.requests, ev.peers) == (1, len(shares))
        assert ev.peers_share("completion") == pytest.approx(expected), shares


def test_context_tier_boundaries() -> None:
    from LLM_Mesh.core.usage_audit import context_tier

    assert context_tier(8192, [4096, 32_768, 8192]) == 8192  # exactly a context: it fits
    assert context_tier(5000, [0, 4096, 8192]) == 8192  # an undeclared one passed over
    assert context_tier(2, [1, 4096]) == 4096  # a context of 1 is declared
