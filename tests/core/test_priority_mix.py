"""The keyed share of a model's requests at a gateway process, and the class a probe carries
drawn from it (core/priority_mix.py)."""

from __future__ import annotations

import random

from LLM_Mesh.core.priority_mix import MAX_MODELS, WINDOW, TrafficMix, probe_keyed


def test_no_requests_seen_no_keyed_share() -> None:
    assert TrafficMix().keyed_share("m") == 0.0


def test_the_share_counts_each_model_apart() -> None:
    mix = TrafficMix()
    for i in range(100):
        mix.note("m", i % 4 == 0)
        mix.note("other", True)
    assert mix.keyed_share("m") == 0.25
    assert mix.keyed_share("other") == 1.0


def test_the_share_follows_the_recent_requests() -> None:
    mix = TrafficMix()
    for _ in range(10 * WINDOW):
        mix.note("m", True)
    for _ in range(3 * WINDOW):
        mix.note("m", False)
    assert mix.keyed_share("m") < 0.1  # the keyed past is halved away


def test_the_models_kept_are_bounded() -> None:
    mix = TrafficMix()
    for i in range(MAX_MODELS + 5):
        mix.note(f"m{i}", True)
    assert len(mix._counts) <= MAX_MODELS


def test_probes_carry_the_keyed_class_as_often_as_requests_do() -> None:
    rng = random.Random(7)
    for share in (0.0, 0.1, 0.5, 0.9, 1.0):
        keyed = sum(probe_keyed(share, rng.random()) for _ in range(20_000))
        assert abs(keyed / 20_000 - share) < 0.015, share


def test_the_named_share_is_of_the_anonymous_requests_only() -> None:
    mix = TrafficMix()
    assert mix.named_share("m") == 0.0
    for i in range(100):
        mix.note("m", False, i % 4 == 0)
        mix.note("m", True, True)  # a keyed request's id: paid by its key, not the pool
    assert mix.named_share("m") == 0.25
    assert mix.keyed_share("m") == 0.5


def test_the_named_share_follows_the_recent_requests() -> None:
    mix = TrafficMix()
    for _ in range(10 * WINDOW):
        mix.note("m", False, True)
    for _ in range(3 * WINDOW):
        mix.note("m", False, False)
    assert mix.named_share("m") < 0.1


def test_the_keyed_named_share_is_of_the_keyed_requests_only() -> None:
    """A keyed probe is paid from a user: account (registry/canary.py): the ids it carries
    must match the keyed requests', which the anonymous ones' share does not tell."""
    mix = TrafficMix()
    assert mix.named_share("m", keyed=True) == 0.0
    for i in range(100):
        mix.note("m", True, i % 5 == 0)
        mix.note("m", False, True)
    assert mix.named_share("m", keyed=True) == 0.2
    assert mix.named_share("m") == 1.0


def test_one_request_is_a_share_and_a_request_is_unnamed_unless_said() -> None:
    mix = TrafficMix()
    mix.note("m", keyed=True)
    assert mix.keyed_share("m") == 1.0
    assert mix.named_share("m") == 0.0  # no anonymous request: none of them named
    assert mix.named_share("m", keyed=True) == 0.0  # not named: the default
    mix.note("a", keyed=False, named=True)
    assert mix.named_share("a") == 1.0 and mix.named_share("a", keyed=True) == 0.0


def test_the_counts_halve_when_the_window_is_reached() -> None:
    """At ``WINDOW`` requests each count is halved, whole (1023 keyed of 1024: 511 of 512)."""
    mix = TrafficMix()
    for _ in range(WINDOW - 1):
        mix.note("m", keyed=True)
    assert mix.keyed_share("m") == 1.0
    mix.note("m", keyed=False)
    assert mix.keyed_share("m") == 511 / 512
    mix.note("m", keyed=False)
    assert mix.keyed_share("m") == 511 / 513


def test_the_model_past_the_bound_starts_the_table_again() -> None:
    mix = TrafficMix()
    for i in range(MAX_MODELS):
        mix.note(f"m{i}", keyed=True)
    assert mix.keyed_share("m0") == 1.0  # MAX_MODELS models kept
    mix.note("one more", keyed=True)
    assert mix.keyed_share("m0") == 0.0 and mix.keyed_share("one more") == 1.0


def test_a_draw_equal_to_the_share_is_not_keyed() -> None:
    assert not probe_keyed(0.25, 0.25)
    assert probe_keyed(0.25, 0.2499)
