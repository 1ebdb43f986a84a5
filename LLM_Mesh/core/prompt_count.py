"""A node's prompt count said before its first token: what a stream the client cuts pays.

Pure (no I/O). A stream's prompt is charged at the node's own count, which it states in
its final (usage) chunk; a client that cuts the stream before that chunk left the gateway
without it, and the gateway (no tokenizer) charged its usual count, ⌈characters / 3⌉ + 5 a
message + 16 (``core/pricing.usual_prompt_tokens``): a third of the tokens the node
processed or less for text a tokenizer splits finer (digits on Gemma, one a token; CJK
text, about one a character), so a client asking ``max_tokens`` K + 1 and leaving after K
tokens paid a third of a long prompt (found open 2026-12-06, ``money33``; closed
2026-12-06, ``money34``). Our node knows the count before its first token (its engine
tokenized the prompt: ``Delta.prompt_tokens``) and, as a stream's answer opens, says it in
the :data:`HDR_PROMPT_TOKENS` response header; the gateway charges a stream the client
cut at that count (``registry/account.charged_prompt_tokens``), priced as the final count
is: at most the estimate's bound of the prompt (``Job.prompt_bound``, its UTF-8 bytes +
8 a message + 16: above any honest count). A node that said nothing (an older node, an
engine that learns the count only at the end: ``openai``) is charged the usual count, as
before. The header is the node's word, as its final ``usage`` is (neither is signed
until the node's receipt, in its final chunk); it is only believed for a cut the client
made, never for the node's own break (a node that claimed the bound and broke off would
escape the usage audit, which judges finished answers only).

**A node that stalls.** Nor is it believed when the node had stalled as the client left
(found 2026-12-06, ``stall35``): a node could claim the bound, send one token and go
quiet; a client that gave up waiting before the stream floor cut the node off (60 s of
grace, then 0.25 tokens a second: ``core/stream_guard.py``) made a client's cut, charged
at the claim: up to ~3× an honest count, paid to the node for a leave it caused. Its part
was stalled when, at the leave, it had sent nothing with output for longer than the floor
allows an event on its own time (:func:`stalled`: ``1 / min_rate``, 4 s, the grace not
counted; :func:`quiet_s`: since its last event with output, else since its part opened,
less the time the gateway spent writing to the client, and less the time its node's
requests lost to each other meanwhile, ``SharedTime``): such a leave is the node's doing, and
the prompt pays the usual count, as a node that said nothing (:func:`believed_at_cut`). An
honest node's tokens come 0.02-1 s apart (``stream_guard``: 1-60 a second) on a box that is
its own; on one loaded by others far more (gemma-3-270m on the 2-core dev box at load 17:
gaps up to 10 s, 0.5 tokens a second, docs/benchmarks.md, money36), so a tighter rule would
misjudge it. One that stalls past 4 s as the client leaves loses only what it was paid
before money34. With the floor off
(``min_rate`` 0) nothing is judged stalled.

**Signed** (since 2026-12-06, ``money36``). The count is believed only when the node signed
it: :data:`HDR_PROMPT_SIGNATURE`, ``<node_key>.<signature>`` (base64url both), the node's
receipt key's Ed25519 signature of ``node-prompt-count ‖ registry_id ‖ node_id ‖ request_id
‖ model ‖ u64(count)`` (``core/receipt.node_prompt_bytes``, its own domain). The gateway
checks it over *its own* values (its registry id, the node it routed to, the request id it
sent, the model, the count the header says: :func:`checked_claim`, one verify, the key must
derive the node's id as a receipt's must); an unsigned or badly signed count is not said
(the usual count, as an older node's). The check is made only when the count is needed,
as a stream its client cut before the node's final chunk is settled
(``registry/send_stream.NodeStream._said_claim``; since 2026-12-06, ttft37: it was made as
the node's stream opened, on the first token's way, for every stream). A believed count goes into the receipt's ``cut`` part
(its ``prompt_tokens``, ``node_key`` and ``node_signature``: :class:`PromptClaim`), which the
ledger entry commits to, so anyone can check offline (``llm-mesh receipt verify``) that the
node said what the payer was charged, and the node cannot deny it: the bound above limited
what an unsigned word could cost (at most the prompt's UTF-8 bytes + slack, ~3× an honest
count), but left a dispute over it the gateway's word against the node's.
"""

