"""What a request costs, in micro-NetworkTokens (µNT): integers only, never floats.

A model's price is two whole numbers (``core/catalog.py``): µNT per 1,000 prompt
tokens and µNT per 1,000 completion tokens (:class:`Price`).

- **Exact cost** (:func:`request_cost`): ``ceil((prompt × prompt_price + completion ×
  completion_price) / 1000)``, rounded *up* to a whole µNT; a request that produced no
  completion costs nothing.
- **Estimate** (:func:`estimate`), reserved from the payer before any node runs: the
  prompt counted at an upper bound of what any node's tokenizer makes of it
  (:func:`estimate_prompt_tokens`: its UTF-8 bytes, + 8 tokens a chat message for its
  template, + 16 a request) and ``max_tokens`` completion tokens for each of ``n`` choices
  (none given: each answer
  may run to the end of the model's context after the *real* prompt, which may be far
  shorter than the bound, so it is priced at the dearer end; a custom model's context is
  the largest any node declares for it, so the node that serves it is paid for what it
  may send: ``listing.custom_context``), priced as above.
  A request never costs more than its estimate: the charge is capped there
  (:func:`part_costs`), so a payer admitted with an estimate can always pay it, and an
  honest node's real usage is under the cap, so it is paid for all it processed.
- **Parts** (:func:`part_costs`): a stream continued on other nodes is paid per node
  (part): each part for the completion tokens it delivered, the prompt once, with the
  *last* part that delivered any token (the node whose count of the prompt is charged,
  which processed it, with the text before it, to give the answer's end; found
  2026-12-05: paid with the first, a node sending one token unread then breaking took the
  price of a prompt the continuing node processed); each part rounded up on its own.
  Parts over the cap are cut from the last part backwards.
- **Network fee** (:func:`network_fee`): ``⌈amount × fee_bps / 10000⌉`` of each part,
  rounded *up*, so a part with an amount pays at least 1 µNT at any fee above 0; the node's
  operator gets the rest (:func:`split`). Until 2026-12-06 (``money34``) it was rounded
  *down* (:func:`network_fee_down`, what version-3 receipts sign): 0 below 10000 /
  ``fee_bps`` µNT (20 µNT at the default 500 bps), so an operator's own keyed requests to
  its own node in small requests paid no fee at all (wash traffic for free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_FEE_BPS",
    "MESSAGE_OVERHEAD_TOKENS",
    "PROMPT_OVERHEAD_TOKENS",
    "UNIT",
    "Price",
    "checked_fee_bps",
    "completion_bound",
    "estimate",
    "estimate_prompt_tokens",
    "network_fee",
    "network_fee_down",
    "part_costs",
    "request_cost",
    "split",
    "usual_completion_tokens",
    "usual_prompt_tokens",
]

UNIT = "micro-NetworkToken"  # what every amount is in: 10^-6 NetworkToken
# The prompt's bound (estimate_prompt_tokens). A token is at least one byte of the text in
# every tokenizer a node runs (byte-level BPE; SentencePiece with byte fallback, as Gemma's:
# a character outside its vocabulary is one token per UTF-8 byte, and Gemma splits digits
# one a token: 1 token a byte for JSON numbers), so the text's UTF-8 bytes bound its tokens.
# What the node adds: per request (BOS, a dummy-prefix space, the answer's turn opener)
# at most 4 tokens measured, and per chat message (its role marker and turn delimiters,
# core/prompt.py) at most 5.04 tokens (gemma template), 4.03 (plain), 4.02 (llama2-inst,
# mistral-inst) measured on gemma-3-270m's tokenizer over 1 to 100 messages of 6 roles
# (docs/benchmarks.md, 2026-12-03); chatml's markers are special tokens on the models that
# use it (5 a message). Constants, so no tokenizer runs on the gateway's hot path.
PROMPT_OVERHEAD_TOKENS = 16
MESSAGE_OVERHEAD_TOKENS = 8
# A usual count, not a bound (usual_prompt_tokens): 3 characters a token (the low end of
# real tokenizers on prose) and 5 template tokens a chat message (the most measured above).
USUAL_CHARS_PER_TOKEN = 3
USUAL_MESSAGE_TOKENS = 5
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


def estimate_prompt_tokens(prompt_text: str, messages: int = 0) -> int:
    """The prompt's tokens as the estimate counts them, an upper bound of a node's count:
    its UTF-8 bytes + 8 a chat message (``messages``; 0: a completion's prompt) + 16.
    Cheap: ``str.isascii`` is O(1) in CPython, and an ASCII text's bytes are its length."""
    _whole("messages", messages)
    size = len(prompt_text) if prompt_text.isascii() else len(prompt_text.encode("utf-8"))
    return size + messages * MESSAGE_OVERHEAD_TOKENS + PROMPT_OVERHEAD_TOKENS


def usual_prompt_tokens(prompt_text: str, messages: int = 0) -> int:
    """A usual count of the prompt's tokens, the mesh's one rule for it: what a payer is
    charged for its prompt when no node said how many it processed
    (``registry/account.charged_prompt_tokens``), and the prompt's share of what a request
    takes from a tpm bucket before it runs (``core/ratelimit.estimate_tokens``, settled by
    the real usage after). Not the bound (:func:`estimate_prompt_tokens`), ~3.6 times an
    English prompt's real count: charged there, the payer would pay for tokens nobody
    processed, and a tpm would refuse requests whose real usage fits it. ``ceil(chars /
    3)`` + 5 a chat message + 16: never above the bound (bytes ≥ characters, 5 < 8)."""
    _whole("messages", messages)
    chars = _ceil_div(len(prompt_text), USUAL_CHARS_PER_TOKEN)
    return chars + messages * USUAL_MESSAGE_TOKENS + PROMPT_OVERHEAD_TOKENS


def usual_completion_tokens(characters: int) -> int:
    """A usual count of an answer's completion tokens from its text's ``characters``, by
    the prompt's rule (:func:`usual_prompt_tokens`, 3 characters a token): what a payer is
    charged for a non-streamed answer whose node stated no count (no ``usage``: a node of
    another make; ``core/delivered.counted_completion``), where a stream is counted by its
    content chunks. Never above the text's UTF-8 bytes (the priced count's bound)."""
    _whole("characters", characters)
    return _ceil_div(characters, USUAL_CHARS_PER_TOKEN)


def completion_bound(prompt_tokens: int, max_tokens: int, context_length: int) -> int:
    """The completion tokens a request is counted for: ``max_tokens`` (0: the rest of
    ``context_length`` after ``prompt_tokens``, the estimated prompt, at least 1 token).
    (A stream's cut-off is not this: without ``max_tokens`` it is the whole context, since
    the estimated prompt can be longer than the real one: ``stream_guard.token_limit``, on
    the serving node's context at most this one: ``Job.limit_on``.)"""
    _whole("max_tokens", max_tokens)
    if max_tokens > 0:
        return max_tokens
    return max(1, context_length - prompt_tokens)


def estimate(
    price: Price,
    prompt_text: str,
    max_tokens: int,
    context_length: int,
    messages: int = 0,
    choices: int = 1,
    *,
    prompt_bound: int | None = None,
) -> int:
    """The most a request may cost: the estimated prompt (:func:`estimate_prompt_tokens`)
    plus ``max_tokens`` for each of its ``choices`` (``n``: every choice is an answer, and
    the usage sums their completion tokens; the prompt is processed once), priced; what is
    reserved before a node runs. Without ``max_tokens`` a real prompt of ``r`` tokens leaves
    ``context_length - r`` to each answer, so it may cost ``r × prompt price + choices ×
    (context - r) × completion price``, for any ``r`` from 1 to the bound: the dearer end
    of that range (a completion token costs more than a prompt token, so usually a short
    prompt and the whole context of answer). ``prompt_bound``: the prompt's
    :func:`estimate_prompt_tokens` of the same ``prompt_text`` and ``messages`` when the
    caller has it already (the parse stage keeps it as ``Job.prompt_bound``: perf45b)."""
    if type(choices) is not int or choices < 1:
        raise ValueError(f"choices must be a whole number >= 1, got {choices!r}")
    prompt = estimate_prompt_tokens(prompt_text, messages) if prompt_bound is None else prompt_bound
    if max_tokens > 0:
        answers = choices * completion_bound(prompt, max_tokens, context_length)
        return _priced(price, prompt, answers)
    longest = _priced(price, prompt, choices * completion_bound(prompt, 0, context_length))
    return max(longest, _priced(price, 1, choices * completion_bound(1, 0, context_length)))


def part_costs(
    price: Price, prompt_tokens: int, completions: Sequence[int], cap: int | None = None
) -> list[int]:
    """What each part (node) of one request is paid, in order (see the module docstring).

    ``completions``: the completion tokens each part delivered; ``cap``: the estimate the
    request was admitted with (``None``: no cap). The prompt is charged once, with the
    last part that delivered a token (a part that broke was continued: the next node
    processed the prompt again, and its count is the one charged); a part that delivered
    nothing gets 0.
    """
    if prompt_tokens < 0 or any(c < 0 for c in completions):
        raise ValueError("token counts cannot be negative")
    last = max((i for i, c in enumerate(completions) if c > 0), default=-1)
    out = [
        _priced(price, prompt_tokens if i == last else 0, c) if c else 0
        for i, c in enumerate(completions)
    ]
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


def checked_fee_bps(fee_bps: int) -> int:
    """``fee_bps`` (the network's fee, basis points) if it is a whole number from 0 to
    :data:`MAX_FEE_BPS` (100 %), else ``ValueError``. The settlement checks it as it is made
    (found 2026-12-06, ``money33``: ``LLM_MESH_NETWORK_FEE_BPS`` was bounded, a setting
    built in code was not, and past 100 % every paid request ran on a node, then failed 500
    when its fee was priced: the node's work unpaid, the client's retries run again)."""
    if type(fee_bps) is not int or not 0 <= fee_bps <= MAX_FEE_BPS:
        raise ValueError(
            f"network_fee_bps must be a whole number (0 to {MAX_FEE_BPS}), got {fee_bps!r}"
        )
    return fee_bps


def network_fee(amount: int, fee_bps: int) -> int:
    """The network's fee on ``amount``: ``⌈amount × fee_bps / 10000⌉`` (rounded up: at
    least 1 µNT of any amount above 0 at any fee above 0)."""
    _whole("amount", amount)
    return -(-amount * checked_fee_bps(fee_bps) // MAX_FEE_BPS)


def network_fee_down(amount: int, fee_bps: int) -> int:
    """The fee as it was cut until 2026-12-06: ``amount × fee_bps // 10000`` (rounded down),
    what a version-3 receipt's parts sign (``core/receipt_verify.py`` checks them by it)."""
    _whole("amount", amount)
    return amount * checked_fee_bps(fee_bps) // MAX_FEE_BPS


def split(amount: int, fee_bps: int) -> tuple[int, int]:
    """``(operator's share, network fee)`` of ``amount``; they add up to ``amount``."""
    fee = network_fee(amount, fee_bps)
    return amount - fee, fee
