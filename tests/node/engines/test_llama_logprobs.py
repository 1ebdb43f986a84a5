"""LogprobRecorder: top log-probabilities from raw logits, as llama.cpp's sampler hands them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LLM_Mesh.node.engines.llama_logprobs import MAX_TOP_LOGPROBS, LogprobRecorder


def log_softmax(x: list[float]) -> list[float]:
    m = max(x)
    s = math.log(sum(math.exp(v - m) for v in x))
    return [v - m - s for v in x]


def test_records_top_candidates_and_the_chosen_tokens() -> None:
    names = ["a", "b", "c", "d"]
    rec = LogprobRecorder(2, lambda t: names[t])
    steps = [[1.0, 3.0, 2.0, 0.0], [0.0, 0.5, 0.2, 4.0], [2.0, 2.0, 1.0, 0.0]]
    prompt = [7, 7, 7]
    ids = list(prompt)
    chosen = [1, 2, 0]  # step 2 picked "c", not its arg max (sampling): taken from the input ids
    for i, logits in enumerate(steps):
        out = rec(np.array(ids, dtype=np.intc), np.array(logits, dtype=np.float32))
        assert np.array_equal(out, np.array(logits, dtype=np.float32))  # logits unchanged
        ids.append(chosen[i])
    toks = rec.finish(last_id=0)
    assert [t.token for t in toks] == ["b", "c", "a"]
    lp1 = log_softmax(steps[1])
    assert toks[1].logprob == pytest.approx(lp1[2], abs=1e-6)
    assert [n for n, _ in toks[1].top] == ["d", "b"]
    assert toks[1].top[0][1] == pytest.approx(lp1[3], abs=1e-6)


def test_last_token_defaults_to_the_arg_max_and_n_is_capped() -> None:
    rec = LogprobRecorder(100, str)
    assert rec.n == MAX_TOP_LOGPROBS
    rec(np.array([1]), np.arange(30, dtype=np.float32))
    (tok,) = rec.finish()
    assert tok.token == "29" and len(tok.top) == 20
    assert tok.logprob == pytest.approx(log_softmax([float(i) for i in range(30)])[29], abs=1e-6)


def test_zero_top_keeps_only_the_chosen_token() -> None:
    rec = LogprobRecorder(0, str)
    rec(np.array([1]), np.array([0.0, 1.0], dtype=np.float32))
    (tok,) = rec.finish()
    assert tok.top == () and tok.token == "1"


def test_the_last_token_is_the_one_the_watched_sampler_returned() -> None:
    """Sampling, the last step's pick is never in the input ids (it is not evaluated): the
    watched ``Llama.sample`` says which it was (found 2026-12-05: the arg max was reported,
    so a sampled answer's tokens did not spell its text)."""
    rec = LogprobRecorder(2, str)
    picks = iter([0, 2])
    sample = rec.watch(lambda *a, **k: next(picks))
    ids = [9]
    for logits in ([3.0, 1.0, 0.0], [3.0, 1.0, 0.5]):
        rec(np.array(ids), np.array(logits, dtype=np.float32))
        ids.append(sample(idx=0))
    toks = rec.finish()
    assert [t.token for t in toks] == ["0", "2"]  # not "0" (the arg max) for the last
    assert toks[1].logprob == pytest.approx(log_softmax([3.0, 1.0, 0.5])[2], abs=1e-6)
