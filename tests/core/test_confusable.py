"""core/confusable.py: TR39 skeletons, mixed scripts, and which ids pass for catalog ids."""

from __future__ import annotations

import pytest

from LLM_Mesh.core import confusable
from LLM_Mesh.core.catalog import catalog_ids
from LLM_Mesh.core.confusable import lookalike_problem, mixed_scripts, protected_ids, skeleton


def test_skeleton_follows_uts39() -> None:
    assert skeleton("g\u0435mma") == skeleton("gemma")  # Cyrillic е → e
    assert skeleton("\u03bf") == skeleton("o")  # Greek ο → o
    assert skeleton("m") == "rn"  # m's prototype is rn
    assert skeleton("0") == skeleton("O")
    assert skeleton("1") == skeleton("l") == skeleton("I")
    assert skeleton("gemma") != skeleton("gamma")


@pytest.mark.parametrize(
    ("model_id", "imitated"),
    [
        ("g\u0435mma-3-270m", "gemma-3-270m"),
        ("gemma-3-27\u03bfm", "gemma-3-270m"),  # Greek ο for 0
        ("gernrna-3-270m", "gemma-3-270m"),
        ("gemma-3-27Om", "gemma-3-270m"),
        ("code-IIama-7b", "code-llama-7b"),
        ("starcoder-l5b", "starcoder-15b"),
        ("GEMMA-3-270M", "gemma-3-270m"),
        ("mIstral-7b", "mistral-7b"),  # case and I/l together
        ("\uff47\uff45\uff4d\uff4d\uff41-3-270m", "gemma-3-270m"),  # fullwidth (NFKC)
        ("\U0001d420\U0001d41e\U0001d426\U0001d426\U0001d41a-3-270m", "gemma-3-270m"),  # bold
        ("gemma\u20103\u2010270m", "gemma-3-270m"),  # U+2010 hyphen
    ],
)
def test_an_id_confusable_with_a_catalog_id_is_refused(model_id: str, imitated: str) -> None:
    problem = lookalike_problem(model_id)
    assert problem is not None and repr(imitated) in problem


def test_white_space_at_either_end_is_refused() -> None:
    assert lookalike_problem("gemma-3-270m ") is not None
    assert lookalike_problem("\tmy-model") is not None
    assert lookalike_problem("my model") is None


@pytest.mark.parametrize(
    "model_id",
    ["my-\u043erg/llama-3-8b", "qwen\u0440-7b", "ll\u03b1ma-3", "\u0561bc-model"],
)  # Cyrillic о, Cyrillic р, Greek α, Armenian ա, each with Latin
def test_a_mixed_script_id_is_refused(model_id: str) -> None:
    problem = lookalike_problem(model_id)
    assert problem is not None and "mixes scripts" in problem


@pytest.mark.parametrize(
    "model_id",
    [
        *catalog_ids(),
        "my-org/llama-3-8b-instruct",
        "qwen2.5-coder:7b",
        "llama3:8b",
        "gemma-3-270m-it",
        "mistral-7b-instruct-v0.3.Q4_K_M",
        "\u043c\u043e\u0434\u0435\u043b\u044c-1",  # Cyrillic only
        "\u03bc\u03bf\u03bd\u03c4\u03ad\u03bb\u03bf",  # Greek only
        "qwen-\u4e2d\u6587-7b",  # Latin + Han
        "llama-\u65e5\u672c\u8a9e\u30e2\u30c7\u30eb",  # Latin + Han + Katakana
        "llama-\ud55c\uad6d\uc5b4",  # Latin + Hangul
        "caf\u00e9-7b",  # Latin with an accent (NFD: a combining mark, Inherited)
    ],
)
def test_ordinary_ids_pass(model_id: str) -> None:
    assert lookalike_problem(model_id) is None


def test_mixed_scripts_ignores_common_and_inherited() -> None:
    assert mixed_scripts("abc-123_./:") == frozenset()
    assert mixed_scripts("a\u0301") == frozenset()
    assert mixed_scripts("a\u0430") == frozenset({"LATIN", "CYRILLIC"})


def test_the_catalog_passed_in_is_the_one_protected() -> None:
    assert lookalike_problem("acme-1", catalog=["acme-l"]) is not None
    assert lookalike_problem("acme-l", catalog=["acme-l"]) is None
    assert lookalike_problem("gernrna-3-270m", catalog=["acme-l"]) is None  # not protected
    assert set(catalog_ids()) <= set(protected_ids())


def test_the_script_lookup_is_the_packages_and_runs_once_per_distinct_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The package's own ``alias()`` is a binary search in Python (~3 us a character, 0.75 ms
    for a 256-character id: seconds for a registration's worth, found 2026-12-02); the C
    bisect over the same ranges answers the same."""
    from confusable_homoglyphs.categories import alias

    script = confusable._script_of()
    for cp in [*range(0, 0x30000, 13), 0xE0001, 0x10FFFF]:
        assert script(chr(cp)) == alias(chr(cp)), hex(cp)
    seen: list[str] = []

    def counting(ch: str) -> str:
        seen.append(ch)
        return script(ch)

    monkeypatch.setattr(confusable, "_script_of", lambda: counting)
    assert mixed_scripts("my-org/llama-3-8b" * 15) == frozenset()  # ASCII: no look-up
    assert seen == []
    assert mixed_scripts("\u0434" * 200 + "a") == frozenset({"CYRILLIC", "LATIN"})
    assert sorted(seen) == ["a", "\u0434"]


def test_the_skeleton_is_uts39s_character_by_character() -> None:
    """``str.translate`` over the table gives what mapping each code point does."""
    import random
    import unicodedata

    table = confusable._prototypes()
    rng = random.Random(7)
    chars = [*table, *map(chr, range(32, 0x3000))]
    for _ in range(5_000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(1, 12)))
        nfd = unicodedata.normalize("NFD", text)
        slow = unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in nfd))
        assert skeleton(text) == slow, text


@pytest.mark.parametrize("text", ["модель", "λάμδα", "漢字", "café"])
def test_one_script_alone_is_no_mix(text: str) -> None:
    """Cyrillic alone, Greek alone, Han alone: one script, whichever it is, is not mixed."""
    assert mixed_scripts(text) == frozenset()


@pytest.mark.parametrize("text", ["a漢あア", "a漢ㄅ", "a漢한"])
def test_latin_with_a_whole_allowed_mix_is_no_mix(text: str) -> None:
    """UTS #39 Highly Restrictive: Latin + Han + Hiragana + Katakana (or + Bopomofo, or +
    Hangul), all of a mix at once, is allowed."""
    assert mixed_scripts(text) == frozenset()


def test_a_mixed_script_id_is_refused_naming_its_scripts() -> None:
    """With the catalog passed in (the default catalog's answers are cached)."""
    assert lookalike_problem("qwen\u0440-7b", catalog=protected_ids()) == (
        "'qwen\u0440-7b' mixes scripts (Cyrillic, Latin); a model id's letters must be of one script"
    )
    assert lookalike_problem("ll\u03b1ma-\u0430", catalog=["acme-l"]) == (
        "'ll\u03b1ma-\u0430' mixes scripts (Cyrillic, Greek, Latin); "
        "a model id's letters must be of one script"
    )
