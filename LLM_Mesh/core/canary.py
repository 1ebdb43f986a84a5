"""Canary verdicts: does a node's answer match a verifier's reference?

A probe is an ordinary greedy completion that asks for the top log-probabilities
of each generated token. The reference is the same probe answered by a verifier
node (trusted by the admin) running the same model file (same sha256). Honest
nodes differ from it only slightly (another batch size, llama.cpp's prompt cache
reusing part of an earlier prompt, another CPU or build changes the floating-point
sums a little, sometimes enough to flip a near tie); a node serving a
lower quantisation, another model, or canned or random text differs a lot.

The rule (:func:`compare`), position by position while the tokens agree:

* the chosen token's log-probability must agree within ``logprob_tolerance`` at
  every token, and on average over the compared tokens within ``mean_tolerance``
  (honest differences are small on average; a lower quantisation shifts every
  token). The lower-ranked candidates are not compared: their numbers move most
  between honest runs (measured), so they would add noise, not evidence;
* where the tokens first differ, it must be a near tie (``tie_margin``) that an
  honest rounding difference can flip: the reference ranks the node's token nearly
  as high as its own pick, or the node ranks the reference's token nearly as high
  as its own, with the numbers for the token both list agreeing. The answers diverge there; nothing after
  it is comparable, so the comparison ends (passing);
* the answer's text must be its tokens (no text swapped under honest
  log-probabilities): it begins with what they spell, or, where a chat template's stop
  string ended the answer (the tokens past the text spell it: ``core.prompt.TURN_STOPS``),
  is a non-empty beginning of it (llama.cpp's tokens run on past the text a stop string
  cut: a chat answer's ``"\nUser:"``), or, where the probe sent a ``stop`` list
  (``stops``), a beginning of it that one of those strings ended (empty too: it may end
  the answer at once); an answer without log-probabilities fails.

A streamed probe carries no log-probabilities (a node's stream chunks have none), so
:func:`compare_text` judges its text alone against the reference's greedy tokens: the
tokens before the first place an honest rounding could flip (the reference's runner-up
within ``stream_tie_margin``, wider than ``tie_margin``) must be what the stream spells,
whitespace aside. An honest node diverging where the reference shows a near tie passes
both rules; a liar's other text fails it.

The tolerances are measured, not guessed: ``benchmarks/bench_canary.py`` runs
honest variants and liars and prints the spread (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.canary_usage import StatedUsage, stated_usage
from LLM_Mesh.core.prompt import TURN_STOPS

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: text, log-probability, top candidates (best first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Answer:
    """What a node (or a verifier) answered to a probe."""

    text: str
    tokens: tuple[TokenLogprob, ...]
    usage: StatedUsage | None = None
    """The counts its ``usage`` stated (``core/canary_usage.py``); ``None``: none."""


@dataclass(frozen=True)
class Rule:
    """The comparison's tolerances (measured: docs/benchmarks.md, "Canary probes")."""

    logprob_tolerance: float = 1.0
    """Largest |Δ log-probability| of the chosen token allowed at any one token."""
    mean_tolerance: float = 0.2
    """Largest mean |Δ| over the compared tokens (checked from ``mean_min_tokens`` on)."""
    mean_min_tokens: int = 4
    tie_margin: float = 1.0
    """Where the tokens first differ, the node's token must be within this of the reference's."""
    stream_tie_margin: float = 1.5
    """A streamed probe (text only) is compared up to the reference's first token whose
    runner-up is within this: wider than ``tie_margin``, since a stream cannot show its
    own near tie (:func:`compare` also accepts a tie only the node's list shows). Measured
    (bench_canary.py): 0 honest flags at 1.0, 1.5 and 2.0; evidence on 32, 16 and 10 of 64
    prompts."""
    sampled_floor: float = 1e-6
    """A sampled probe (``core/canary_sampled.py``): where the node's token first differs
    from the reference's greedy one, the reference must give it at least this probability
    (its listed value, or the mass its top candidates leave unlisted). At temperature ≤ 1
    an honest node picks a token under it less often than this."""


DEFAULT_RULE = Rule()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    """``match``, ``diverged_at_tie``, ``text_match``, ``no_sure_tokens``, ``sampled_match``,
    ``sampled_diverged``, ``sampled_text_match``, ``sampled_text_diverged`` (ok; the last two
    a stream's: ``core/canary_sampled_text.py``); ``no_logprobs``, ``logprob``, ``logprob_mean``, ``token``,
    ``length``, ``text``, ``stream_text``, ``sampled_token``, ``sampled_departures: …``
    (failed; the last across probes: ``core/canary_departures.py``)."""
    position: int | None = None
    max_delta: float | None = None
    diverged_at: int | None = None
    mean_delta: float | None = None

    def describe(self) -> str:
        where = f" at token {self.position}" if self.position is not None else ""
        delta = f", max |Δlogprob| {self.max_delta:.4f}" if self.max_delta is not None else ""
        mean = f", mean {self.mean_delta:.4f}" if self.mean_delta is not None else ""
        return f"{self.reason}{where}{delta}{mean}"


