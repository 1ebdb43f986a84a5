"""A quarantine's reason in short: its kind, for the admin's listings and a log line.

The gateway writes a quarantine's reason as ``SOURCE: WORD ...``: ``canary: token at
token 3, ...``, ``canary: sampled_token ...``, ``canary: sampled_departures: log-likelihood
ratio ...``, ``canary: usage_completion: ...`` (a probe's stated counts, over its
evidence), ``usage_audit: completion tokens at 1.00 of the gateway's cap ...`` (the audit
by peers). Its kind is the source and the word: ``canary sampled_departures``,
``usage_audit completion``; ``other`` for a reason not of that form.
"""

from __future__ import annotations

import re

__all__ = ["KINDS", "reason_kind", "reason_label"]

# the kinds the gateway writes (a metric's label values: reason_label)
_CANARY = ("no_logprobs", "logprob", "logprob_mean", "token", "length", "text", "stream_text")
_SAMPLED = ("sampled_token", "sampled_departures", "usage_completion", "usage_prompt")
KINDS: tuple[str, ...] = (
    *(f"canary {w}" for w in (*_CANARY, *_SAMPLED)),
    "usage_audit completion",
    "usage_audit prompt",
    "other",
)

_SOURCE = re.compile(r"([a-z][a-z_]{0,31}): +([a-z][a-z_]{0,31})\b")


def reason_kind(reason: object) -> str:
    """The kind of a quarantine's ``reason`` (see the module docstring)."""
    if not isinstance(reason, str) or (m := _SOURCE.match(reason.strip())) is None:
        return "other"
    return f"{m.group(1)} {m.group(2)}"


def reason_label(reason: object) -> str:
    """:func:`reason_kind`, one of :data:`KINDS` (``other`` for any other)."""
    kind = reason_kind(reason)
    return kind if kind in KINDS else "other"
