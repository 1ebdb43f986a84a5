"""Sampled probes without log-probabilities: a text judged by the reference's numbers.

``core/canary_sampled.py`` judges a sampled answer with the node's own log-probabilities; a
stream carries none, so a streamed probe was never sampled, and a node lying only to
streamed sampled requests (most users' requests) was never probed on one (docs/security.md,
probes' tell (a), found 2026-12-05, closed 2026-12-05, ``probe32``); nor was a non-streamed
probe asking no ``logprobs`` (found 2026-12-06, closed 2026-12-06, ``probe33``: every
non-streamed probe asked for them; it is judged here as a stream). Here the text alone is
judged against the cached greedy reference, whose every position carries its top
candidates (``canary_shape.REFERENCE_TOP``): those numbers, not the node's, say how likely
each honest draw is.

The text, whitespace ignored (a detokeniser's spacing is no lie, as ``canary.compare_text``),
is walked along the reference's tokens: it keeps position ``i`` while it goes on with what
the reference's token spells; its *textual departure* ``d`` is the first position where it
neither goes on with it nor ends inside it (:func:`text_departure`). Which tokens the node
drew is not seen, so:

* a textual departure at ``d`` means the node's own first departure ``j*`` (its first token
  that is not the reference's) is at some ``j ≤ d``: before ``j*`` its tokens are the
  reference's, so its text goes on with theirs up to ``j*``. It may be earlier: a token
  that spells a beginning of the reference's (``"Th"`` for ``"The"``), the same text, or
  more (``"There"`` for ``"The"``) leaves the path with the text still on it;
* so a probe's evidence (``canary_departures``'s factors: ``K_j`` the sum of the keeping
  factors before ``j``, ``D_j`` the leaving factor at ``j``) is the least the node's tokens
  could have earned, ``min over j ≤ d of K_j + D_j`` (:func:`text_evidence`); with no
  departure seen (the text ran along the reference, or reached a token holding part of a
  character, ``"\\ufffd"``) it is ``K_n`` over every position, the least of all (each
  ``D ≥ 0``, each keeping factor ``≤ 0``);
* a text that ended inside the reference's token ``m`` (or right before it: a sampled end
  of text, the node's default length, a liar's short or empty answer) earns ``K_m``, the
  keeping factors of the positions before ``m`` alone (before 2026-12-06, ``probe33``:
  ``K_n``, every position credited, so a liar's empty answer lowered its CUSUM), unless a
  stop string may have cut it there: the probe's ``stop`` strings or, on a chat probe, a
  chat template's (``core.prompt.TURN_STOPS``; a completion's text is cut by its client's
  stops alone, ``review33b``), whitespace kept, agrees with the reference's own text from
  the whitespace after the last character the text spelled (before 2026-12-06,
  ``review33b``, a stop of only whitespace anywhere; ``canary34``, one with other
  characters with whitespace removed, against the rest of token ``m`` alone), then ``K_j``
  for ``j`` the token where the reference's text first differs from the stop (``K_n``
  where it never does: ``_cut_end``; found 2026-12-06, ``review34``, canary34 charged
  ``K_m`` there, more than an honest node's tokens that kept the reference's through
  ``m``, spelled the stop and were cut, earn). Sound: an
  engine's text is every token's text it generated but where a stop
  string cuts it (or a token holds part of a character: undecided, above), so a node whose
  tokens kept the reference's through ``m`` would have spelled the rest of ``m``; its
  first departure is at some ``j ≤ m`` (a token that is not the reference's, or its end:
  ``probe_evidence`` counts an end as nothing) and earns ``K_j + D_j ≥ K_j ≥ K_m``, or
  ``K_j`` for an end at ``j``;
* each is at most the evidence the
  node's true tokens give (``canary_departures.probe_evidence``, whose expectation under an
  honest sampler is at most 1 a step), so the CUSUMs' bound holds as it is: an honest node
  is flagged with chance at most ``2n · 10⁻¹²`` over its first ``n`` counted sampled probes
  of a model (the pair's tally and its kind's, ``canary_departures``), streamed or not,
  under the same assumptions (its numbers within ``e^±0.2``
  of the reference's, each draw fresh: ``canary_departures.counted``);
* one probe alone (:func:`compare_sampled_text`) fails only where the textual departure at
  ``d`` is a draw the reference makes implausible at the probe's temperature (every token
  it lists whose text agrees with what the node wrote there below ``sampled_floor`` by
  ``canary_sampled.tempered_most``, and the mass it leaves unlisted below it too) *and*
  every earlier position's chance of being left at all (``leave_bound``) is below it too:
  an honest node fails it with chance at most ``(d + 1 + k) · sampled_floor``.

What it does not see: the node's numbers (none are sent), so a node serving another model
that happens to follow the reference's greedy path passes where the non-streamed rule
compares its numbers; a text that stops early is never evidence against the node (its
end may be an honest draw of the end of text) and, where a stop string may have cut it,
counts as keeping every position; a liar whose first leaving token spells more
than the reference's (``"There"`` for ``"The"``) is credited with the least its text
allows. Pure: no I/O.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from LLM_Mesh.core.canary import DEFAULT_RULE, REPLACEMENT, Answer, Rule, TokenLogprob, Verdict
from LLM_Mesh.core.canary_departures import DEFAULT_TEST, DepartureTest, Evidence, leave_bound
from LLM_Mesh.core.canary_sampled import tempered_most
from LLM_Mesh.core.prompt import TURN_STOPS

__all__ = ["TextDeparture", "compare_sampled_text", "text_departure", "text_evidence"]


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _comparable(a: str, b: str) -> bool:
    """Whether one of ``a`` and ``b`` begins the other."""
    return a.startswith(b) or b.startswith(a)


def _same_start(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` begin with alike."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


@dataclass(frozen=True)
class TextDeparture:
    """Where a text leaves the reference's path: ``at`` its textual departure (``None``:
    none seen) and ``rest`` what the text goes on with there, whitespace removed; or, where
    it ended inside the reference, ``ended`` the position whose token it ended inside (or
    right before) and ``unspelled`` what that token spells past the text's end."""

    at: int | None
    rest: str = ""
    ended: int | None = None
    unspelled: str = ""
    after: str = ""
    """Where it ended: the reference's own text (whitespace kept) after the last character
    the text spelled, to the reference's end (where a stop string may have cut it)."""

    @property
    def gap(self) -> str:
        """The whitespace the reference holds between the last character the text spelled
        and the next."""
        return self.after[: len(self.after) - len(self.after.lstrip())]