from __future__ import annotations

from LLM_Mesh.core.receipt import node_prompt_bytes, unb64url
from LLM_Mesh.core.receipt_check import NodeKeys, PromptClaim

__all__ = ["HDR_PROMPT_SIGNATURE", "HDR_PROMPT_TOKENS", "MAX_DIGITS", "PromptClaim",
           "believed_at_cut", "checked_claim", "claim_header", "quiet_s", "said_prompt_tokens",
           "stalled"]  # fmt: skip

HDR_PROMPT_TOKENS = "X-Mesh-Prompt-Tokens"
HDR_PROMPT_SIGNATURE = "X-Mesh-Prompt-Signature"
MAX_CLAIM_CHARS = 256  # a key (43) + "." + a signature (86): far less
MAX_DIGITS = 12  # more than any prompt's bound (a body of at most 16 MiB: 2^24 bytes)


def said_prompt_tokens(value: str | None) -> int:
    """The count a node's :data:`HDR_PROMPT_TOKENS` says: a whole number written in at most
    :data:`MAX_DIGITS` ASCII digits; 0 (not said) for none or anything else."""
    if value is None:
        return 0
    text = value.strip()
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return 0
    return int(text)


def quiet_s(now: float, since: float, client_s: float, lost_s: float) -> float:
    """The seconds of a node part's own time without output at ``now``: since ``since`` (its
    last event with output, else its part's opening), less ``client_s`` (the time the gateway
    spent writing to the client since: not the node's) and ``lost_s`` (the time its node's
    requests lost to each other since ``since``, ``SharedTime.lost``; before 2026-12-06,
    review35b, since its floor's clock started, so the time shared before a quiet excused
    a stall after it); at least 0."""
    return max(0.0, now - since - max(0.0, client_s) - max(0.0, lost_s))


def stalled(quiet: float, min_rate: float) -> bool:
    """Whether a part ``quiet`` seconds without output (:func:`quiet_s`) has stalled: longer
    than the floor allows an event, ``1 / min_rate`` (its grace not counted); never with the
    floor off (``min_rate`` 0)."""
    return min_rate > 0 and quiet * min_rate > 1.0


def believed_at_cut(said: int, quiet: float, min_rate: float) -> int:
    """The prompt count ``said`` (:func:`said_prompt_tokens`) a stream the client cut pays:
    ``said``, or 0 (not said: the usual count) when its part had :func:`stalled` as the
    client left, the leave then the node's doing (see the module docstring)."""
    return 0 if stalled(quiet, min_rate) else said


def claim_header(node_key: str, signature: str) -> str:
    """The :data:`HDR_PROMPT_SIGNATURE` value: ``<node_key>.<signature>``."""
    return f"{node_key}.{signature}"


def checked_claim(
    said: int,
    value: str | None,
    *,
    registry_id: str,
    node_id: str,
    request_id: str,
    model: str,
    keys: NodeKeys,
) -> PromptClaim | None:
    """The count ``said`` (:func:`said_prompt_tokens`) as a :class:`PromptClaim` when
    ``value`` (the :data:`HDR_PROMPT_SIGNATURE` header) is the signature, by the key of
    ``node_id``, of that count for this registry, request and model; ``None`` (not believed)
    for none, a malformed one, another node's key or a signature that does not verify."""
    if said <= 0 or value is None or len(value) > MAX_CLAIM_CHARS:
        return None
    key_text, dot, sig_text = value.strip().partition(".")
    if not dot:
        return None
    try:
        key = keys.get(key_text, node_id)
        if key is None:  # another node's key (or a forged one)
            return None
        signature = unb64url(sig_text)
        data = node_prompt_bytes(registry_id, node_id, request_id, model, said)
    except ValueError:
        return None
    if not key.verify(signature, data):
        return None
    return PromptClaim(said, key_text, sig_text)
