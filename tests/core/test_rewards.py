"""The uptime reward formula: uptime measured per heartbeat, cut into periods, paid."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.rewards import (
    CARRY_MS,
    LOAD_SLACK,
    LOAD_TRANSIT_S,
    REFUSAL_HALF_LIFE_S,
    ModelStats,
    NodePeriod,
    answer_share_milli,
    close_uptime,
    decay,
    due_period,
    explained_load_credit_s,
    heartbeat_credit_ms,
    known_at_report,
    load_slack,
    operator_uptime_ms,
    peer_speeds,
    peer_stats,
    performance_milli,
    refusal_credit_s,
    registered_since,
    reward_amount,
    rewards,
    serving,
    success_milli,
    uptime_period,
)

HOUR_MS = 3_600_000
EXPIRY_MS = 30_000
RATE = 100_000  # micro-NetworkTokens per hour


def _credits(beats: list[tuple[int, bool]], *, limit_ms: int = EXPIRY_MS) -> int:
    """Sum the credits of heartbeats ``(at_ms, online state they report)`` after a
    registration at 0 with state online."""
    total, since, online = 0, 0, True
    for at, state in beats:
        total += heartbeat_credit_ms(was_online=online, since_ms=since, at_ms=at, limit_ms=limit_ms)
        since, online = at, state
    return total


# -- measuring uptime, heartbeat by heartbeat ---------------------------------------


def test_regular_heartbeats_credit_all_the_time_between_them() -> None:
    beats = [(t, True) for t in range(10_000, HOUR_MS + 1, 10_000)]
    assert _credits(beats) == HOUR_MS


def test_a_silence_longer_than_the_expiry_credits_only_the_expiry() -> None:
    """Routable until the expiry after its last heartbeat, then out: the gap beyond it
    is not credited."""
    assert _credits([(10_000, True), (300_000, True)]) == 10_000 + EXPIRY_MS


def test_an_unhealthy_node_earns_nothing() -> None:
    # paused (its own heartbeat says so): the time after it is not credited
    assert _credits([(10_000, False), (20_000, False), (30_000, False)]) == 10_000
    # the registry's active check failed: limit 0, nothing at all
    assert _credits([(t, True) for t in range(10_000, 100_000, 10_000)], limit_ms=0) == 0
    assert heartbeat_credit_ms(was_online=False, since_ms=0, at_ms=10_000, limit_ms=EXPIRY_MS) == 0
    # no previous heartbeat known: nothing to vouch for
    assert heartbeat_credit_ms(was_online=True, since_ms=None, at_ms=9, limit_ms=EXPIRY_MS) == 0


def test_a_clock_that_went_back_credits_nothing() -> None:
    assert heartbeat_credit_ms(was_online=True, since_ms=50, at_ms=10, limit_ms=EXPIRY_MS) == 0


def test_a_node_restart_is_not_credited_but_what_came_before_is_kept() -> None:
    """A restarted node registers again (its previous heartbeat is then the
    registration): the time it was down is not credited, its earlier credit stays."""
    before = _credits([(t, True) for t in range(10_000, 600_001, 10_000)])
    # down from 600 s to 700 s; the registration at 700 s resets "since"
    after = sum(
        heartbeat_credit_ms(was_online=True, since_ms=t - 10_000, at_ms=t, limit_ms=EXPIRY_MS)
        for t in range(710_000, 1_200_001, 10_000)
    )
    assert before == 600_000 and after == 500_000
    counter = before + after
    healthy, _ = close_uptime(counter, 0, 1_200_000)
    assert healthy == 1_100_000  # 100 s of 1200 s down


# -- cutting it into periods -----------------------------------------------------------


def test_close_uptime_counts_what_the_counter_gained() -> None:
    assert close_uptime(5_000, 0, HOUR_MS) == (5_000, 5_000)
    assert close_uptime(2_000_000, 500_000, HOUR_MS) == (1_500_000, 2_000_000)
    # nothing gained: zero uptime, the mark stays
    assert close_uptime(700, 700, HOUR_MS) == (0, 700)


def test_a_little_beyond_the_period_carries_into_the_next() -> None:
    """Always up: the close runs after the boundary, so the counter has more than the
    period; the excess (< CARRY_MS) counts next time, and each period gets 100 %."""
    counter = HOUR_MS + 12_000
    healthy, mark = close_uptime(counter, 0, HOUR_MS)
    assert (healthy, mark) == (HOUR_MS, HOUR_MS)
    healthy2, mark2 = close_uptime(2 * HOUR_MS + 9_000, mark, HOUR_MS)
    assert (healthy2, mark2) == (HOUR_MS, 2 * HOUR_MS)


def test_more_than_the_carry_beyond_the_period_is_dropped() -> None:
    """A first close of a node with a long history (or after periods nobody closed)
    pays at most one period, and does not keep paying the rest later."""
    healthy, mark = close_uptime(10 * HOUR_MS, 0, HOUR_MS)
    assert healthy == HOUR_MS and mark == 10 * HOUR_MS - CARRY_MS
    # then the node is down a whole period: only the carried minute is counted
    assert close_uptime(10 * HOUR_MS, mark, HOUR_MS)[0] == CARRY_MS


def test_a_counter_below_the_mark_starts_over() -> None:
    assert close_uptime(4_000, 90_000, HOUR_MS) == (4_000, 4_000)


def test_close_uptime_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        close_uptime(1, 0, 0)
    with pytest.raises(ValueError):
        close_uptime(1, 0, 10, -1)


def test_due_period_is_the_last_period_ended_grace_ago() -> None:
    assert due_period(7200 + 5, 3600, 10) == 0  # 7200 + 5 - 10 is still in [3600, 7200)
    assert due_period(7200 + 10, 3600, 10) == 3600
    assert due_period(7200 + 3599, 3600, 10) == 3600
    with pytest.raises(ValueError):
        due_period(1, 0, 1)


# -- success and performance ---------------------------------------------------------------


def test_success_factor() -> None:
    assert success_milli(0, 0) == 1000
    assert success_milli(99, 0) == 1000
    assert success_milli(1, 1) == 666
    assert success_milli(0, 1) == 500
    assert success_milli(0, 999) == 1
    assert success_milli(9, 90) == 100
    with pytest.raises(ValueError):
        success_milli(-1, 0)


def test_speed_needs_a_measure() -> None:
    assert ModelStats().speed is None
    assert ModelStats(ok=1, tokens=10, latency_ms=0).speed is None
    assert ModelStats(ok=2, tokens=100, latency_ms=2000).speed == 50.0


def test_performance_is_speed_against_the_peers_median_and_bounded() -> None:
    stats = {
        "fast": {"m": ModelStats(ok=10, tokens=1000, latency_ms=5_000)},  # 200 tok/s
        "mid": {"m": ModelStats(ok=10, tokens=1000, latency_ms=10_000)},  # 100 tok/s
        "slow": {"m": ModelStats(ok=10, tokens=1000, latency_ms=12_500)},  # 80 tok/s
        "crawl": {"m": ModelStats(ok=10, tokens=100, latency_ms=10_000)},  # 10 tok/s
    }
    medians = peer_speeds(stats)
    assert medians == {"m": 90.0}
    assert performance_milli(stats["fast"], medians) == 1500  # 2.2x, capped
    assert performance_milli(stats["mid"], medians) == 1111
    assert performance_milli(stats["slow"], medians) == 888
    assert performance_milli(stats["crawl"], medians) == 500  # 0.11x, floored


def test_performance_is_neutral_without_peers_or_requests() -> None:
    alone = {"only": {"m": ModelStats(ok=3, tokens=30, latency_ms=100)}}
    assert peer_speeds(alone) == {}
    assert performance_milli(alone["only"], {}) == 1000
    assert performance_milli({}, {"m": 5.0}) == 1000
    # failures only: no speed measured, no weight
    assert performance_milli({"m": ModelStats(failed=4)}, {"m": 5.0}) == 1000


def test_performance_is_weighted_by_requests_over_models() -> None:
    node = {
        "a": ModelStats(ok=3, tokens=300, latency_ms=1000),  # 300 tok/s vs 150: 2.0 -> 1.5
        "b": ModelStats(ok=1, tokens=10, latency_ms=1000),  # 10 tok/s vs 20: 0.5
    }
    assert performance_milli(node, {"a": 150.0, "b": 20.0}) == (3 * 1500 + 500) // 4


# -- the amount -----------------------------------------------------------------------------


def test_reward_amount_is_integer_and_proportional() -> None:
    assert reward_amount(RATE, HOUR_MS, 1000, 1000) == RATE
    assert reward_amount(RATE, HOUR_MS // 2, 1000, 1000) == RATE // 2  # a partial period
    assert reward_amount(RATE, 0, 1500, 1000) == 0  # zero uptime
    assert reward_amount(RATE, HOUR_MS, 1500, 1000) == 150_000
    assert reward_amount(RATE, HOUR_MS, 500, 500) == 25_000
    assert reward_amount(0, HOUR_MS, 1000, 1000) == 0  # rate 0: off
    assert reward_amount(7, 1, 1000, 1000) == 0  # rounded down, never up
    assert type(reward_amount(RATE, 1234567, 1234, 999)) is int
    with pytest.raises(ValueError):
        reward_amount(-1, 1, 1, 1)


def test_rewards_of_a_period() -> None:
    nodes = [
        NodePeriod("up", HOUR_MS, {}),
        NodePeriod("half", HOUR_MS // 2, {}),
        NodePeriod("down", 0, {}),
        NodePeriod("over", HOUR_MS + 5_000, {}),  # never more than the period
        NodePeriod(
            "flaky",
            HOUR_MS,
            {"m": ModelStats(ok=1, failed=3, tokens=10, latency_ms=1000)},
        ),
    ]
    got = {r.node_id: r for r in rewards(nodes, rate=RATE, period_ms=HOUR_MS)}
    assert got["up"].amount == RATE and got["up"].healthy_ms == HOUR_MS
    assert got["half"].amount == RATE // 2
    assert got["down"].amount == 0
    assert got["over"].amount == RATE and got["over"].healthy_ms == HOUR_MS
    assert got["flaky"].success == 400 and got["flaky"].performance == 1000
    assert got["flaky"].amount == RATE * 400 // 1000


def test_rewards_take_medians_over_all_peers() -> None:
    """A node is compared with every node that served the model, not only those
    rewarded in the batch."""
    peers = {
        "a": {"m": ModelStats(ok=1, tokens=100, latency_ms=1000)},
        "b": {"m": ModelStats(ok=1, tokens=50, latency_ms=1000)},
        "c": {"m": ModelStats(ok=1, tokens=50, latency_ms=1000)},
    }
    (only,) = rewards(
        [NodePeriod("a", HOUR_MS, peers["a"])], rate=RATE, period_ms=HOUR_MS, peers=peers
    )
    assert only.performance == 1500 and only.amount == 150_000


def test_a_one_ms_heartbeat_limit_still_credits() -> None:
    assert heartbeat_credit_ms(was_online=True, since_ms=0, at_ms=5, limit_ms=1) == 1
    assert heartbeat_credit_ms(was_online=True, since_ms=0, at_ms=5, limit_ms=0) == 0


def test_small_periods_and_zero_carry_or_grace_are_allowed() -> None:
    assert close_uptime(10, 0, 1, carry_ms=0) == (1, 10)
    assert close_uptime(10, 0, 5, carry_ms=1) == (5, 9)
    assert due_period(10.0, 1, 0.0) == 9
    assert due_period(10.5, 1, 0.5) == 9
    cases = [
        (lambda: close_uptime(10, 0, 0), "a period is positive and the carry not negative"),
        (lambda: close_uptime(10, 0, 5, carry_ms=-1), "a period is positive and the carry not negative"),
        (lambda: due_period(10.0, 0, 0.0), "a period is positive and the grace not negative"),
        (lambda: due_period(10.0, 1, -0.5), "a period is positive and the grace not negative"),
        (lambda: success_milli(-1, 0), "request counts cannot be negative"),
        (lambda: reward_amount(1, 1, 1, -1), "a reward's inputs cannot be negative"),
        (lambda: reward_amount(1, 1, -1, 1), "a reward's inputs cannot be negative"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == message


def test_zero_performance_or_success_is_a_zero_reward_not_an_error() -> None:
    assert reward_amount(1000, 3_600_000, 0, 1000) == 0
    assert reward_amount(1000, 3_600_000, 1000, 0) == 0


def test_two_peers_are_enough_for_a_median_one_is_not() -> None:
    fast, slow = (
        ModelStats(ok=1, tokens=20, latency_ms=1000.0),
        ModelStats(ok=1, tokens=10, latency_ms=1000.0),
    )
    assert peer_speeds({"a": {"m": fast}, "b": {"m": slow}}) == {"m": 15.0}
    assert peer_speeds({"a": {"m": fast}}) == {}


def test_performance_skips_models_without_answers_and_rounds_down() -> None:
    medians = {"m": 10.0, "n": 10.0, "idle": 10.0}
    node = {
        "idle": ModelStats(ok=0, failed=3),  # nothing answered: no weight
        "m": ModelStats(ok=1, tokens=11, latency_ms=1000.0),  # 1100
        "n": ModelStats(ok=2, tokens=10, latency_ms=1000.0),  # 10 tokens/s: 1000
    }
    # (1100 * 1 + 1000 * 2) / 3 = 1033.33 -> 1033
    assert performance_milli(node, medians) == 1033


def test_a_node_with_no_healthy_time_gets_nothing() -> None:
    (r,) = rewards([NodePeriod("a", 0, {})], rate=1000, period_ms=3_600_000)
    assert (r.healthy_ms, r.amount) == (0, 0)


def test_only_a_node_serving_a_model_it_does_not_simulate_earns_uptime() -> None:
    from LLM_Mesh.core.rewards import earns_uptime

    assert earns_uptime([{"id": "m", "simulated": False}])
    assert earns_uptime([{"id": "m"}])  # an older node's row: no flag, a real engine
    assert earns_uptime([{"id": "a", "simulated": True}, {"id": "b", "simulated": False}])
    assert not earns_uptime([{"id": "m", "simulated": True}])
    assert not earns_uptime([])


def _serving(**kw: object) -> bool:
    args: dict[str, object] = dict(
        check_failed=False, ejected=False, refused_gateway_at=None, refusing_since=None,
        refused_at=None, now=1000.0, window_s=300.0,
    )  # fmt: skip
    args.update(kw)
    return serving(**args)  # type: ignore[arg-type]


def test_serving_needs_routable_and_answering() -> None:
    """Heartbeat credit (registry/api.py): none while failed, ejected, refusing the
    gateway's key lately, or refusing every request for the window with one lately; a
    single refusal, or refusals not repeated within the window, credit."""
    assert _serving()
    assert not _serving(check_failed=True)
    assert not _serving(ejected=True)
    assert not _serving(refused_gateway_at=800.0)
    assert _serving(refused_gateway_at=700.0)
    assert _serving(refusing_since=990.0, refused_at=990.0)  # one refusal
    assert not _serving(refusing_since=700.0, refused_at=990.0)  # 300 s of refusals
    assert _serving(refusing_since=700.0, refused_at=700.0)  # not asked again since


def test_a_node_refusing_99_of_100_requests_is_credited_about_2_percent() -> None:
    """The success factor counts recorded answers only, and the heartbeat rule only
    refusals with no answer for 5 minutes: a node answering 1 request in 100 and refusing
    the rest kept full uptime credit (found 2026-12-02, third pass). Its heartbeats now
    credit the share it answered, (1 + 1) / (1 + 99 + 1); a node sent nothing, or
    answering all, keeps all of it."""
    share = answer_share_milli(1, 99)
    assert share == 19
    assert refusal_credit_s(30.0, 10.0, share) == pytest.approx(0.19)
    assert refusal_credit_s(30.0, 10.0, answer_share_milli(0, 0)) == 30.0
    assert refusal_credit_s(30.0, 10.0, answer_share_milli(100, 0)) == 30.0
    assert answer_share_milli(0, 1) == 500  # one refusal, no answer: half
    assert answer_share_milli(99, 1) == 990  # a busy node's odd 429: about all
    # no credit stays no credit; a clock that went back credits nothing extra
    assert refusal_credit_s(0.0, 10.0, share) == 0.0
    assert refusal_credit_s(30.0, -5.0, share) == 0.0
    # no previous heartbeat here: the share of the expiry (the store credits at most the
    # time since the node's previous heartbeat anywhere)
    assert refusal_credit_s(30.0, None, 500) == 15.0
    assert refusal_credit_s(30.0, 60.0, 500) == 15.0  # at most the expiry's share
    with pytest.raises(ValueError):
        answer_share_milli(-1, 0)


def test_refusal_counts_fade_with_a_half_life() -> None:
    assert decay(8.0, REFUSAL_HALF_LIFE_S) == pytest.approx(4.0)
    assert decay(8.0, 3 * REFUSAL_HALF_LIFE_S) == pytest.approx(1.0)
    assert decay(8.0, 0.0) == 8.0 and decay(8.0, -10.0) == 8.0
    assert decay(0.0, 100.0) == 0.0
    with pytest.raises(ValueError):
        decay(1.0, 1.0, half_life_s=0.0)


def test_a_node_answering_everything_keeps_all_its_credit_after_decay() -> None:
    """Counts faded by :func:`decay` with no refusal: the share is all of it (found
    2026-12-03: ``(a + 1) * 1000 // (a + 1)`` in floats gave 999 for one answer 14 s old,
    cutting an honest node's heartbeats by 0.1 %)."""
    for n in (1, 2, 7, 40):
        for t in range(0, 900, 7):
            assert answer_share_milli(decay(float(n), float(t)), 0.0) == 1000
    assert answer_share_milli(decay(1.0, 14.0), 0.0) == 1000


def test_the_slack_never_explains_a_report_of_full() -> None:
    """The timing slack is LOAD_SLACK requests, at most capacity - 1."""
    assert LOAD_SLACK == 2
    assert load_slack(6) == 2
    assert load_slack(2) == 1
    assert load_slack(1) == 0
    assert load_slack(0) == 0


def test_claimed_load_nobody_sent_earns_nothing() -> None:
    """The interval a node's load report steered the router is credited for the share of
    the claimed load the mesh sent it (found 2026-12-03: a node claiming full, or one short
    of full, with nothing sent was credited in full, the latter even under the full-claim
    rule)."""

    def credit(claimed: int, known: int, capacity: int = 6) -> float:
        return explained_load_credit_s(5.0, None, claimed=claimed, known=known, capacity=capacity)

    assert credit(6, 0) == 0.0  # full, nobody sent anything
    assert credit(5, 0) == 0.0  # one short of full, nobody sent anything
    assert credit(3, 0) == 0.0
    assert credit(1, 0, capacity=1) == 0.0  # a one-slot node's full: no slack
    assert credit(6, 3) == 2.5  # half of it explained: half the credit
    assert credit(10, 0, capacity=6) == 0.0  # beyond its capacity
    # honest: the claim is at most what was sent, plus the slack
    assert credit(6, 6) == 5.0
    assert credit(6, 4) == 5.0  # two started at another replica since its last count
    assert credit(0, 0) == 5.0  # idle
    assert credit(2, 0) == 5.0  # within the slack
    assert credit(4, 9) == 5.0  # sent more than it claims (still queued on the wire)
    assert credit(-3, 0) == 5.0
    assert explained_load_credit_s(0.0, None, claimed=0, known=0, capacity=6) == 0.0
    assert explained_load_credit_s(-1.0, None, claimed=0, known=0, capacity=6) == 0.0
    # the share is of the interval it vouches for (the time since its previous heartbeat)
    assert explained_load_credit_s(30.0, 5.0, claimed=6, known=3, capacity=6) == 2.5
    assert explained_load_credit_s(30.0, 60.0, claimed=6, known=3, capacity=6) == 15.0
    assert explained_load_credit_s(30.0, 5.0, claimed=6, known=6, capacity=6) == 30.0


def test_known_at_report_counts_a_peak_only_when_its_requests_ended_on_the_reports_way() -> None:
    """A load report in transit while the gateway's requests it counts were answered: the
    gateway's peak since the previous report explains it when one ended at most
    LOAD_TRANSIT_S (1 s) before the report arrived; else only what is in flight now."""
    assert LOAD_TRANSIT_S == 1.0
    assert known_at_report(0, 4, ended_at=9.8, now=10.0) == 4
    assert known_at_report(0, 4, ended_at=9.0, now=10.0) == 4
    assert known_at_report(0, 4, ended_at=8.9, now=10.0) == 0  # done before: the node knew
    assert known_at_report(2, 4, ended_at=5.0, now=10.0) == 2
    assert known_at_report(5, 4, ended_at=9.9, now=10.0) == 5
    assert known_at_report(-1, 0, ended_at=-math.inf, now=10.0) == 0
    assert known_at_report(0, 4, ended_at=7.0, now=10.0, transit_s=3.0) == 4


def test_uptime_is_closed_in_the_period_of_its_last_credit_before_the_due_one() -> None:
    p = 3600
    due = 10 * p
    assert uptime_period(due + 5, 9 * p, due, p) == due  # up through it: the due period
    assert uptime_period(None, None, due, p) == due
    assert uptime_period(due - 5, 9 * p, due, p) == due  # its last beat in it
    # every registry down since 7.5 periods: the uptime was earned in period 7
    assert uptime_period(7.5 * p, 6 * p, due, p) == 7 * p
    assert uptime_period(7.5 * p, None, due, p) == 7 * p  # never closed before
    assert uptime_period(8 * p, 6 * p, due, p) == 7 * p  # a beat at 8's start vouches for 7
    # a period already closed for the node is not closed again: the due one takes it
    assert uptime_period(7.5 * p, 7 * p, due, p) == due
    with pytest.raises(ValueError):
        uptime_period(1.0, None, due, 0)


def test_a_node_registered_after_a_period_ended_is_not_closed_in_it() -> None:
    """newuser43: registered at 13:32, closed at a 13:35 start in the 12:00 period."""
    p, due = 3600, 12 * 3600
    assert registered_since(due + p + 1920, due, p)  # 13:32: after 12:00-13:00
    assert registered_since(due + p, due, p)  # at its end: none of it in the period
    assert not registered_since(due + p - 1, due, p)  # a second in it
    assert not registered_since(due - 5 * p, due, p)  # long before: the period's close
    with pytest.raises(ValueError):
        registered_since(0.0, due, 0)


def test_the_nodes_that_earn_no_uptime_set_no_median() -> None:
    """attack30: an operator's sim nodes (or held ones) answering at once set the median
    speed, and every honest node of the model was judged at 500; ``peer_stats`` leaves them
    out, so the honest node, alone, is judged at 1000."""
    honest = {"m": ModelStats(ok=3, tokens=150, latency_ms=3000.0)}  # 50 tokens/s
    fast = {"m": ModelStats(ok=3, tokens=150, latency_ms=3.0)}
    stats = {"real": honest, "s1": fast, "s2": fast, "held": fast}
    assert performance_milli(honest, peer_speeds(stats)) == 500
    peers = peer_stats(stats, {"s1", "s2", "held"})
    assert peers == {"real": honest}
    assert performance_milli(honest, peer_speeds(peers)) == 1000


def test_an_operators_uptime_is_split_within_its_cap_however_many_ids_it_holds() -> None:
    """Found 2026-12-05: each node id earned the full rate, so an operator holding 20 keys
    earned 20 nodes' uptime; now its nodes' healthy time is cut to its budget, split in
    proportion, and never sums past it."""
    p = 3_600_000
    twenty = {f"n{i}": p for i in range(20)}
    cut = operator_uptime_ms(twenty, budget_ms=4 * p)
    assert set(cut.values()) == {4 * p // 20} and sum(cut.values()) == 4 * p
    # one node, or any number within the budget: unchanged
    assert operator_uptime_ms({"solo": p}, budget_ms=p) == {"solo": p}
    assert operator_uptime_ms({"a": p, "b": p // 2}, budget_ms=4 * p) == {"a": p, "b": p // 2}
    # what its rows of the period already paid counts; nothing left: nothing
    assert operator_uptime_ms({"late": p}, budget_ms=2 * p, spent_ms=2 * p) == {"late": 0}
    assert operator_uptime_ms({"a": p, "b": p}, budget_ms=2 * p, spent_ms=p) == {
        "a": p // 2,
        "b": p // 2,
    }
    # in proportion, rounded down: the sum never passes what is left
    odd = operator_uptime_ms({"a": 7, "b": 5, "c": 1}, budget_ms=10)
    assert odd == {"a": 5, "b": 3, "c": 0} and sum(odd.values()) <= 10
    assert operator_uptime_ms({}, budget_ms=0) == {}
    with pytest.raises(ValueError):
        operator_uptime_ms({"a": -1}, budget_ms=p)
    with pytest.raises(ValueError):
        operator_uptime_ms({"a": 1}, budget_ms=-1)


# written against the module's mutants (mut33, 2026-12-06)


def test_refusals_known_on_one_side_only_keep_the_credit() -> None:
    """``refusing_since`` without ``refused_at`` (or the reverse) is no run of refusals."""
    common = {"check_failed": False, "ejected": False, "refused_gateway_at": None,
              "now": 1000.0, "window_s": 60.0}  # fmt: skip
    assert serving(refusing_since=10.0, refused_at=None, **common)  # type: ignore[arg-type]
    assert serving(refusing_since=None, refused_at=999.0, **common)  # type: ignore[arg-type]


def test_decay_at_short_half_lives_small_counts_and_short_times() -> None:
    assert decay(4.0, 1.0, half_life_s=0.5) == pytest.approx(1.0)
    assert decay(4.0, 0.5, half_life_s=1.0) == pytest.approx(4.0 * 0.5**0.5)
    assert decay(1.0, 10.0, half_life_s=10.0) == pytest.approx(0.5)
    assert decay(0.5, 10.0, half_life_s=10.0) == pytest.approx(0.25)
    for half_life in (0.0, -1.0):
        with pytest.raises(ValueError) as caught:
            decay(1.0, 1.0, half_life_s=half_life)
        assert str(caught.value) == "a half-life is positive"


@pytest.mark.parametrize(
    ("answered", "refused"), [(math.nan, 1.0), (1.0, math.nan), (1.0, -1.0), (-1.0, 1.0)]
)
def test_answer_counts_not_a_number_or_negative_are_refused_in_words(
    answered: float, refused: float
) -> None:
    with pytest.raises(ValueError) as caught:
        answer_share_milli(answered, refused)
    assert str(caught.value) == "answer counts are not negative"


def test_credits_under_a_second_and_a_share_of_0() -> None:
    """A heartbeat expiry under a second is cut for the share like a longer one; a share
    of 0 (a node refusing over 1000 times per answer) earns nothing."""
    assert refusal_credit_s(0.5, None, 500) == pytest.approx(0.25)
    assert refusal_credit_s(30.0, None, 0) == 0.0
    assert refusal_credit_s(30.0, 10.0, 0) == 0.0
    assert explained_load_credit_s(0.5, None, claimed=1, known=1, capacity=4) == 0.5
    # an unexplained claim over half a second since the previous heartbeat: half of it
    half = explained_load_credit_s(30.0, 0.5, claimed=8, known=4, capacity=4, slack=0)
    assert half == pytest.approx(0.25)


def test_a_claim_of_nothing_is_explained_with_no_slack() -> None:
    assert explained_load_credit_s(30.0, 30.0, claimed=0, known=0, capacity=1) == 30.0
    assert explained_load_credit_s(30.0, 30.0, claimed=-3, known=0, capacity=1) == 30.0


def test_the_slack_given_is_the_one_used() -> None:
    """``slack`` 5 at a capacity of 10 explains a claim 5 over the known load (the default
    2 would not)."""
    assert explained_load_credit_s(30.0, 30.0, claimed=7, known=2, capacity=10, slack=5) == 30.0
    assert explained_load_credit_s(30.0, 30.0, claimed=7, known=2, capacity=10) == pytest.approx(
        30.0 * 2 / 7
    )


def test_uptime_periods_of_one_second_and_a_beat_just_into_a_period() -> None:
    assert uptime_period(None, None, 5, 1) == 5
    assert uptime_period(3.5, None, 5, 1) == 3
    # a beat half a second into period 60: its credit was earned in period 60
    assert uptime_period(60.5, None, 120, 60) == 60
    for period in (0, -60):
        with pytest.raises(ValueError) as caught:
            uptime_period(None, None, 5, period)
        assert str(caught.value) == "a period is positive"


def test_a_node_with_no_healthy_time_is_cut_with_the_others() -> None:
    assert operator_uptime_ms({"a": 0, "b": 100}, budget_ms=50) == {"a": 0, "b": 50}
    assert operator_uptime_ms({"a": 0}, budget_ms=50) == {"a": 0}
    for bad in ({"a": -1}, {}):
        kwargs = {"budget_ms": 50 if bad else -1}
        with pytest.raises(ValueError) as caught:
            operator_uptime_ms(bad, **kwargs)
        assert str(caught.value) == "a budget and healthy times are not negative"
