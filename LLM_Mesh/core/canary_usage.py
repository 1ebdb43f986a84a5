"""Canary probes judge a node's ``usage`` too: the counts it is paid on, held to evidence.

The gateway has no tokenizer: it prices an answer at the node's own ``usage``, capped by
the delivered bytes (``core/delivered.py``: up to one token a byte + 16 a choice) and the
prompt's estimate bound. A node serving the real model honestly could state one token a
byte and be paid 3-4 times its real tokens, charged to its users (found 2026-12-05). A
probe has evidence of the real counts, so it checks them (:func:`check_usage`):

* the completion of a non-streamed probe against its own log-probability entries (one a
  generated token, what the text comparison of ``core/canary.py`` judged); of a text-only
  probe (a stream, or no ``logprobs`` asked) against the most tokens an honest engine
  spells its text with where it spelled, whitespace aside, a beginning of the reference's
  text cut to the probe's length (:func:`covering_entries`: the reference's tokens, their
  runs of other characters than whitespace as they are, every whitespace byte possibly a
  token of its own, as an honest engine may split ``"\n\n\n\n"`` or ``"\n\nThe"``
  more finely than the reference; a text that diverged at a near tie is not counted;
  since canary35 a greedy probe's first reference tokens with no near tie that may spell
  the text otherwise, :func:`kept_tokens`, one each, as an honest greedy node emits them);
* the prompt against the verifier's ``usage.prompt_tokens`` for the same messages (the
  reference is asked with the probe's prompt or messages: the same file's tokenizer and
  chat template give the same count).

Each bound has a slack (:class:`UsageSlack`) for what honest engines count beyond the
evidence: an end-of-generation token, a ``stop`` string's tokens cut off the text (at
most a token a byte of the request's longest stop string), another engine's rendering of
the template (a BOS more or less, another template's spacing). Measured with
``benchmarks/bench_canary_usage.py`` (docs/security.md, the row of this attack): this
project's llama.cpp engine and the sim engine state exactly the entries and the
reference's prompt count; the slack is for other engines.

A count above its bound is a failed probe (:class:`UsageVerdict`, the prober quarantines
as for a wrong text). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "DEFAULT_SLACK",
    "StatedUsage",
    "UsageSlack",
    "UsageVerdict",
    "check_usage",
    "covering_entries",
    "kept_tokens",
    "stated_usage",
]

REPLACEMENT = "\ufffd"
"""A token holding part of a character (``core/canary.REPLACEMENT``)."""

MAX_STOP_TOKENS = 64
"""The most a probe's ``stop`` strings add to the completion's slack (the pool's longest
stop string is 13 bytes)."""


@dataclass(frozen=True)
class StatedUsage:
    """The counts a node stated in its answer's ``usage``."""

    prompt: int
    completion: int


@dataclass(frozen=True)
class UsageSlack:
    """How far an honest count may lie above its evidence."""

    completion: int = 2
    """Tokens over the entries: an end-of-generation token counted (vLLM, llama.cpp's
    server count the EOS a choice stops at), one more for a detokeniser's odd split."""
    prompt: int = 4
    """Tokens over the verifier's prompt count (a BOS added twice, another engine's
    template whitespace), plus :attr:`prompt_share` of that count."""
    prompt_share: float = 0.125
    """Share of the verifier's prompt count allowed over it (another engine's rendering of
    a long multi-turn template)."""


DEFAULT_SLACK = UsageSlack()


@dataclass(frozen=True)
class UsageVerdict:
    """A count above its bound: ``usage_completion`` or ``usage_prompt``."""

    reason: str
    stated: int
    bound: int
    evidence: str

    def describe(self) -> str:
        what = "completion" if self.reason == "usage_completion" else "prompt"
        return (
            f"{self.reason}: {self.stated} {what} tokens stated, at most {self.bound} "
            f"({self.evidence})"
        )


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def stated_usage(body: Mapping[str, Any]) -> StatedUsage | None:
    """The ``usage`` counts of an OpenAI answer (or a stream's usage chunk); ``None``
    where it states none or not as counts (no check: the gateway prices such an answer
    at its own estimate, ``core/delivered.py``)."""
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    return StatedUsage(prompt, completion)