def text_departure(reference: Answer, text: str) -> TextDeparture:
    """The first position whose reference token ``text`` (whitespace ignored) neither goes
    on with nor ends inside; none where it keeps them all, ends inside one, or reaches one
    holding part of a character (undecided)."""
    got = _squeeze(text)
    at = 0
    for i, t in enumerate(reference.tokens):
        if REPLACEMENT in t.token:
            return TextDeparture(None)
        piece, rest = _squeeze(t.token), got[at:]
        if rest.startswith(piece):
            at += len(piece)
            continue
        if piece.startswith(rest):  # it ended inside this token (or right before it)
            after = _after("".join(t.token for t in reference.tokens), len(got))
            return TextDeparture(None, ended=i, unspelled=piece[len(rest) :], after=after)
        return TextDeparture(i, rest)
    return TextDeparture(None)


def _factors(ref: TokenLogprob, temperature: float, test: DepartureTest) -> tuple[float, float]:
    """The log factors of keeping and of leaving ``ref`` (``canary_departures``'s)."""
    q = max(test.floor, leave_bound(ref, temperature, test.margin))
    r = max(q, test.alternative)
    keep = math.log((1.0 - r) / (1.0 - q)) if r > q else 0.0
    return keep, math.log(r / q)


def _after(raw: str, spelled: int) -> str:
    """``raw`` after its first ``spelled`` characters that are not whitespace."""
    if spelled <= 0:
        return raw
    seen = 0
    for k, c in enumerate(raw):
        if not c.isspace():
            seen += 1
            if seen == spelled:
                return raw[k + 1 :]
    return ""


