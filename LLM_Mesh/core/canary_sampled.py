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
  than ``sampled_floor``;
* an answer shorter than the reference, all greedy, sampled its end (or a stop string)
  early; a longer one sampled past the reference's end: both pass (what follows is not
  the reference's);
* the text must be what the tokens up to and including ``d`` spell (as :func:`compare`).

A node serving another model, a lower quantisation or made-up numbers to sampled requests
differs at position 0 already (its number for the reference's first token), and over a
longer shared prefix on average. A streamed probe carries no log-probabilities, so a
sampled probe is never streamed (docs/security.md, what remains of tell (a)).
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

__all__ = ["compare_sampled", "in_support"]


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


def compare_sampled(
    reference: Answer, answer: Answer, rule: Rule = DEFAULT_RULE, stops: Sequence[str] = ()
) -> Verdict:
    """The verdict on a sampled ``answer`` against the greedy ``reference`` (see the module
    docstring); ``sampled_match`` or ``sampled_diverged`` (ok), else as :func:`compare`'s
    failures, and ``sampled_token`` (the node's token outside the reference's support)."""
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