def check_usage(
    got: StatedUsage | None,
    reference: StatedUsage | None,
    *,
    entries: int | None,
    reference_entries: int | None = None,
    stop_bytes: int = 0,
    slack: UsageSlack = DEFAULT_SLACK,
) -> UsageVerdict | None:
    """The first count of ``got`` above its bound, or ``None`` (within, or nothing to hold
    it to). ``entries``: the probe's own log-probability entries (a non-streamed probe);
    ``reference_entries``: else the most tokens of the text a text-only answer spelled
    (:func:`covering_entries`; ``None``: not comparable); ``stop_bytes``: the UTF-8 bytes of the probe's longest
    ``stop`` string; ``reference``: the verifier's counts for the same prompt."""
    if got is None:
        return None
    stop = min(max(0, stop_bytes), MAX_STOP_TOKENS)
    base, evidence = None, ""
    if entries is not None:
        base, evidence = entries, "log-probability entries"
    elif reference_entries is not None:
        base = reference_entries
        evidence = "the reference's tokens for that text split at whitespace"
    if base is not None:
        bound = base + slack.completion + stop
        if got.completion > bound:
            extra = f" + {stop} for the stop string" if stop else ""
            why = f"{base} {evidence} + {slack.completion}{extra}"
            return UsageVerdict("usage_completion", got.completion, bound, why)
    if reference is not None:
        allowed = slack.prompt + int(reference.prompt * slack.prompt_share)
        bound = reference.prompt + allowed
        if got.prompt > bound:
            why = f"the verifier's {reference.prompt} + {allowed}"
            return UsageVerdict("usage_prompt", got.prompt, bound, why)
    return None


def _squeeze(text: str) -> str:
    return "".join(text.split())


class _Entry(Protocol):
    """A reference's token with its numbers (``core/canary.TokenLogprob``)."""

    @property
    def token(self) -> str: ...
    @property
    def logprob(self) -> float: ...
    @property
    def top(self) -> Sequence[tuple[str, float]]: ...


def kept_tokens(tokens: Sequence[_Entry], margin: float) -> int:
    """How many of a greedy reference's ``tokens``, from the first, an honest greedy node
    emits as they are where its text is a beginning of theirs (canary35): up to the first
    token beside which another could be picked (its number within ``margin`` of the
    reference's token's, listed, or unlisted where the last listed one is within it) and
    would spell a text comparable with the reference's, whitespace aside (a whitespace
    token, ``"\n"`` for ``"\n\n"``, ``" "`` for ``" The"``; ``"The"``; ``" Th"``), or a
    token holding part of a character, or one with no candidates listed. The premise of
    the greedy text rule (``canary.sure_prefix``): an honest node's numbers are within the
    margin of the reference's, so it picks the reference's token where no other is near;
    one that is near but spells another text leaves the reference (its text is then no
    beginning of theirs, no count). A sampled probe keeps none (any token may be drawn)."""
    rest = _squeeze("".join(t.token for t in tokens))
    at = 0
    for i, t in enumerate(tokens):
        if REPLACEMENT in t.token or not t.top:
            return i
        ahead = rest[at:]
        floor = t.logprob - margin
        if min(lp for _, lp in t.top) >= floor:  # an unlisted token may be near too
            return i
        for alt, lp in t.top:
            if alt != t.token and lp >= floor and _comparable(alt, ahead):
                return i
        at += len(_squeeze(t.token))
    return len(tokens)