def _cut_end(reference: Answer, dep: TextDeparture, stops: Sequence[str]) -> int:
    """How many positions an honest text that ended inside the reference's token ``m``
    (``dep.ended``) may have kept, cut by a stop string (``stops``: the probe's, a chat
    probe's template's too): ``m`` where none may have cut it, else up to the token
    where the reference's text leaves the stop (``len(tokens)``: it never does). An engine
    cuts its own text where the stop begins, somewhere in the whitespace after the last
    character the text spelled (``dep.gap``: the text may have kept part of it); a node
    whose tokens kept the reference's spelled the reference's text from there, and then
    the stop, so it left the path (or ended) at or before the token holding the first
    character where they differ: its evidence is at least ``K`` of that position.

    Before 2026-12-06 (review33b) a stop of only whitespace matched anywhere, so a liar's
    empty answer to a probe with ``"\\n\\n"`` earned ``K_n``; before 2026-12-06
    (canary34) a stop with other characters matched with whitespace removed and against
    the rest of token ``m`` alone, so a text ended before a reference's ``" Human"``
    (``"\\nHuman:"``), ``"Question"`` (``"Q:"``) or any ``"["`` or ``"<"`` token (a chat
    template's ``"[INST]"``, ``"<|im_end|>"``) earned ``K_n``; canary34 matched it against
    the reference's text to its end, so where the stop left it past ``m`` (``"[INST]"``
    against ``" [1]"``) an honest node that kept ``" ["`` and drew ``"INST"`` was charged
    ``K_m``, more than its tokens earn (found and closed 2026-12-06, review34)."""
    m = dep.ended
    if m is None:
        return len(reference.tokens)
    ends = list(accumulate(len(t.token) for t in reference.tokens))
    after, gap = dep.after, len(dep.gap)
    base = (ends[-1] if ends else 0) - len(after)  # where ``after`` begins in the text
    end = m
    for s in stops:
        for k in range(gap + 1) if s else ():
            rest = after[k:]
            same = _same_start(s, rest)
            if same in (len(s), len(rest)):  # it may have kept every position
                return len(reference.tokens)
            end = max(end, bisect_right(ends, base + k + same))  # the token that differs
    return end


def text_evidence(
    reference: Answer,
    text: str,
    temperature: float,
    test: DepartureTest = DEFAULT_TEST,
    stops: Sequence[str] = (),
    chat: bool = True,
) -> Evidence:
    """The least evidence the node's tokens could have earned for ``text`` (module
    docstring): ``min over j ≤ d of K_j + D_j`` where it left at ``d``; ``K_m`` where it
    ended inside the reference's token ``m`` and no stop string (``stops``, the probe's;
    ``TURN_STOPS`` where ``chat``: a completion's text is cut by its client's stops alone,
    review33b) may have cut it there; else ``K_j``, ``j`` the token where the reference's
    text leaves the stop (:func:`_cut_end`), ``K_n`` where it never does."""
    dep = text_departure(reference, text)
    end = len(reference.tokens)
    if dep.ended is not None:  # its tokens left the path (or ended) by ``m``, or by where
        end = _cut_end(reference, dep, (*stops, *(TURN_STOPS if chat else ())))  # a stop may
        # have cut it and the reference's text leaves that stop
    kept, least = 0.0, math.inf
    for i, ref in enumerate(reference.tokens[:end]):
        keep, leave = _factors(ref, temperature, test)
        if dep.at is not None:
            least = min(least, kept + leave)
            if i == dep.at:
                return Evidence(least, i + 1, i)
        kept += keep
    return Evidence(kept, end, None)


def _plausible_at(ref: TokenLogprob, rest: str, temperature: float, rule: Rule) -> float:
    """The most probability a sampler at ``temperature`` gives a token the node may have
    drawn at ``ref``'s position, writing ``rest`` there: a listed one (not the reference's
    pick) whose text agrees with it, or one unlisted where the list leaves out
    ``sampled_floor`` or more (its text unseen)."""
    best = 0.0
    for token, _ in ref.top:
        if token != ref.token and (REPLACEMENT in token or _comparable(_squeeze(token), rest)):
            best = max(best, tempered_most(ref, token, temperature))
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.top)
    if not ref.top or unlisted >= rule.sampled_floor:
        best = max(best, tempered_most(ref, "\0unlisted", temperature))
    return best


def compare_sampled_text(
    reference: Answer,
    text: str,
    rule: Rule = DEFAULT_RULE,
    stops: Sequence[str] = (),
    *,
    temperature: float = 1.0,
    test: DepartureTest = DEFAULT_TEST,
) -> Verdict:
    """The verdict on a sampled answer's ``text`` (no log-probabilities) against the greedy
    ``reference`` cut to the probe's length: ``sampled_text_match`` (no departure seen) or
    ``sampled_text_diverged`` at its textual departure (ok), else ``sampled_token`` there
    (module docstring). ``stops`` are not needed: a stop string only ends a text early."""
    del stops  # an early end is never a departure (text_departure)
    if not temperature > 0:
        raise ValueError("a sampled probe's temperature is above 0")
    dep = text_departure(reference, text)
    if dep.at is None:
        return Verdict(True, "sampled_text_match", None)
    d = dep.at
    earlier = max(
        (leave_bound(r, temperature, test.margin) for r in reference.tokens[:d]), default=0.0
    )
    here = _plausible_at(reference.tokens[d], dep.rest, temperature, rule)
    if here < rule.sampled_floor and earlier < rule.sampled_floor:
        return Verdict(False, "sampled_token", d, diverged_at=d)
    return Verdict(True, "sampled_text_diverged", d, diverged_at=d)