def _near_tie(ref: TokenLogprob, got: TokenLogprob, rule: Rule) -> bool:
    """Whether two different picks are a near tie an honest rounding can flip.

    Either list may show it: the reference ranks the node's token within ``tie_margin``
    of its own pick, or the node ranks the reference's token within it of its pick;
    and the number both give for the token they both list agrees within
    ``logprob_tolerance`` (a node cannot claim a tie with made-up numbers).
    """
    in_ref = dict(ref.top).get(got.token)
    if in_ref is not None and in_ref >= ref.logprob - rule.tie_margin:
        return abs(got.logprob - in_ref) <= rule.logprob_tolerance
    in_got = dict(got.top).get(ref.token)
    if in_got is not None and in_got >= got.logprob - rule.tie_margin:
        return abs(in_got - ref.logprob) <= rule.logprob_tolerance
    return False


def compare(
    reference: Answer, answer: Answer, rule: Rule = DEFAULT_RULE, stops: Sequence[str] = ()
) -> Verdict:
    """The verdict on ``answer`` against ``reference`` (same prompt, greedy, top log-probs;
    ``stops``: the ``stop`` strings the probe sent)."""
    if reference.tokens and not answer.tokens:
        return Verdict(False, "no_logprobs", 0)
    tally = Tally()
    deltas, verdict = tally.deltas, tally.verdict
    for i in range(min(len(reference.tokens), len(answer.tokens))):
        ref, got = reference.tokens[i], answer.tokens[i]
        if not (math.isfinite(got.logprob) and got.logprob <= 1e-6):
            return verdict(False, "logprob", i)
        if got.token != ref.token:
            if _near_tie(ref, got, rule):
                tally.diverged = i  # nothing after a divergence compares
                break
            return verdict(False, "token", i)
        deltas.append(abs(got.logprob - ref.logprob))
        if deltas[-1] > rule.logprob_tolerance:
            return verdict(False, "logprob", i)
    diverged = tally.diverged
    if diverged is None and len(answer.tokens) != len(reference.tokens):
        return verdict(False, "length", min(len(reference.tokens), len(answer.tokens)))
    if tally.off_on_average(rule):
        return verdict(False, "logprob_mean", None)
    if not spelled_by(answer, len(answer.tokens) if diverged is None else diverged, stops):
        return verdict(False, "text", None)
    return verdict(True, "match" if diverged is None else "diverged_at_tie", diverged)


class Tally:
    """A comparison's record so far (:func:`compare`, ``canary_sampled.compare_sampled``):
    the |Δ log-probability| of each compared token and where the answer left the reference."""

    __slots__ = ("deltas", "diverged")

    def __init__(self) -> None:
        self.deltas: list[float] = []
        self.diverged: int | None = None

    def verdict(self, ok: bool, reason: str, at: int | None) -> Verdict:
        deltas = self.deltas
        mean = sum(deltas) / len(deltas) if deltas else None
        return Verdict(ok, reason, at, max(deltas, default=0.0), self.diverged, mean)

    def off_on_average(self, rule: Rule) -> bool:
        """The mean |Δ| over ``rule.mean_tolerance`` (from ``mean_min_tokens`` compared)."""
        n = len(self.deltas)
        return n >= rule.mean_min_tokens and sum(self.deltas) / n > rule.mean_tolerance


def spelled_by(answer: Answer, upto: int, stops: Sequence[str]) -> bool:
    """Whether ``answer``'s text is what its first ``upto`` tokens spell (``stops``: the
    probe's ``stop`` strings); a token's partial character (:data:`REPLACEMENT`) passes."""
    spelled = "".join(t.token for t in answer.tokens[:upto])
    return REPLACEMENT in spelled or _spells(spelled, answer.text, tuple(stops))


