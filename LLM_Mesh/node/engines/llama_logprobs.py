"""Top log-probabilities of each generated token, read from llama.cpp's logits.

llama-cpp-python returns ``logprobs`` only for a ``Llama`` built with
``logits_all=True``, which keeps ``n_ctx × n_vocab`` floats (4 GiB for a
262k-vocabulary model at 4096 tokens). Instead a :class:`LogprobRecorder` is
passed as a logits processor: llama.cpp's sampler chain calls it with the raw
logits of every position it samples, before any other sampler, so it sees
exactly what the greedy sampler picks from. It keeps, per generated token, the
log-softmax of the top ``n`` candidates and of the chosen token (known at the
next step from the input ids, or as the arg max for the last one when
decoding greedily).

numpy comes with llama-cpp-python; it is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from LLM_Mesh.core.canary import TokenLogprob

MAX_TOP_LOGPROBS = 20
"""OpenAI's limit for ``top_logprobs`` (chat) and the most ``logprobs`` we return."""


class LogprobRecorder:
    """A llama-cpp-python logits processor that records top log-probabilities.

    ``detokenize`` turns one token id into its text (``Llama.detokenize``).
    Call :meth:`finish` after the generation to get one :class:`TokenLogprob`
    per generated token.
    """

    def __init__(self, n: int, detokenize: Callable[[int], str]) -> None:
        self.n = max(0, min(n, MAX_TOP_LOGPROBS))
        self._detok = detokenize
        self._steps: list[tuple[Any, Any, int]] = []  # (top ids, their logprobs, arg max id)
        self._chosen: list[tuple[int, float]] = []  # the chosen token of each finished step
        self._last: Any = None  # the newest step's full log-softmax

    def _settle(self, chosen: int) -> None:
        """The newest step chose ``chosen``: keep its log-probability, drop the rest."""
        if self._last is not None:
            self._chosen.append((chosen, float(self._last[chosen])))
            self._last = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._last is not None:  # the previous step's pick is the newest input id
            self._settle(int(input_ids[-1]))
        logits = np.asarray(scores, dtype=np.float64)
        m = float(logits.max())
        lp = logits - (m + float(np.log(np.exp(logits - m).sum())))
        k = max(self.n, 1)
        top = np.argpartition(-lp, k - 1)[:k]
        top = top[np.argsort(-lp[top], kind="stable")]
        self._steps.append((top, lp[top], int(top[0])))
        self._last = lp
        return scores

    def finish(self, last_id: int | None = None) -> list[TokenLogprob]:
        """One entry per generated token; ``last_id``: the last token chosen (else the arg max)."""
        if self._last is not None:
            self._settle(last_id if last_id is not None else self._steps[-1][2])
        out: list[TokenLogprob] = []
        for (top_ids, top_lps, _), (chosen, chosen_lp) in zip(
            self._steps, self._chosen, strict=False
        ):
            top = tuple(
                (self._detok(int(t)), float(v))
                for t, v in zip(top_ids[: self.n], top_lps[: self.n], strict=False)
            )
            out.append(TokenLogprob(self._detok(chosen), chosen_lp, top))
        return out

    def steps(self) -> int:
        return len(self._steps)
