"""A node's trust score: canary results, success rate, unexplained speed, failures.

Pure: the registry gathers the inputs (``registry/quality.py``) and routing uses
the score (``trusted_only`` sends a request only to nodes at or above the
threshold). The score is a product of factors in [0, 1]:

* **canary** — 0 while the node is quarantined (a failed probe, not cleared);
  otherwise ``0.5 + 0.5 × passed / (passed + 2)``: unverified (no probe passed)
  is 0.5, one pass 0.67, four passes 0.83, so trust is earned by passing probes;
  1 for a **verifier** (a node the admin marked with ``llm-mesh registry nodes trust``:
  the reference the probes compare others against, for the models it serves with a
  declared sha256, and so not probed against itself) unless it is quarantined (another verifier's probe, the
  usage audit): before 2026-12-07 it scored 0.5, and ``trusted_only`` never reached the
  very nodes the others' trust is measured against;
* **success** — the gateway's success rate of the node (its router EWMA);
* **failures** — ``1 - failures / requests`` over the node's recorded requests
  (errors and streams it broke off);
* **speed** — 0.5 when the node generated faster than its declared hardware can
  explain (tokens/s above what memory bandwidth allows for the model's file size:
  :func:`speed_explained`), else 1.

With the default threshold (:data:`DEFAULT_THRESHOLD`, 0.6) a node needs at least
one passed canary and a clean record to be trusted; an unverified node (0.5) is
not, a quarantined one never is; a verifier with a clean record is.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_THRESHOLD = 0.6
CPU_BANDWIDTH_BPS = 200e9
"""Generous memory bandwidth of a CPU-only machine (bytes/s): 8-channel DDR5 is ~300 GB/s."""
GPU_BANDWIDTH_BPS = 5e12
"""Generous bandwidth with a GPU (an H200 is 4.8 TB/s)."""
SPEED_SLACK = 2.0
"""How far above the bandwidth bound a measured speed may be before it is unexplained."""


@dataclass(frozen=True)
class TrustInputs:
    canary_passed: int = 0
    quarantined: bool = False
    success_rate: float | None = None  # None: no requests yet (counts as 1)
    requests: int = 0
    failures: int = 0
    speed_unexplained: bool = False
    verifier: bool = False  # the admin's reference for the model(s) scored


@dataclass(frozen=True)
class TrustScore:
    score: float
    canary: float
    success: float
    failures: float
    speed: float

    def trusted(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        return self.score >= threshold


def trust_score(x: TrustInputs) -> TrustScore:
    if x.quarantined:
        canary = 0.0
    elif x.verifier:
        canary = 1.0
    else:
        canary = 0.5 + 0.5 * x.canary_passed / (x.canary_passed + 2)
    success = 1.0 if x.success_rate is None else min(1.0, max(0.0, x.success_rate))
    fails = 1.0 if x.requests <= 0 else 1.0 - min(x.failures, x.requests) / x.requests
    speed = 0.5 if x.speed_unexplained else 1.0
    return TrustScore(round(canary * success * fails * speed, 4), canary, success, fails, speed)


def speed_explained(tokens_per_s: float | None, model_bytes: int | None, *, has_gpu: bool) -> bool:
    """Whether ``tokens_per_s`` is possible for a model file of ``model_bytes``.

    Generating a token reads every weight once, so tokens/s ≤ bandwidth / bytes;
    beyond :data:`SPEED_SLACK` times that, the node cannot be running that file
    (canned text, a much smaller model). Unknown speed or size: explained.
    """
    if tokens_per_s is None or not model_bytes or model_bytes <= 0:
        return True
    bandwidth = GPU_BANDWIDTH_BPS if has_gpu else CPU_BANDWIDTH_BPS
    return tokens_per_s <= SPEED_SLACK * bandwidth / model_bytes
