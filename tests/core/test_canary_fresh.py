"""Canary prompts made fresh per probe (``core/canary_fresh.py``): valid, bounded, never
the same twice in practice (each one's chance measured, not assumed), the same for a
seed, varied in structure, code and prose alike."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from LLM_Mesh.core import canary_fresh
from LLM_Mesh.core.canary_fresh import (
    DEFAULT_FRESH_SHARE,
    FAMILIES,
    MAX_CHARS,
    MIN_BITS,
    WORDS,
    FreshTurns,
    camel,
    fresh_prompt,
    number,
    parse_fresh_share,
    pascal,
    snake,
    third,
    typed,
    words,
)
from LLM_Mesh.core.canary_prompts import MAX_PROMPT_CHARS, PROMPTS, parse_pool
from LLM_Mesh.core.canary_shape import Shape, render

seeds = st.integers(min_value=0, max_value=2**64 - 1)


class Counting(random.Random):
    """An RNG that adds up log2(n) for every uniform draw among n (``choice``, ``randint``,
    ``randrange``, ``shuffle``, ``sample`` all draw through ``_randbelow``): the path that
    made a prompt had a chance of at most 2^-bits (a ``random()`` branch only lowers it)."""

    bits = 0.0

    def _randbelow(self, n: int) -> int:  # type: ignore[override]
        self.bits += math.log2(n)
        return super()._randbelow(n)


@given(seeds)
def test_a_fresh_prompt_is_a_valid_bounded_prompt(seed: int) -> None:
    prompt = fresh_prompt(random.Random(seed))
    assert prompt.strip() and len(prompt) <= MAX_CHARS <= MAX_PROMPT_CHARS
    assert parse_pool(json.dumps([prompt])) == (prompt,)  # what an admin's prompt must be
    assert all(c.isprintable() or c in "\n\t" for c in prompt), repr(prompt)
    body = json.loads(render(Shape(), "m", prompt))
    assert body["prompt"] == prompt


@given(seeds)
def test_the_same_seed_gives_the_same_prompt(seed: int) -> None:
    assert fresh_prompt(random.Random(seed)) == fresh_prompt(random.Random(seed))


@given(seeds, st.sampled_from([make for make, _ in FAMILIES]))
def test_every_path_has_at_least_min_bits_of_chance(seed: int, make: object) -> None:
    """Each family's path to its prompt had a chance below 2^-(MIN_BITS + 4): a margin of 16
    paths spelling the same text (a literal that two kinds of number can write) keeps any
    one prompt's chance below 2^-MIN_BITS."""
    rng = Counting(seed)
    assert callable(make)
    make(rng)
    assert rng.bits >= MIN_BITS + 4, (make, rng.bits)


def test_many_draws_are_all_distinct_and_none_is_a_pool_prompt() -> None:
    rng = random.Random(2026)
    drawn = [fresh_prompt(rng) for _ in range(20_000)]
    assert len(set(drawn)) == len(drawn)
    assert not set(drawn) & set(PROMPTS)
    other = random.Random(2027)
    assert not {fresh_prompt(other) for _ in range(2_000)} & set(drawn)


def test_the_structure_varies_not_only_the_slots() -> None:
    """No fixed template: every family is drawn, no opening or first line marks a large
    share of the prompts, and code and prose both come."""
    rng = random.Random(7)
    drawn = [fresh_prompt(rng) for _ in range(4_000)]
    opening = Counter(p[:6] for p in drawn)
    first_line = Counter(p.split("\n")[0][:12] for p in drawn)
    assert opening.most_common(1)[0][1] < 0.25 * len(drawn), opening.most_common(3)
    assert first_line.most_common(1)[0][1] < 0.1 * len(drawn), first_line.most_common(3)
    assert len(first_line) > 0.3 * len(drawn)
    prose = [p for p in drawn if not any(c in p for c in "(){}=;#[]")]
    assert 0.05 * len(drawn) < len(prose) < 0.5 * len(drawn)
    rng = Counting(1)
    made = {make.__name__ for make, _ in FAMILIES if make(rng)}
    assert len(made) == len(FAMILIES) >= 10


def test_the_families_come_by_their_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FAMILIES``' weights are what is drawn: code more often than prose, Python functions
    most (6 of 26), a shell script least (1 of 26)."""
    made: Counter[str] = Counter()

    def counted(make: Callable[[random.Random], str]) -> Callable[[random.Random], str]:
        def counting(rng: random.Random) -> str:
            made[make.__name__] += 1
            return make(rng)

        return counting

    monkeypatch.setattr(canary_fresh, "FAMILIES", tuple((counted(m), w) for m, w in FAMILIES))
    rng, n = random.Random(26), 5_200
    for _ in range(n):
        fresh_prompt(rng)
    total = sum(w for _, w in FAMILIES)
    for make, weight in FAMILIES:
        expected = n * weight / total  # 200 a unit of weight; 4 sigma at most about 65
        assert abs(made[make.__name__] - expected) < 4 * math.sqrt(expected) + 5, (make, made)


def test_no_prompt_outside_python_spells_none() -> None:
    """A part left unset would print as ``None`` (in a Go comment, a JSON value, an e-mail's
    date): a prompt no user writes. Only Python's own ``None`` may come."""
    python = {"py_function", "py_class", "py_test"}
    for make, _ in FAMILIES:
        if make.__name__ in python:
            continue
        rng = random.Random(make.__name__)
        for _ in range(300):
            prompt = make(rng)
            assert not re.search(r"\bNone\b", prompt), (make.__name__, prompt)


