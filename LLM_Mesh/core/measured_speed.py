"""What a node's own answers measured, per model, since it started.

Pure. Every answer's ``mesh`` object carries its measured decode speed (``tokens_per_s``:
completion tokens over the time from the first token to the end) and time to first token
(``ttft_ms``); :class:`SpeedBook` keeps, per model, how many answers were measured, the
latest figures and an average of the recent ones, for ``/mesh/info``'s models
(``measured``), ``llm-mesh node info`` and ``llm-mesh node plan`` (beside the estimate of
``core/plan.py``).

**Which answers.** Finished answers only (not failed, not cancelled) with at least
:data:`MIN_MEASURED_TOKENS` completion tokens and a decode time above zero: over a few
tokens the speed is mostly timer and scheduling noise (a 1-token answer has no decode time
at all), and its time to first token is left out with it, so both figures come from the same
answers.

**Average.** An exponentially weighted average over answers (not time):
``avg += (sample - avg) * max(ALPHA, 1 / n)``, so the first answers are a plain mean and
later ones weigh :data:`ALPHA` each (the last ~10 answers count most); O(1) per answer,
no lock (the node counts on its event loop, as its other counters).

**Simulated.** A simulated engine's figures are what its simulation slept, not this
machine's speed: the wire says ``simulated: true`` and the CLI labels them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ALPHA", "MIN_MEASURED_TOKENS", "ModelSpeed", "SpeedBook", "measurable"]

MIN_MEASURED_TOKENS = 8
ALPHA = 0.2


def measurable(completion_tokens: int, tokens_per_s: float | None) -> bool:
    """Whether an answer's figures count (see the module's docstring)."""
    return completion_tokens >= MIN_MEASURED_TOKENS and tokens_per_s is not None


class ModelSpeed:
    """One model's measured answers: count, latest and average figures."""

    __slots__ = ("answers", "latest_tokens_per_s", "latest_ttft_ms", "tokens_per_s", "ttft_ms")

    def __init__(self) -> None:
        self.answers = 0
        self.tokens_per_s = 0.0
        self.ttft_ms = 0.0
        self.latest_tokens_per_s = 0.0
        self.latest_ttft_ms = 0.0

    def observe(self, tokens_per_s: float, ttft_ms: float) -> None:
        self.answers += 1
        weight = max(ALPHA, 1.0 / self.answers)
        self.tokens_per_s += (tokens_per_s - self.tokens_per_s) * weight
        self.ttft_ms += (ttft_ms - self.ttft_ms) * weight
        self.latest_tokens_per_s = tokens_per_s
        self.latest_ttft_ms = ttft_ms

    def wire(self, simulated: bool) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "tokens_per_s": round(self.tokens_per_s, 3),
            "ttft_ms": round(self.ttft_ms, 3),
            "latest_tokens_per_s": round(self.latest_tokens_per_s, 3),
            "latest_ttft_ms": round(self.latest_ttft_ms, 3),
            "simulated": simulated,
        }


class SpeedBook:
    """Per model, what its answers measured (:class:`ModelSpeed`)."""

    __slots__ = ("_models",)

    def __init__(self) -> None:
        self._models: dict[str, ModelSpeed] = {}

    def observe(
        self, model: str, completion_tokens: int, tokens_per_s: float | None, ttft_ms: float
    ) -> bool:
        """Count one finished answer's figures; False (nothing counted) when it had too few
        tokens to measure (:func:`measurable`)."""
        if tokens_per_s is None or not measurable(completion_tokens, tokens_per_s):
            return False
        speed = self._models.get(model)
        if speed is None:
            speed = self._models[model] = ModelSpeed()
        speed.observe(tokens_per_s, ttft_ms)
        return True

    def wire(self, model: str, simulated: bool) -> dict[str, Any] | None:
        """``/mesh/info``'s ``measured`` of a model: None before its first measured answer."""
        speed = self._models.get(model)
        return None if speed is None else speed.wire(simulated)