def _comparable(token: str, ahead: str) -> bool:
    """Whether ``token`` may spell a beginning of ``ahead`` (the reference's text from its
    place, whitespace aside), or ``ahead`` and more (a stop string may cut it)."""
    if REPLACEMENT in token:  # part of a character: its text is unseen
        return True
    got = _squeeze(token)
    return ahead.startswith(got) or got.startswith(ahead)


def covering_entries(text: str, tokens: Sequence[str], kept: int = 0) -> int | None:
    """The most tokens an honest engine spells ``text``, a text-only answer, with, where
    ``text`` is, whitespace aside, a beginning of the text of the reference's ``tokens``
    (cut to the probe's length): the pieces of its other characters than whitespace, each
    cut where the reference's tokens and the text's whitespace cut it, plus a token a UTF-8
    byte of whitespace, the text's or, where more, the counted tokens' (the text may end
    in whitespace-only tokens right after them, left out of it: measured, a stream's
    ``"\n"`` last). An honest engine may spell any whitespace a character a token where
    the reference merged it: ``"\n\n\n\n"`` as four ``"\n"``, ``"\n\nThe"`` as
    ``"\n"``, ``"\n"``, ``"The"``, and run on past the reference in newlines alone (the
    real gemma-3-270m, 200 tokens, in the e2e). History: until 2026-12-06 (canary34) such a
    text was no evidence, so a liar padding its text with one newline was held to no
    count; canary34 counted only the whitespace past the reference's tokens, which held an
    honest node splitting ``"\n\n\n\n"`` more finely below its count (ws34). Assumed:
    an honest engine splits a run of other characters no finer than the reference's
    tokens do (a split ``"Th"``, ``"e"`` for ``"The"`` is within the slack once a probe).
    A padder is held to a token a byte of whitespace it sends. ``None`` where it is not a
    beginning (the stream diverged, at a near tie an honest node may take otherwise, or
    ran past the reference in more than whitespace: no evidence of its count).

    ``kept`` (canary35, a greedy probe: :func:`kept_tokens`): the reference's first tokens
    an honest node emits as they are; those the text spells as they are (whitespace and
    all) count one each, the rest of the text as above. This rule alone is 1.48-1.75
    times a text's true tokens (docs/benchmarks.md): a lone space, ``"▁The"``, may be
    split off, and gemma's own tokens split ``"▁"`` off before digits."""
    same, spelled = 0, ""
    while same < min(kept, len(tokens)) and text.startswith(spelled + tokens[same]):
        spelled += tokens[same]
        same += 1
    rest = _finest(text[len(spelled) :], tokens[same:])
    return None if rest is None else same + rest


def _finest(text: str, tokens: Sequence[str]) -> int | None:
    n = _spelling(_squeeze(text), tokens)
    if n is None:
        return None
    counted = tokens[:n]
    return _pieces(text, counted) + max(_spaces(text), sum(_spaces(t) for t in counted))


def _pieces(text: str, tokens: Sequence[str]) -> int:
    """The runs of ``text``'s other characters than whitespace, each cut where one of the
    reference's ``tokens`` (whose text, whitespace aside, begins with ``text``'s) ends."""
    owner = [i for i, token in enumerate(tokens) for ch in token if not ch.isspace()]
    pieces, j, last = 0, 0, -1
    for ch in text:
        if ch.isspace():
            last = -1
            continue
        if owner[j] != last:
            pieces += 1
        last, j = owner[j], j + 1
    return pieces


def _spelling(got: str, tokens: Sequence[str]) -> int | None:
    spelled = ""
    for i, token in enumerate(tokens):
        if spelled.startswith(got):
            if _squeeze(token):
                return i
        elif not got.startswith(spelled):
            return None
        spelled += _squeeze(token)
    return len(tokens) if spelled.startswith(got) else None


def _spaces(text: str) -> int:
    """The UTF-8 bytes of ``text``'s whitespace (a byte-level tokenizer's tokens hold at
    least one)."""
    return sum(len(ch.encode("utf-8")) for ch in text if ch.isspace())
