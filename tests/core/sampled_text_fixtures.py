"""References for the tests of a sampled probe's text (``test_canary_sampled_text*.py``): a
vocabulary's distributions, a reference answer drawn from one, a confident position, and a
reference made of listed positions."""

from __future__ import annotations

import math

from LLM_Mesh.core.canary import Answer, TokenLogprob

# a toy model: each context's distribution over a vocabulary whose tokens begin each other
VOCAB = ("The", "Th", "e", "There", " cat", " dog", "re", " is")


def distribution(context: tuple[str, ...]) -> dict[str, float]:
    """The toy model's next-token probabilities after ``context`` (tokens)."""
    table: dict[tuple[str, ...], dict[str, float]] = {
        (): {"The": 0.9, "There": 0.05, "Th": 0.03, " cat": 0.01, " dog": 0.01},
        ("The",): {" cat": 0.998, " dog": 0.001, " is": 0.001},
        ("There",): {" is": 0.95, " cat": 0.05},
        ("Th",): {"e": 0.5, "re": 0.5},
        ("Th", "e"): {" dog": 0.9, " cat": 0.1},
    }
    if context in table:
        return table[context]
    return {t: 1.0 / len(VOCAB) for t in VOCAB}  # elsewhere: flat


def sampled_reference(length: int) -> Answer:
    """The greedy path with each position's top 3 (as the verifier's reference)."""
    out: list[TokenLogprob] = []
    context: tuple[str, ...] = ()
    for _ in range(length):
        ranked = sorted(distribution(context).items(), key=lambda kv: -kv[1])
        top = tuple((t, math.log(p)) for t, p in ranked[:3])
        out.append(TokenLogprob(top[0][0], top[0][1], top))
        context += (top[0][0],)
    return Answer("".join(t.token for t in out), tuple(out))


def confident() -> Answer:
    top = (("Paris", math.log(0.97)), (" Lyon", math.log(0.02)), (" Nice", math.log(0.005)))
    return Answer("Paris", (TokenLogprob("Paris", top[0][1], top),))
