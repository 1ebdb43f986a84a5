"""What a request costs, in micro-NetworkTokens (µNT): integers only, never floats.

A model's price is two whole numbers (``core/catalog.py``): µNT per 1,000 prompt
tokens and µNT per 1,000 completion tokens (:class:`Price`).

- **Exact cost** (:func:`request_cost`): ``ceil((prompt × prompt_price + completion ×
  completion_price) / 1000)``, rounded *up* to a whole µNT; a request that produced no
  completion costs nothing.
- **Estimate** (:func:`estimate`), reserved from the payer before any node runs: the
  prompt estimated at ``ceil(characters / 3) + 16`` tokens (3 characters a token is the
  low end of real tokenizers, plus room for a chat template) and ``max_tokens``
  completion tokens (none given: the rest of the model's context; a custom model's is
  the largest context any node declares for it, so the node that serves it is paid for
  what it may send: ``listing.custom_context``), priced as above.
  A request never costs more than its estimate: the charge is capped there
  (:func:`part_costs`), so a payer admitted with an estimate can always pay it.
- **Parts** (:func:`part_costs`): a stream continued on other nodes is paid per node
  (part): each part for the completion tokens it delivered, the prompt once, with the
  first part that delivered any token; each part rounded up on its own. Parts over the
  cap are cut from the last part backwards.
- **Network fee** (:func:`network_fee`): ``amount × fee_bps // 10000`` of each part,
  rounded *down*; the node's operator gets the rest (:func:`split`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CHARS_PER_TOKEN",
    "MAX_FEE_BPS",
    "PROMPT_OVERHEAD_TOKENS",
    "UNIT",
    "Price",
    "completion_bound",
    "estimate",
    "estimate_prompt_tokens",
    "network_fee",
    "part_costs",
    "request_cost",
    "split",
]

UNIT = "micro-NetworkToken"  # what every amount is in: 10^-6 NetworkToken
CHARS_PER_TOKEN = 3
PROMPT_OVERHEAD_TOKENS = 16
MAX_FEE_BPS = 10_000
_PER = 1000  # prices are per 1,000 tokens


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _whole(name: str, value: int) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class Price:
    """A model's price: µNT per 1,000 prompt tokens and per 1,000 completion tokens."""

    prompt_per_1k: int
    completion_per_1k: int

    def __post_init__(self) -> None:
        _whole("prompt_per_1k", self.prompt_per_1k)
        _whole("completion_per_1k", self.completion_per_1k)

    def to_json(self) -> dict[str, object]:
        return {
            "prompt_per_1k": self.prompt_per_1k,
            "completion_per_1k": self.completion_per_1k,
            "unit": UNIT,
        }


def _priced(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    raw = prompt_tokens * price.prompt_per_1k + completion_tokens * price.completion_per_1k
    return _ceil_div(raw, _PER)


def request_cost(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    """The exact cost of one answer (see the module docstring); 0 without a completion."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts cannot be negative")
    if completion_tokens == 0:
        return 0
    return _priced(price, prompt_tokens, completion_tokens)


def estimate_prompt_tokens(prompt_chars: int) -> int:
    """The prompt's tokens as the estimate counts them: ``ceil(chars / 3) + 16``."""
    _whole("prompt_chars", prompt_chars)
    return _ceil_div(prompt_chars, CHARS_PER_TOKEN) + PROMPT_OVERHEAD_TOKENS


def completion_bound(prompt_chars: int, max_tokens: int, context_length: int) -> int:
    """The most completion tokens a request may get: ``max_tokens`` (0: the rest of
    ``context_length`` after the estimated prompt, at least 1 token). The estimate is priced
    at it. (A stream's cut-off is not this: without ``max_tokens`` it is the whole context,
    since the estimated prompt can be longer than the real one: ``stream_guard.token_limit``,
    on the serving node's context at most this one: ``Job.limit_on``.)"""
    _whole("max_tokens", max_tokens)
    if max_tokens > 0:
        return max_tokens
    return max(1, context_length - estimate_prompt_tokens(prompt_chars))


def estimate(price: Price, prompt_chars: int, max_tokens: int, context_length: int) -> int:
    """The most a request may cost: the estimated prompt plus :func:`completion_bound`,
    priced; what is reserved before a node runs."""
    prompt = estimate_prompt_tokens(prompt_chars)
    return _priced(price, prompt, completion_bound(prompt_chars, max_tokens, context_length))


def part_costs(
    price: Price, prompt_tokens: int, completions: Sequence[int], cap: int | None = None
) -> list[int]:
    """What each part (node) of one request is paid, in order (see the module docstring).

    ``completions``: the completion tokens each part delivered; ``cap``: the estimate the
    request was admitted with (``None``: no cap). The prompt is charged once, with the
    first part that delivered a token; a part that delivered nothing gets 0.
    """
    if prompt_tokens < 0 or any(c < 0 for c in completions):
        raise ValueError("token counts cannot be negative")
    out: list[int] = []
    prompt_left = prompt_tokens
    for c in completions:
        if c == 0:
            out.append(0)
            continue
        out.append(_priced(price, prompt_left, c))
        prompt_left = 0
    if cap is not None:
        _whole("cap", cap)
        over = sum(out) - cap
        i = len(out) - 1
        while over > 0 and i >= 0:
            cut = min(over, out[i])
            out[i] -= cut
            over -= cut
            i -= 1
    return out


def network_fee(amount: int, fee_bps: int) -> int:
    """The network's fee on ``amount``: ``amount × fee_bps // 10000`` (rounded down)."""
    _whole("amount", amount)
    if type(fee_bps) is not int or not 0 <= fee_bps <= MAX_FEE_BPS:
        raise ValueError(f"fee_bps must be 0 to {MAX_FEE_BPS}, got {fee_bps!r}")
    return amount * fee_bps // MAX_FEE_BPS


def split(amount: int, fee_bps: int) -> tuple[int, int]:
    """``(operator's share, network fee)`` of ``amount``; they add up to ``amount``."""
    fee = network_fee(amount, fee_bps)
    return amount - fee, fee
