"""Reading a canary probe's answers: the text a streamed answer spelled and its stated
``usage`` (:func:`stream_answer`), and the probe's counts held to its evidence
(:func:`probe_counts`, ``core/canary_usage.py``); one probe's result (:class:`ProbeResult`). Used by ``registry/canary.py``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.answer_text import choice_fault, chunk_text
from LLM_Mesh.core.canary import DEFAULT_RULE, Answer, Rule, Verdict
from LLM_Mesh.core.canary_departures import DepartureTally
from LLM_Mesh.core.canary_shape import Shape, stops
from LLM_Mesh.core.canary_usage import (
    StatedUsage,
    UsageVerdict,
    check_usage,
    covering_entries,
    kept_tokens,
    stated_usage,
)
from LLM_Mesh.core.client_retry import FIRST_TOKEN_ADVICE, STREAM_ADVICE

__all__ = [
    "ProbeError",
    "ProbeResult",
    "probe_counts",
    "probe_error",
    "record_verdict",
    "stream_answer",
    "stream_text",
]


class ProbeError(Exception):
    """A node gave no usable answer (transport error, non-200, not JSON)."""


#: what a probe's timeout means to the admin reading ``registry canary run`` (the gateway's
#: 504 tells a client what to change in its request, which a probe's reader cannot)
PROBE_TIMEOUT_ADVICE = (
    "no verdict: the node is slow or busy for this probe (its max_tokens drawn as users' "
    "are: up to 512, or none); a node that cannot answer such requests in time should serve "
    "a smaller model"
)


def probe_error(exc: Exception) -> str:
    """A failed probe's detail: the gateway's error, its advice to a client said as what
    it means for a probe (found 2026-12-07, newuser45: "Ask for fewer tokens ..., or stream
    the answer" in the admin's ``canary run``)."""
    said = str(exc)
    for advice in (STREAM_ADVICE, FIRST_TOKEN_ADVICE):
        said = said.replace(advice, PROBE_TIMEOUT_ADVICE)
    return f"{type(exc).__name__}: {said}"


@dataclass(frozen=True)
class ProbeResult:
    """One probe: ``verdict`` is ``pass`` | ``fail`` | ``unverified`` | ``error``."""

    node_id: str
    model: str
    verdict: str
    detail: str = ""
    prompt: str = ""
    verifier: str | None = None
    quarantined: bool = False
    simulated: bool = False  # the node serves the model on a simulated engine (registered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "model": self.model,
            "verdict": self.verdict,
            "detail": self.detail,
            "prompt": self.prompt,
            "verifier": self.verifier,
            "quarantined": self.quarantined,
            "simulated": self.simulated,
        }


async def record_verdict(
    quality: Any, shared: Any, node_id: str, model: str, v: Verdict,
    flag: DepartureTally | None,
) -> Any:  # fmt: skip
    """The probe's verdict ``v`` recorded (``Quality.record``: a failure quarantines). Where
    it was this replica's tallies' ``flag`` (the pair already started afresh) and the record
    failed (the store away), the flag is handed to ``shared`` (``DepartureSync.keep_flag``),
    whose next run writes the quarantine; the error goes on (found 2026-12-06, review36:
    the flag was lost, and with it the evidence)."""
    try:
        return await quality.record(
            node_id, model, ok=v.ok, reason=None if v.ok else f"canary: {v.describe()}"
        )
    except Exception:
        if flag is not None and shared is not None:
            shared.keep_flag(node_id, model, flag)
        raise


def probe_counts(
    got: Answer | None,
    text: str | None,
    streamed_usage: StatedUsage | None,
    reference: Answer,
    cut: Answer,
    shape: Shape,
    rule: Rule = DEFAULT_RULE,
) -> UsageVerdict | None:
    """The probe's ``usage`` held to its evidence (``core/canary_usage.py``): a non-streamed
    answer's completion to its own log-probability entries, a text-only one's (a stream, or
    no ``logprobs`` asked) to the entries of
    ``cut`` (the reference cut to its length) that spell its text; the prompt to the
    verifier's count in ``reference`` (asked with the same prompt or messages). A greedy
    text-only answer's count is held to one token each of the reference's first tokens an
    honest node emits as they are (``canary_usage.kept_tokens``, up to the first near tie
    that may spell the text otherwise, ``rule.stream_tie_margin``; since canary35)."""
    longest_stop = max((len(s.encode("utf-8")) for s in stops(shape)), default=0)
    if got is not None:
        usage, entries, covered = got.usage, len(got.tokens), None
    else:
        usage, entries = streamed_usage, None
        kept = 0 if shape.sampled else kept_tokens(cut.tokens, rule.stream_tie_margin)
        covered = covering_entries(text or "", [t.token for t in cut.tokens], kept)
    return check_usage(
        usage, reference.usage, entries=entries, reference_entries=covered,
        stop_bytes=longest_stop,
    )  # fmt: skip


def stream_text(sse: bytes) -> str:
    """The text an SSE answer spelled (:func:`stream_answer`)."""
    return stream_answer(sse)[0]


def stream_answer(sse: bytes) -> tuple[str, StatedUsage | None]:
    """The text an SSE answer spelled (completion ``text`` or chat ``delta.content``) and
    the counts of its last ``usage``; an error event raises :class:`ProbeError` (no
    verdict: the stream broke)."""
    out: list[str] = []
    usage: StatedUsage | None = None
    for line in sse.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ProbeError("the stream is not JSON events") from exc
        if not isinstance(obj, dict):
            continue
        if "error" in obj:
            raise ProbeError(f"the stream ended with an error: {obj['error']}")
        if (why := choice_fault(obj)) is not None:  # a choice the probe did not ask for:
            raise ProbeError(f"the stream broke the protocol: {why}")  # as the gateway has
        out.append(chunk_text(obj))  # the receipts' rule (core/answer_text.py)
        usage = stated_usage(obj) or usage
    return "".join(out), usage
