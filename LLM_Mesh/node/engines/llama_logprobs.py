"""Top log-probabilities of each generated token, read from llama.cpp's logits.

llama-cpp-python returns ``logprobs`` only for a ``Llama`` built with
``logits_all=True``, which keeps ``n_ctx × n_vocab`` floats (4 GiB for a
262k-vocabulary model at 4096 tokens). Instead a :class:`LogprobRecorder` is
passed as a logits processor: llama.cpp's sampler chain calls it with the raw
logits of every position it samples, before any other sampler, so it sees
exactly what the greedy sampler picks from. It keeps, per generated token, the
log-softmax of the top ``n`` candidates and of the chosen token (known at the
next step from the input ids; for the last one, the token the sampler returned where
:meth:`LogprobRecorder.watch` wraps ``Llama.sample``, else the arg max, what greedy
decoding picks). Found 2026-12-05: a sampled answer's last entry was the arg max, not the
token sampled, so its tokens did not spell its text and an honest node failed a sampled
probe (``core/canary_sampled.py``).

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
        self.sampled: int | None = None
        """The newest token the watched sampler returned (:meth:`watch`)."""

    def watch(self, sample: Callable[..., int]) -> Callable[..., int]:
        """``sample`` (``Llama.sample``) noting each token it returns, so the last step's
        pick is the token sampled (the input ids never show it: it is not evaluated)."""

        def noted(*args: Any, **kwargs: Any) -> int:
            token = sample(*args, **kwargs)
            self.sampled = int(token)
            return token

        return noted

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
        """One entry per generated token; ``last_id``: the last token chosen (else the one
        the watched sampler returned last, else the arg max)."""
        if last_id is None:
            last_id = self.sampled
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
