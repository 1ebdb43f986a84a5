"""A sampled probe's text cut by a stop: where a whitespace stop, a chat template's stops and a
stop with other characters may cut, a stop the reference spells only in part, and the tokens a
text cut by a stop earns."""

from __future__ import annotations

import math
import random

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_departures import Evidence, probe_evidence
from LLM_Mesh.core.canary_sampled_text import (
    text_evidence,
)
from tests.core.sampled_text_fixtures import sampled_reference


def test_a_whitespace_stop_may_cut_only_where_the_reference_has_that_whitespace() -> None:
    """Found 2026-12-06, review33b: a stop of only whitespace (``"\\n\\n"``, ``"\\n\\n\\n"``:
    a quarter of the probes that send a stop) was taken to have cut an early end anywhere,
    so a liar's empty answer to such a probe was credited every position (``K_n``, about -5
    on 32 tokens) and offset a lie. It may have cut a text only where the reference's own
    text holds it between the last character the text spelled and the next."""
    ref = sampled_reference(2)  # "The cat": no "\n\n" anywhere
    full = text_evidence(ref, "The cat", 0.7).log_ratio
    assert text_evidence(ref, "", 0.7, stops=("\n\n",)) == Evidence(0.0, 0, None)
    first = text_evidence(ref, "The", 0.7)
    assert text_evidence(ref, "The", 0.7, stops=("\n\n", "\n\n\n")) == first
    # where the reference has it there, it may have: every position, as before
    para = Answer("", (ref.tokens[0], TokenLogprob(".\n\n", -0.1, ((".\n\n", -0.1),)),
                       TokenLogprob("Next", -0.1, (("Next", -0.1),))))  # fmt: skip
    spelled = text_evidence(para, "The.", 0.7)
    assert spelled.positions == 2
    assert text_evidence(para, "The.", 0.7, stops=("\n\n",)).positions == 3
    assert text_evidence(para, "The.\n", 0.7, stops=("\n\n",)).positions == 3
    assert text_evidence(para, "The.", 0.7, stops=("\n\n\n",)) == spelled  # not there
    assert text_evidence(para, "Th", 0.7, stops=("\n\n",)).positions == 0  # inside "The"
    split = Answer("", (ref.tokens[0], TokenLogprob("\n", -0.1, (("\n", -0.1),)),
                        TokenLogprob(" \nNext", -0.1, ((" \nNext", -0.1),))))  # fmt: skip
    assert text_evidence(split, "The", 0.7, stops=("\n \n",)).positions == 3  # across tokens
    assert text_evidence(split, "The", 0.7, stops=("\n\n",)).positions == 2
    assert full < first.log_ratio


def test_a_chat_templates_stops_may_cut_only_a_chat_probes_text() -> None:
    """Found 2026-12-06, review33b: a chat template's stop strings (``TURN_STOPS``) were
    taken to have cut a completion probe's text too, where no engine applies them (a
    completion is the client's text, its stops the client's alone), so a text that ended
    before a reference token ``"["``, ``"<"`` or ``"\\nUser"`` (code, markup) earned every
    position. A chat probe's still may (``chat``, the default)."""
    ref = sampled_reference(1)
    turn = Answer("", (ref.tokens[0], TokenLogprob("\nUser", -0.1, (("\nUser", -0.1),))))
    assert text_evidence(turn, "The", 0.7).positions == 2  # a chat probe
    assert text_evidence(turn, "The", 0.7, chat=False).positions == 1
    assert text_evidence(turn, "The", 0.7, stops=("\nUser:",), chat=False).positions == 2


def test_a_stop_with_other_characters_may_cut_only_where_the_reference_spells_it() -> None:
    """Found 2026-12-06, canary34: a stop string with other characters than whitespace was
    matched with whitespace removed and against the rest of the reference's token ``m``
    alone, so a liar's text ended right before a reference token ``" Human"`` (the probe's
    ``"\\nHuman:"``), ``"Question"`` (``"Q:"``), or, on any chat probe, ``" ["`` or
    ``" <"`` (a chat template's ``"[INST]"``, ``"<|im_end|>"``) earned every position
    (``K_n``, a credit that offsets a lie) where no engine could have cut it. Now the stop,
    whitespace kept, must begin the reference's own text there (or be begun by it)."""
    ref = sampled_reference(1)
    pos = TokenLogprob(ref.tokens[0].token, ref.tokens[0].logprob, ref.tokens[0].top)

    def after(*tokens: str) -> Answer:
        return Answer("", (pos, *(TokenLogprob(t, -0.01, ((t, -0.01),)) for t in tokens)))

    for tokens, stops, kept in (
        ((" Human", " rights"), ("\nHuman:", "\nAI:"), 1),  # no newline before it
        (("Question", ":"), ("Q:",), 1),  # "Q" then not ":"
        # code on a chat probe: "[INST]" may have cut it only if the node drew " [" and then
        # not the reference's "1" (review34: an honest node may): K of " [" too, not K_n
        ((" [", "1", "]"), (), 2),
        ((" <", "div", ">"), (), 2),  # markup: nor "<|im_end|>", "<end_of_turn>" past " <"
    ):
        liar = text_evidence(after(*tokens), "The", 0.7, stops=stops)  # ended before m
        assert liar.positions == kept, (tokens, liar)  # not K_n: every position
    # where the reference spells the stop there, an honest text cut by it: every position
    for tokens, stops in (
        (("\n", "Human", ":"), ("\nHuman:",)),
        ((" \nHuman", ":"), ("\nHuman:",)),  # the text kept the space
        (("Q", ":"), ("Q:",)),
        (("\nUser", ":"), ()),  # a chat template's turn
        (("<|im_end|>",), ()),
        (("\nHum",), ("\nHuman:",)),  # the reference, cut to the probe's length, ends first
    ):
        kept = text_evidence(after(*tokens), "The", 0.7, stops=stops)
        assert kept.positions == 1 + len(tokens), (tokens, kept)