def test_each_language_of_the_typed_family_comes() -> None:
    """``typed`` writes C, Go, Rust and Java, each about a quarter of its prompts (a branch
    never taken would leave a language no probe is ever written in)."""
    rng = random.Random(36)
    marks = {
        "C": "#include <stdio.h>",
        "Go": "\nfunc ",
        "Rust": "\npub fn ",
        "Java": "public class ",
    }
    made = [typed(rng) for _ in range(800)]
    seen = Counter(next(lang for lang, mark in marks.items() if mark in p) for p in made)
    assert set(seen) == set(marks), seen
    assert all(150 < n < 250 for n in seen.values()), seen


def test_the_word_list_is_256_distinct_words_and_verbs_agree() -> None:
    assert len(WORDS) == 256 == len(set(WORDS))
    assert all(w.isascii() and w.isalpha() and w.islower() for w in WORDS)
    assert [third(v) for v in ("apply", "fetch", "process", "sort", "fix", "play", "destroy", "push")] == [
        "applies", "fetches", "processes", "sorts", "fixes", "plays", "destroys", "pushes"
    ]  # fmt: skip


def test_identifiers_are_two_or_three_words_in_their_language_s_style() -> None:
    """snake_case, camelCase, PascalCase of 2 or 3 words of ``WORDS`` (a verb first only
    when asked for): the naming styles users write."""
    rng = random.Random(3)
    assert {len(words(rng)) for _ in range(200)} == {2, 3}
    known = set(WORDS)
    for _ in range(200):
        parts = snake(rng).split("_")
        assert 2 <= len(parts) <= 3 and set(parts) <= known, parts
        assert snake(rng, verb=True).split("_")[0] in canary_fresh.VERBS
        name = camel(rng)
        assert name[0].islower() and name.isalpha()
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+){1,2}", name), name
        assert re.fullmatch(r"(?:[A-Z][a-z]+){2,3}", pascal(rng))
    plain = [snake(rng).split("_")[0] for _ in range(200)]  # WORDS alone, a verb only by chance
    assert sum(head in canary_fresh.VERBS for head in plain) < 60


def test_a_literal_is_one_of_four_kinds_about_a_quarter_each() -> None:
    """``number``: a small integer, a round hundred, a price-like float with two decimals,
    a large integer, each about a quarter of the literals (a multiple of 100 that is small
    or large, 1 in 100 of those, is counted round)."""
    rng = random.Random(4)
    kinds: Counter[str] = Counter()
    for _ in range(2_000):
        text = number(rng)
        if "." in text:
            assert re.fullmatch(r"\d+\.\d\d", text) and 0.01 <= float(text) <= 99.99, text
            kinds["float"] += 1
            continue
        assert re.fullmatch(r"[1-9]\d*", text), text
        value = int(text)
        assert 2 <= value <= 9_999_999, text
        kind = "round" if value % 100 == 0 else "small" if value <= 4095 else "large"
        assert kind != "large" or value >= 10_000, text
        kinds[kind] += 1
    assert all(430 < kinds[k] < 600 for k in ("float", "small", "large", "round")), kinds


def test_the_share_is_read_from_0_to_1() -> None:
    assert parse_fresh_share(None) == parse_fresh_share("  ") == DEFAULT_FRESH_SHARE
    assert parse_fresh_share("0") == 0.0 and parse_fresh_share("1") == 1.0
    for bad in ("1.01", "-0.5", "nan", "x"):
        with pytest.raises(ValueError, match="LLM_MESH_CANARY_FRESH_SHARE must be"):
            parse_fresh_share(bad)


def test_fresh_turns_make_a_new_prompt_at_each_read() -> None:
    """A fresh probe's earlier chat turns (review36): each drawn one new, none the pool's."""
    rng = random.Random(5)
    turns = FreshTurns(rng)
    drawn = [rng.choice(turns) for _ in range(200)]
    assert len(set(drawn)) == 200 and not set(drawn) & set(PROMPTS)
    with pytest.raises(TypeError, match="one item at a time"):  # refused, not a slice's misuse
        turns[0:2]
    with pytest.raises(IndexError):
        turns[len(turns)]
    with pytest.raises(IndexError):
        turns[-len(turns) - 1]
    assert turns[-len(turns)] != turns[len(turns) - 1]  # the first and last items, both new