def _spells(spelled: str, text: str, stops: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` is what tokens spelling ``spelled`` said: it begins with it, or a
    stop string cut it short (a non-empty beginning of it; found 2026-12-05: an honest
    chat answer's tokens ran on into the template's stop string ``"\nUser:"``, which the
    text leaves out, and the rule flagged it), or one of the probe's own ``stops`` did
    (empty too: the answer's first token may hold it)."""
    if text.startswith(spelled):
        return True
    if not spelled.startswith(text):
        return False
    rest = spelled[len(text) :]
    return (bool(text) and _stopped(rest)) or (bool(stops) and rest.startswith(stops))


def _stopped(rest: str) -> bool:
    """Whether tokens that spell ``rest`` past an answer's text are a stop string's (a chat
    template's: ``core.prompt.TURN_STOPS``): only there may an honest answer end short of
    its tokens (review 2026-12-05: any cut at a token's end passed, so a node could end a
    probe after its first agreeing token)."""
    return rest.startswith(TURN_STOPS)


def _stopped_after(
    tokens: Sequence[TokenLogprob], got: str, strings: Sequence[str] = TURN_STOPS
) -> bool:
    """Whether what ``tokens`` spell has a stop string (of ``strings``: a chat template's)
    right after a beginning that is ``got`` (whitespace ignored, as a stream's text is
    compared)."""
    full = "".join(t.token for t in tokens)
    for stop in strings:
        at = full.find(stop)
        while at >= 0:
            if _squeeze(full[:at]) == got:
                return True
            at = full.find(stop, at + 1)
    return False


def truncated(reference: Answer, max_tokens: int | None) -> Answer:
    """The reference cut to a probe's ``max_tokens`` (greedy: a shorter answer is a prefix;
    ``None``, no limit asked: the whole reference)."""
    toks = reference.tokens if max_tokens is None else reference.tokens[:max_tokens]
    return Answer("".join(t.token for t in toks), toks)


def judged_part(answer: Answer, reference: Answer, reference_limit: int) -> Answer:
    """The part of a node's ``answer`` that is compared with ``reference`` (a probe's
    reference, cut to its length): where the reference was cut at ``reference_limit``
    tokens (the most the verifier was asked) and the probe asked more, only the answer's
    first as many tokens (what follows has nothing to compare with); else the whole
    answer. The text is kept whole: it must begin with what the judged tokens spell."""
    if len(reference.tokens) >= reference_limit:
        return Answer(answer.text, answer.tokens[: len(reference.tokens)])
    return answer


def sure_prefix(reference: Answer, rule: Rule = DEFAULT_RULE) -> tuple[TokenLogprob, ...]:
    """The reference's tokens before the first one an honest node may pick differently: a
    runner-up within ``stream_tie_margin`` (a near tie), a token holding part of a
    character, or a token whose candidates the reference did not list."""
    out: list[TokenLogprob] = []
    for t in reference.tokens:
        runner_up = max((lp for tok, lp in t.top if tok != t.token), default=math.inf)
        if runner_up >= t.logprob - rule.stream_tie_margin or REPLACEMENT in t.token:
            break
        out.append(t)
    return tuple(out)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def compare_text(
    reference: Answer, text: str, rule: Rule = DEFAULT_RULE, stops: Sequence[str] = ()
) -> Verdict:
    """The verdict on a streamed answer's ``text`` (no log-probabilities) against
    ``reference`` (cut to the probe's length): the reference's :func:`sure_prefix` must
    be the start of ``text``, whitespace ignored (a detokeniser's spacing is no lie), or
    ``text`` ends where one of its tokens ends and the tokens past it spell a chat
    template's stop string (a stop string cut it; not an empty text), or ``text`` ends
    right before one of ``stops`` (the ``stop`` strings the probe sent) in what the
    tokens spell: an empty text so ended is ``no_sure_tokens``. An
    empty (or blank) sure prefix is ``no_sure_tokens``: ok, but no evidence (the prober records no
    verdict)."""
    sure = sure_prefix(reference, rule)
    if not "".join(_squeeze(t.token) for t in sure):  # nothing sure but whitespace
        return Verdict(True, "no_sure_tokens", 0)
    got = _squeeze(text)
    spelled = ""
    for i, t in enumerate(sure):
        before, spelled = spelled, spelled + _squeeze(t.token)
        if not got.startswith(spelled):
            if got and before and got == before and _stopped_after(sure, got):
                return Verdict(True, "text_match", i)  # a stop string ended it: the
                # reference's tokens ran past
            if stops and spelled.startswith(got) and _stopped_after(sure, got, stops):
                # the probe's own stop string ended it (at once: nothing to judge)
                return Verdict(True, "text_match" if got else "no_sure_tokens", i)
            return Verdict(False, "stream_text", i)
    return Verdict(True, "text_match", len(sure))


def answer_from_openai(body: Mapping[str, Any]) -> Answer:
    """The :class:`Answer` in an OpenAI completion or chat answer (either ``logprobs`` shape).

    Missing or malformed log-probabilities give an answer without tokens; its ``usage``
    counts are kept (:func:`~LLM_Mesh.core.canary_usage.stated_usage`).
    """
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Answer("", (), stated_usage(body))
    choice = choices[0]
    message = choice.get("message")
    text = choice.get("text")
    if not isinstance(text, str):
        text = message.get("content") if isinstance(message, dict) else ""
    text = text if isinstance(text, str) else ""
    return Answer(text, _tokens(choice.get("logprobs")), stated_usage(body))


def _tokens(lp: Any) -> tuple[TokenLogprob, ...]:
    try:
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):  # chat shape
            return tuple(
                TokenLogprob(
                    str(e["token"]),
                    float(e["logprob"]),
                    tuple(
                        (str(t["token"]), float(t["logprob"])) for t in e.get("top_logprobs") or []
                    ),
                )
                for e in lp["content"]
            )
        if isinstance(lp, dict) and isinstance(lp.get("tokens"), list):  # completion shape
            toks, lps = lp["tokens"], lp["token_logprobs"]
            tops = lp.get("top_logprobs") or [None] * len(toks)
            out = []
            for tok, val, top in zip(toks, lps, tops, strict=True):
                ranked: Sequence[tuple[str, float]] = (
                    sorted(((str(k), float(v)) for k, v in top.items()), key=lambda kv: -kv[1])
                    if isinstance(top, dict)
                    else ()
                )
                out.append(TokenLogprob(str(tok), float(val), tuple(ranked)))
            return tuple(out)
    except (KeyError, TypeError, ValueError):
        return ()
    return ()