def test_a_stop_that_the_reference_spells_only_in_part_charges_no_more_than_the_honest_tokens() -> (
    None
):
    """Found 2026-12-06 (review34): canary34 matched a stop string against the reference's
    text to its end, past token ``m`` (where the text ended), so a stop that agrees with
    the reference through ``m`` and then not (``"[INST]"`` against ``" [1]"``) could not have
    cut it, and the text earned ``K_m``. But an honest node whose tokens kept the reference's
    through ``m`` drew its own after it: here ``" ["`` then ``"INST"``, ``"]"`` where the
    reference has ``"1"`` (a near tie), the chat template's ``"[INST]"`` cut its text to
    ``"The "``, and its true tokens earn ``K_2 + D_2`` (``D_2`` ~0 at the near tie), less
    than ``K_1`` by the keeping factor of ``" ["`` (~1.4): more evidence than its tokens, the
    false-alarm bound's premise broken. The stop may have cut it up to the token where the
    reference's text leaves the stop (``"1"``): ``K_2`` is charged, no more than the tokens."""
    sure = -0.001
    ref = Answer(
        "The [1]",
        (
            TokenLogprob("The", sure, (("The", sure),)),
            TokenLogprob(" [", sure, ((" [", sure),)),
            TokenLogprob("1", math.log(0.35), (("1", math.log(0.35)), ("INST", math.log(0.33)))),
            TokenLogprob("]", sure, (("]", sure),)),
        ),
    )
    honest = Answer(
        "The [INST]",
        tuple(TokenLogprob(t, sure, ()) for t in ("The", " [", "INST", "]")),
    )
    for t in (0.5, 0.7, 1.0):
        true = probe_evidence(ref, honest, t).log_ratio
        for text in ("The", "The "):  # the engine cut where "[INST]" begins
            charged = text_evidence(ref, text, t)  # a chat probe: TURN_STOPS
            assert charged.log_ratio <= true + 1e-12, (t, text, charged, true)
            assert charged.positions == 2, charged  # K_2: not K_n, the stop leaves at "1"
        # a completion probe has no template stop: nothing cut it, K_m as before
        assert text_evidence(ref, "The", t, chat=False).positions == 1


def test_a_text_cut_by_a_stop_earns_at_most_its_tokens_on_random_paths() -> None:
    """The bound's premise for texts an engine cut at a stop string (review34): random
    references over tokens that spell stops in part, random honest paths that keep the
    reference's for a while and then draw their own, the text cut where a stop first
    appears (the engine generated the stop's tokens, then cut): never more evidence than
    the tokens the node drew (``probe_evidence``)."""
    vocab = (" [", "[", "INST", "]", "1", " Human", "\n", "Hum", "an", ":", "Q", "uestion",
             "The", " cat", " ")  # fmt: skip
    stops = ("[INST]", "\nHuman:", "Q:", "an:", "\n\n")
    rng = random.Random(34)
    for _ in range(4000):
        ref_tokens = [rng.choice(vocab) for _ in range(rng.randint(1, 6))]
        ref = Answer(
            "".join(ref_tokens),
            tuple(
                TokenLogprob(t, lp, ((t, lp),))
                for t in ref_tokens
                for lp in (math.log(rng.choice((0.999, 0.9, 0.5, 0.35))),)
            ),
        )
        keep = rng.randint(0, len(ref_tokens))
        drawn = ref_tokens[:keep] + [rng.choice(vocab) for _ in range(rng.randint(0, 5))]
        text, used = "".join(drawn), drawn
        asked = tuple(s for s in stops if rng.random() < 0.5)
        cuts = [(text.find(s), s) for s in asked if s in text]
        if cuts:
            at, s = min(cuts)
            text = text[:at]  # the tokens through the one that completed the stop were drawn
            upto, spelled = 0, 0
            while spelled < at + len(s):
                spelled += len(drawn[upto])
                upto += 1
            used = drawn[:upto]
        for t in (0.5, 1.0):
            got = Answer(text, tuple(TokenLogprob(x, -0.1, ()) for x in used))
            true = probe_evidence(ref, got, t).log_ratio
            mine = text_evidence(ref, text, t, stops=asked, chat=False).log_ratio
            assert mine <= true + 1e-9, (ref_tokens, drawn, asked, text, mine, true)
