"""The mix of keyed and anonymous requests per model at a gateway process, and the class a
canary probe carries drawn from it, so that the class tells a node nothing about probes.

A node learns which requests are keyed (``core/priority.py``). Probes are anonymous
requests of the community pool (``registry/canary.py``); had they all gone as ordinary,
a node could answer keyed requests (paying users) with a cheaper model and every
ordinary one honestly, and never be caught. So a probe carries the keyed class with the
probability that a request for its model here is keyed (:func:`probe_keyed`): the share
of each class among probes is the share among users' requests, and a request of either
class is a probe with the same probability (the class and "is a probe" are independent).
A probe of the keyed class is paid as a keyed user's request is, from a ``user:`` account
(a probe account, ``registry/canary.py``) where the admin funded one, else by the pool.

The same for the client's own request id (``X-Request-Id`` / ``Idempotency-Key``): the
node never sees it (it gets a fresh ``req-`` id), but the public ledger's key of a request
whose client named it is ``c-…``, of one it did not the node's own ``req-`` id. A node
reading the ledger after its answer would see every probe among the ``req-`` ones, had no
probe carried an id. The ledger names the payer, so what a probe must match is the requests
of its payer's kind: :meth:`TrafficMix.named_share` is the share of the model's anonymous
(or, ``keyed=True``, keyed) requests that carried an id, and a probe paid by the pool (a
probe account) carries one that often (:func:`probe_keyed` draws it too).

:class:`TrafficMix` counts the classes of the requests sent on per model, halving every
count once they reach :data:`WINDOW` together: the mix of about the last ``WINDOW``
requests, a dict look-up and a few additions per request. Pure: the caller notes and
draws.
"""

from __future__ import annotations

__all__ = ["MAX_MODELS", "WINDOW", "TrafficMix", "probe_keyed"]

#: requests per model the mix is about (both counts halved past it)
WINDOW = 1024
#: models kept (cleared past it: models are the catalog's or served ones, few)
MAX_MODELS = 4096


class TrafficMix:
    """Keyed and anonymous requests per model (module docstring)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        # model -> [keyed, all, anonymous with the client's own id, keyed with it]
        self._counts: dict[str, list[int]] = {}

    def note(self, model: str, keyed: bool, named: bool = False) -> None:
        """A request sent on: ``keyed`` (an API key's), ``named`` (its client's own id)."""
        counts = self._counts.get(model)
        if counts is None:
            if len(self._counts) >= MAX_MODELS:
                self._counts.clear()
            counts = self._counts[model] = [0, 0, 0, 0]
        if keyed:
            counts[0] += 1
        if named:
            counts[3 if keyed else 2] += 1
        counts[1] += 1
        if counts[1] >= WINDOW:
            for i in range(4):
                counts[i] //= 2

    def keyed_share(self, model: str) -> float:
        """The share of the model's requests that were keyed (0 with none seen)."""
        counts = self._counts.get(model)
        if counts is None or counts[1] <= 0:
            return 0.0
        return counts[0] / counts[1]

    def named_share(self, model: str, keyed: bool = False) -> float:
        """The share of the model's anonymous (``keyed``: keyed) requests that carried
        their client's own request id (0 with none seen)."""
        counts = self._counts.get(model)
        if counts is None:
            return 0.0
        named, of = (counts[3], counts[0]) if keyed else (counts[2], counts[1] - counts[0])
        return named / of if of > 0 else 0.0


def probe_keyed(share: float, draw: float) -> bool:
    """Whether a probe carries the keyed class (or its client's own id): ``draw`` (uniform
    in [0, 1)) below the keyed (named) ``share`` of its model's requests. Callers draw only where ``share`` is strictly
    between 0 and 1 (the answer is the same without a draw)."""
    return draw < share
