"""Sampled canary probes: a node's answer at ``temperature > 0`` against a greedy reference.

A node that answers ``temperature: 0`` honestly and serves something cheaper to every
sampled request (most users' requests) was never probed on one (docs/security.md, probes'
tell (a)). A share of probes now carries a user-like temperature (``core/canary_shape.py``)
and asks for log-probabilities as greedy probes do; :func:`compare_sampled` judges it
against the same cached greedy reference, with no extra verifier call.

Why that is sound: the log-probabilities a node reports are its model's own distribution
before any sampler (llama.cpp's engine reads the raw logits before penalties, top-k,
top-p, min-p and temperature: ``node/engines/llama_logprobs.py``; the sim engine's are a
function of the prefix), so they do not depend on the temperature. While the node's
sampled tokens are the reference's greedy ones, both answered the same prefix, so the
reference's distribution applies there; where the node's token first differs (position
``d``) the prefix is still shared, so position ``d`` is compared too. After it the texts
differ and nothing is compared (a teacher-forced reference, the prompt plus the node's
text, would cost a verifier call per probe and is not tokenization-safe: not built).

The rule, position by position up to and including ``d``:

* the node's number for the reference's chosen token must agree with the reference's
  within ``logprob_tolerance`` (at ``d`` it is read from the node's top list: the node's
  own pick differs), and on average within ``mean_tolerance``, as :func:`compare`'s;
  at ``d``, a node whose list leaves out the reference's pick must not list it lower
  than ``logprob_tolerance`` below the reference's value (its last listed number bounds
  it);
* at ``d`` the node's token must be one the reference gives a real probability: listed
  in its top candidates at no less than ``sampled_floor`` (with its number agreeing
  within ``logprob_tolerance``), or, unlisted, the mass the reference's list leaves out
  must be at least ``sampled_floor`` (and the node's number no higher than the
  reference's last listed one plus the tolerance). At temperature ≤ 1 (all a probe
  sends) sampling only sharpens: the least likely tokens' share does not grow, and
  top-k, top-p and min-p only remove tokens, so an honest node fails this less often
  than ``sampled_floor``; and it must be a draw at least that likely at the probe's own
  temperature (:func:`tempered_most`; found 2026-12-05, review31: a node running the real
  model for one token and always leaving its arg max there, to serve the rest from a
  cheaper model, passed at any temperature; a confident arg max left at 0.2 now fails);
* an answer shorter than the reference, all greedy, sampled its end (or a stop string)
  early; a longer one sampled past the reference's end: both pass (what follows is not
  the reference's);
* the text must be what the tokens up to and including ``d`` spell (as :func:`compare`).

A node serving another model, a lower quantisation or made-up numbers to sampled requests
differs at position 0 already (its number for the reference's first token), and over a
longer shared prefix on average. A streamed probe carries no log-probabilities: a sampled
one is judged by its text and the reference's numbers (``core/canary_sampled_text.py``).
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from LLM_Mesh.core.canary import (
    DEFAULT_RULE,
    Answer,
    Rule,
    Tally,
    TokenLogprob,
    Verdict,
    spelled_by,
)

__all__ = ["compare_sampled", "in_support", "tempered_most"]


def _listed(top: Sequence[tuple[str, float]], token: str) -> float | None:
    """The highest number ``top`` gives ``token`` (two ids may spell the same text)."""
    values = [v for t, v in top if t == token]
    return max(values) if values else None


def in_support(ref: TokenLogprob, token: str, value: float, rule: Rule = DEFAULT_RULE) -> bool:
    """Whether the reference position ``ref`` gives ``token`` (which the node numbered
    ``value``) a real probability: listed at ``sampled_floor`` or more, its number within
    ``logprob_tolerance``; or unlisted, the list leaving out at least ``sampled_floor`` and
    the node's number not above the list's last plus the tolerance."""
    floor = math.log(rule.sampled_floor)
    listed = _listed(ref.top, token)
    if listed is not None:
        return listed >= floor and abs(value - listed) <= rule.logprob_tolerance
    if not ref.top:
        return False
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.top)
    lowest = min(v for _, v in ref.top)
    return unlisted >= rule.sampled_floor and value <= lowest + rule.logprob_tolerance


def tempered_most(ref: TokenLogprob, token: str, temperature: float) -> float:
    """The most probability a sampler at ``temperature`` (with any top-k, top-p or min-p)
    gives ``token`` at the reference position ``ref``: ``exp(l / T)`` over the same summed
    for the listed tokens at least as likely (those a truncation keeps whenever it keeps
    ``token``), ``l`` the reference's number for it, or for an unlisted one the list's last
    (it is below that); 1 without a list."""
    if not ref.top:
        return 1.0
    listed = _listed(ref.top, token)
    mine = min(v for _, v in ref.top) if listed is None else listed
    best = max(v for _, v in ref.top)

    def weight(v: float) -> float:  # exp(v / T), scaled by the best's (no underflow)
        return math.exp((v - best) / temperature)

    above = sum(weight(v) for t, v in ref.top if v >= mine and t != token)
    return weight(mine) / (above + weight(mine))


def compare_sampled(
    reference: Answer,
    answer: Answer,
    rule: Rule = DEFAULT_RULE,
    stops: Sequence[str] = (),
    *,
    temperature: float = 1.0,
) -> Verdict:
    """The verdict on a sampled ``answer`` against the greedy ``reference`` (see the module
    docstring); ``sampled_match`` or ``sampled_diverged`` (ok), else as :func:`compare`'s
    failures, and ``sampled_token`` (the node's token outside the reference's support, or
    one a sampler at the probe's ``temperature`` draws less often than ``sampled_floor``:
    :func:`tempered_most`)."""
    if not temperature > 0:
        raise ValueError("a sampled probe's temperature is above 0")
    if reference.tokens and not answer.tokens:
        return Verdict(False, "no_logprobs", 0)
    tally = Tally()
    deltas, verdict = tally.deltas, tally.verdict
    shared = min(len(reference.tokens), len(answer.tokens))
    for i in range(shared):
        ref, got = reference.tokens[i], answer.tokens[i]
        if not (math.isfinite(got.logprob) and got.logprob <= 1e-6):
            return verdict(False, "logprob", i)
        if got.token == ref.token:
            deltas.append(abs(got.logprob - ref.logprob))
            if deltas[-1] > rule.logprob_tolerance:
                return verdict(False, "logprob", i)
            continue
        tally.diverged = i  # the last position with the reference's prefix
        theirs = _listed(got.top, ref.token)
        if theirs is None:  # unlisted: the node's last listed number bounds it from above
            if not got.top or min(v for _, v in got.top) < ref.logprob - rule.logprob_tolerance:
                return verdict(False, "token", i)
        else:
            deltas.append(abs(theirs - ref.logprob))
            if deltas[-1] > rule.logprob_tolerance:
                return verdict(False, "logprob", i)
        if not in_support(ref, got.token, got.logprob, rule):
            return verdict(False, "sampled_token", i)
        if tempered_most(ref, got.token, temperature) < rule.sampled_floor:
            return verdict(False, "sampled_token", i)
        break
    if tally.diverged is None and len(answer.tokens) != len(reference.tokens):
        tally.diverged = shared  # it sampled an end (or went on) where the reference did not
    diverged = tally.diverged
    if tally.off_on_average(rule):
        return verdict(False, "logprob_mean", None)
    upto = len(answer.tokens) if diverged is None else min(diverged + 1, len(answer.tokens))
    if not spelled_by(answer, upto, stops):
        return verdict(False, "text", None)
    return verdict(True, "sampled_match" if diverged is None else "sampled_diverged", diverged)
