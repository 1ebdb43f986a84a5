"""How often a node leaves the reference's arg max on sampled probes: a test across probes.

``core/canary_sampled.py`` judges one sampled probe along the prefix it shares with the
greedy reference, up to and including the first position ``d`` where the node's token is
not the reference's; a pick at ``d`` need only be plausible at the probe's temperature
(``tempered_most``). A node that runs the real model for its first token only, always
leaves the arg max there and serves a cheaper model after, passes each probe at 0.7–1.0
(such a pick is plausible once). Over many probes it is not: an honest sampler at
temperature ``T`` leaves the arg max at a position with a probability the reference's
numbers bound, and this module accumulates, per (node, model), the evidence that the
node leaves it more often than that.

Per compared position ``i`` (``0..d``, or the shared length where the node never left),
:func:`leave_bound` is an upper bound ``q_i`` on the chance an honest sampler at ``T``
draws another token than the reference's pick ``c``:

* the honest node's distribution ``π`` is taken to be within a factor ``e^±margin`` of the
  reference's ``p`` token by token (``margin`` 0.2: ten times the largest honest difference
  measured, 0.02, gemma-3-270m; a node past it at ``c`` fails the per-token rule anyway);
* tempered, ``P_T(c) = π_c^{1/T} / Σ π_j^{1/T}``; the listed tokens enter as they are, the
  unlisted ones (mass ``U = 1 - Σ listed``, each at most the list's last ``p_min``) by
  ``Σ p_j^{1/T} ≤ U · p_min^{1/T - 1}`` (``T ≤ 1``: the sum of ``p^{1/T}`` under a total
  and a cap is largest with the mass in pieces of the cap); so
  ``q = B e^{2·margin/T} / (a + B e^{2·margin/T})``, ``a = p_c^{1/T}``, ``B`` the bound on
  the others; 1 (no evidence) above ``T = 1`` or without a list; never below
  ``floor`` (10⁻⁶: one departure alone is never enough);
* a sampler's truncation (top-k, top-p, min-p) only removes tokens: where it keeps ``c``
  the others' share falls, so ``q`` still bounds it; it removes ``c`` only where ``c``'s
  tempered share is already at most ``1 - top_p`` (or ``1/(k+1)``; min-p at ≤ ``e^-2·margin``
  never), i.e. where ``q ≥`` :attr:`DepartureTest.alternative` (0.8 ≤ every ``top_p`` a
  probe or llama.cpp's default sends, 0.9/0.95), where the factor below is exactly 1.

The evidence is a likelihood ratio against an alternative that leaves the arg max with
chance ``r_i = max(q_i, alternative)``: a departure multiplies it by ``r_i / q_i``, a
position that kept ``c`` by ``(1 - r_i) / (1 - q_i)``. Under an honest sampler (leaving
with chance at most ``q_i``, each draw fresh given the shared prefix) each factor's
expectation is at most 1, so the product over any run of probes is a nonnegative
supermartingale and, by Ville's inequality, reaches ``e^h`` with chance at most ``e^-h``.
:class:`DepartureTally` keeps the CUSUM of its logarithm over probes (the largest sum over
runs of probes ending now: ``max(0, s + x)``), so a node honest for a year builds no credit;
it flags at ``h`` = :attr:`DepartureTest.threshold` = ln 10¹², so by a union bound over the
runs' first probes an honest node is flagged with chance at most ``n · 10⁻¹²`` over its
first ``n`` sampled probes of a model: ≤ 10⁻⁶ for a million (at the budget's rate, about
1,700 sampled probes a year, centuries). A node leaving the arg max at once on every probe
adds ``ln(r/q_0)`` a probe: flagged after 13 sampled probes at 0.7–1.0 where the first
token is a 90 % one, 39 on the sim's flat distributions at the mix's temperatures, about
43 (82 at 0.7–1.0 alone) after the public pool's prompts on gemma-3-270m, whose first
tokens are flat (measured 2026-12-05, tests).

Each kind of answer (:func:`kind_of`: with log-probabilities, streamed, or not streamed
without them) has a CUSUM of its own too (:class:`Departures`): with one tally a pair, a
node lying to one kind alone was credited by its honest answers to the others, ``K ≤ 0``
a probe, and never flagged (found 2026-12-06, ``probe33``: a sim node lying to sampled
requests without ``logprobs`` alone, 30 % of non-streamed probes, passed 300 of 300; now
flagged after 195, its 59th lie). A probe's kind is drawn by the prober before the node
answers, so each kind's probes are a subsequence the honest node's draws do not choose:
its product is a supermartingale as well, and the kinds' runs start at distinct probes,
so the kinds' tallies together flag an honest node with chance at most ``n · 10⁻¹²`` too,
``2n · 10⁻¹²`` with the pair's. So has each slice of a probe's shape (:func:`slices_of`:
endpoint, temperature band, ``top_p`` sent), within its kind and over every kind (found
2026-12-06, ``canary34``: a sim node lying to sampled requests with a ``top_p`` below 1
alone, in every kind, passed 300 of 300; now flagged after 194, its 48th lie); with these
8 tallies a probe, each flags at ``h + ln 4`` (:class:`Departures`) so that the bound stays
``2n · 10⁻¹²`` (the figures above were measured at ``h`` alone: 13 probes stay 13, the
sim's liar 38, not 37). With :attr:`Departures.own` (replicas sharing the tallies through
the store: each one's own probes' tallies too, found 2026-12-06, ``review35b``) it is twice
that, ``4n · 10⁻¹²``.

Not counted (their draws are not fresh, or not from the reported distribution): probes
that send a common ``seed`` (:data:`~LLM_Mesh.core.canary_shape.SEEDS`: the same prompt and
seed draw the same tokens again; measured on gemma-3-270m: seed 1 at 0.3, 0.7 and 1.0 drew
one tail uniform thrice, 5.5 nats of "evidence" from an honest node; a probe's random seed
below 2³¹ is fresh and counts: else a node lying only to seeded requests was never counted,
found 2026-12-05, ``attack31b``) or a nonzero penalty (the reported numbers are the
model's before penalties). Pure: no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_shape import SEEDS, Shape

__all__ = [
    "DEFAULT_TEST",
    "KINDS",
    "SLICES",
    "TALLIES",
    "DepartureTally",
    "DepartureTest",
    "Departures",
    "Evidence",
    "Kept",
    "Key",
    "counted",
    "kind_of",
    "leave_bound",
    "probe_evidence",
    "slices_of",
]


@dataclass(frozen=True)
class DepartureTest:
    """The test's constants (see the module docstring)."""

    alternative: float = 0.8
    """The alternative's chance of leaving the arg max (at most every ``top_p`` sent)."""
    margin: float = 0.2
    """Largest honest difference from the reference's numbers, per token (natural log)."""
    threshold: float = math.log(1e12)
    """The CUSUM's bound: an honest node's chance of a flag is ``n · e^-threshold``."""
    floor: float = 1e-6
    """The least ``q`` counted (one departure alone adds at most ``ln(0.8 / 10⁻⁶)``)."""


DEFAULT_TEST = DepartureTest()

Key = tuple[str, str, str, str]
"""A tally's key in every table (:meth:`Departures.get`): (node, model, kind, slice), ``""``
where it has none (the pair's: both; a kind's: no slice)."""


def leave_bound(
    ref: TokenLogprob, temperature: float, margin: float = DEFAULT_TEST.margin
) -> float:
    """An upper bound on the chance that an honest sampler at ``temperature`` draws another
    token than ``ref.token`` where the reference's numbers are ``ref`` (module docstring)."""
    if not ref.top or not 0.0 < temperature <= 1.0 or not math.isfinite(ref.logprob):
        return 1.0
    values = [v for _, v in ref.top if math.isfinite(v)]
    if not values:
        return 1.0
    mine = max([ref.logprob] + [v for t, v in ref.top if t == ref.token and math.isfinite(v)])
    top = max(max(values), mine)
    # in logarithms, scaled by the best's p^{1/T}: total at any T > 0 (found 2026-12-06,
    # probe33: e^{2·margin/T} overflowed below T ≈ 0.00056, 1/e^{p_min} at p_min ≈ e^-745);
    # below 10⁻³⁰⁰ as at it (1/T overflows; the bound is at its limit, 0 or about 1, there)
    temperature = max(temperature, 1e-300)
    logs = [(v - top) / temperature for t, v in ref.top if t != ref.token and math.isfinite(v)]
    lowest = min(values)
    unlisted = max(0.0, 1.0 - sum(math.exp(v) for v in values))
    if unlisted > 0.0:  # U · p_min^{1/T - 1}
        logs.append(math.log(unlisted) - lowest + (lowest - top) / temperature)
    logs = [x for x in logs if x > -math.inf]  # a term of e^-inf adds nothing
    if not logs:
        return 0.0
    most = max(logs)
    others = most + math.log(sum(math.exp(x - most) for x in logs)) + 2.0 * margin / temperature
    x = (mine - top) / temperature - others  # log(own / others)
    if x >= 0.0:  # others / (own + others), without overflow either way
        return math.exp(-x) / (1.0 + math.exp(-x))
    return 1.0 / (1.0 + math.exp(x))


def counted(shape: Shape) -> bool:
    """Whether a probe of ``shape`` counts: sampled at ``T ≤ 1``, no common ``seed`` (its
    draws repeat; a random one is fresh), no nonzero penalty (its draws are not from the
    reported numbers)."""
    fields = dict(shape.sampling)
    penalties = (fields.get(k) or 0 for k in ("presence_penalty", "frequency_penalty"))
    seed = fields.get("seed")
    return (
        0.0 < shape.temperature <= 1.0
        and (seed is None or seed not in SEEDS)
        and not any(penalties)
        and not any(k.endswith("penalty") and v for k, v in shape.sampler)
    )


@dataclass(frozen=True)
class Evidence:
    """One probe's evidence: the log of its likelihood ratio, the positions compared, and
    the first position where the node left the reference's pick (``None``: never)."""

    log_ratio: float
    positions: int
    left_at: int | None


def probe_evidence(
    reference: Answer, answer: Answer, temperature: float, test: DepartureTest = DEFAULT_TEST
) -> Evidence:
    """The evidence of a sampled ``answer`` (already judged by ``compare_sampled``) against
    the greedy ``reference``: every shared position up to and including the first whose
    token differs (an answer that ended early, all greedy, adds nothing for its end)."""
    total = 0.0
    shared = min(len(reference.tokens), len(answer.tokens))
    for i in range(shared):
        ref = reference.tokens[i]
        q = max(test.floor, leave_bound(ref, temperature, test.margin))
        r = max(q, test.alternative)
        if answer.tokens[i].token != ref.token:
            return Evidence(total + math.log(r / q), i + 1, i)
        if r > q:
            total += math.log((1.0 - r) / (1.0 - q))
    return Evidence(total, shared, None)


KINDS = {"logprobs": "ones with log-probabilities", "stream": "streamed ones",
         "text": "ones without log-probabilities"}  # fmt: skip
"""The kinds of answer a sampled probe gets (:func:`kind_of`), each with a CUSUM of its own."""


def kind_of(shape: Shape) -> str:
    """The kind of answer a probe of ``shape`` gets: ``stream``, ``text`` (not streamed,
    no ``logprobs`` asked) or ``logprobs``."""
    return "stream" if shape.stream else "text" if not shape.logprobs else "logprobs"


SLICES = {"endpoint": "the endpoint", "temperature": "the temperature's band",
          "top_p": "the top_p sent"}  # fmt: skip
"""The dimensions of a probe's shape each kind's probes are sliced along (:func:`slices_of`),
each slice with a CUSUM of its own."""

TALLIES = 2 + 2 * len(SLICES)
"""The tallies a counted probe adds to (:class:`Departures`)."""


def slices_of(shape: Shape) -> tuple[str, ...]:
    """The slices (one a dimension of :data:`SLICES`) a probe of ``shape`` is in, within its
    kind: ``endpoint=chat|completions``, ``temperature=0.2-0.5|0.6-0.8|0.9-1`` (the bands of
    :data:`~LLM_Mesh.core.canary_shape.TEMPERATURES`), ``top_p=none|1|<1`` (what the body
    carries: a no-op ``top_p: 1`` or a sampled probe's)."""
    t = shape.temperature
    band = "0.2-0.5" if t <= 0.5 else "0.6-0.8" if t <= 0.8 else "0.9-1"
    sent = {**dict(shape.extras), **dict(shape.sampler)}.get("top_p")
    top_p = "none" if sent is None else "1" if sent >= 1 else "<1"
    endpoint = "chat" if shape.chat else "completions"
    return (f"endpoint={endpoint}", f"temperature={band}", f"top_p={top_p}")


@dataclass
class DepartureTally:
    """One (node, model)'s CUSUM of the evidence (``max(0, score + log_ratio)`` a probe),
    over every sampled probe or (``kind``) over those of one kind of answer alone."""

    score: float = 0.0
    probes: int = 0
    """Sampled probes counted since the score was last 0."""
    departures: int = 0
    """Of them, those that left the reference's pick."""
    at_first: int = 0
    """Of those, the ones that left it at the first position."""
    kind: str = ""
    """``""``: every sampled probe; else one of :data:`KINDS` alone."""
    slice: str = ""
    """``""``: every probe of its kind; else one slice of them alone (:func:`slices_of`)."""
    threshold: float = DEFAULT_TEST.threshold
    """The score it flags at (:meth:`Departures.threshold`)."""

    def add(self, ev: Evidence) -> None:
        self.score = self.score + ev.log_ratio
        if self.score <= 0.0:
            self.score, self.probes, self.departures, self.at_first = 0.0, 0, 0, 0
            return
        self.probes += 1
        if ev.left_at is not None:
            self.departures += 1
            self.at_first += ev.left_at == 0

    def describe(self, test: DepartureTest = DEFAULT_TEST) -> str:
        del test  # the tally's own threshold (:meth:`Departures.threshold`)
        parts = [KINDS.get(self.kind, self.kind)] if self.kind else []
        parts += [self.slice] if self.slice else []
        which = f" ({', '.join(parts)} alone)" if parts else ""
        h = self.threshold
        return (
            f"sampled_departures: log-likelihood ratio {self.score:.1f} ≥ "
            f"{h:.1f} (honest chance ≤ e^-{h:.1f} a run) over "
            f"{self.probes} sampled probes{which}, {self.departures} leaving the reference's "
            f"arg max ({self.at_first} at the first token)"
        )


class Kept(OrderedDict[Any, DepartureTally]):
    """A table of tallies, in the order last written, of at most ``cap``: past it the
    lowest score goes first (ties: the least recently written), never the one just written
    (found 2026-12-06, ``slice34``: the least recently written went first, so a flood of
    many node ids' small tallies pushed out a liar's high one, its evidence lost; now a
    tally goes only where ``cap`` others score at least as much). A heap of (score, write)
    finds it, its stale entries skipped and compacted past twice the table; a key's write
    mark (``_at``) goes with its last heap entry, so the marks are at most the heap's
    (found 2026-12-06, ``review34b``: an evicted key's mark stayed, one per id ever
    written, unbounded under a flood of ids)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = max(1, cap)
        self._heap: list[tuple[float, int, Any]] = []
        self._at: dict[Any, int] = {}
        self._writes = 0

    def put(self, key: Any, tally: DepartureTally) -> None:
        """Keep ``tally`` as ``key``'s (last written), then drop past ``cap``."""
        self[key] = tally
        self.move_to_end(key)
        self._writes += 1
        self._at[key] = self._writes
        heapq.heappush(self._heap, (tally.score, self._writes, key))
        if len(self._heap) > 2 * len(self) + 64:
            self._at = {k: self._at[k] for k in self}
            self._heap = [(t.score, self._at[k], k) for k, t in self.items()]
            heapq.heapify(self._heap)
        mine = None
        while len(self) > self.cap:  # at least one other than ``key``: cap ≥ 1
            entry = heapq.heappop(self._heap)
            at = self._at.get(entry[2])
            if entry[2] not in self or at != entry[1]:
                if at == entry[1]:  # its last entry, the key gone: its mark goes too
                    del self._at[entry[2]]
                continue  # stale: written again since, or dropped
            if entry[2] == key:
                mine = entry
                continue
            del self[entry[2]]
            del self._at[entry[2]]  # (found 2026-12-06, review34b: every mark was kept)
        if mine is not None:
            heapq.heappush(self._heap, mine)


class Departures:
    """Every (node, model)'s :class:`DepartureTally` over all its sampled probes
    (``tallies``), over each kind of answer alone (``kinds``, keyed (node, model, kind):
    found 2026-12-06, probe33, a node lying to one kind alone was credited by its honest
    answers to the others and never flagged) and over each slice of a kind alone
    (``slices``, keyed (node, model, kind, slice): found 2026-12-06, canary34, a node lying
    to one endpoint, one temperature band or one ``top_p`` alone was credited by its honest
    answers to the kind's other slices; so each slice of every kind together, keyed (node,
    model, ``""``, slice), for a node lying to one slice of each kind); ``forget`` on the
    admin's clear.

    Each table is a :class:`Kept` of its own bound: ``max_pairs`` pairs, ``max_kinds``
    (node, model, kind) and ``max_slices`` slices (65,536 each by default; a pair's probes
    fill up to 3 kinds and 18 slices, 6 a probe), so slices never push out a pair's or a
    kind's evidence (``slice34``: the bound each table's, said apart); past its bound a
    table drops its lowest score (its evidence lost: a fresh start), never the one just
    written, so a flood of small tallies keeps a liar's high one.

    A probe counted adds to :data:`TALLIES` = 8 tallies: the pair's, its kind's, and one
    slice of each of the 3 dimensions of :data:`SLICES` over every kind and within its
    kind; each flags at ``h + ln 4`` (:meth:`threshold`, ``h`` = ``test.threshold``), so an
    honest node's chance of a flag over its first ``n`` counted probes stays what it was
    with the pair's and the kinds' tallies alone at ``h``, ``2n · e^-h`` (each probe is in
    one kind and one slice of each dimension, so each of the 8 kinds of tally starts its
    runs at distinct probes: ``8 · n e^-h / 4``)."""

    def __init__(self, test: DepartureTest = DEFAULT_TEST, max_pairs: int = 65536,
                 max_kinds: int = 65536, max_slices: int = 65536) -> None:  # fmt: skip
        self.test = test
        self.max_pairs = max(1, max_pairs)
        self.tallies = Kept(max_pairs)
        """Keyed (node, model)."""
        self.kinds = Kept(max_kinds)
        """Keyed (node, model, kind)."""
        self.slices = Kept(max_slices)
        """Keyed (node, model, kind or ``""``, slice)."""
        self.on_add: Callable[[Key, Evidence], None] | None = None
        """Told each evidence added to a tally, keyed (node, model, kind, slice), ``""``
        where the tally has none (``registry/canary_departures_sync.py``: the store's)."""
        self.on_drop: Callable[[str, str | None], None] | None = None
        """Told each (node, model) whose tallies start afresh (a flag), or (node, ``None``)
        forgotten."""
        self.own: Departures | None = None
        """With the tallies shared by replicas (``registry/canary_departures_sync.py``):
        this process's probes' tallies alone too, never the store's (:meth:`set` leaves
        them), flagging as well (found 2026-12-06, review35b: a node telling the replicas
        apart by their addresses and lying to one replica's probes alone was credited by
        its honest answers to the others' in the shared tallies, and never flagged; a
        replica's own probes are a subsequence the honest node's draws do not choose, so
        its tallies keep the bound, which for both families together is twice one's)."""

    def threshold(self, kind: str = "", slice: str = "") -> float:
        """The score a tally flags at (class docstring): one for every tally."""
        del kind, slice
        return self.test.threshold + math.log(TALLIES / 2)

    def add_probe(
        self, node_id: str, model: str, ev: Evidence, shape: Shape
    ) -> DepartureTally | None:
        """:meth:`add` with the kind (:func:`kind_of`) and slices (:func:`slices_of`) of a
        probe of ``shape``."""
        return self.add(node_id, model, ev, kind_of(shape), slices_of(shape))

    def add(self, node_id: str, model: str, ev: Evidence, kind: str = "",
            slices: tuple[str, ...] = ()) -> DepartureTally | None:  # fmt: skip
        """Count ``ev`` (and in its ``kind``'s tally and, within it, its ``slices``', where
        given); the tally that crossed its threshold (then the pair's tallies start afresh,
        the probe failing as a flag), else ``None``."""
        flag = self._add(self.tallies, (node_id, model), ev, "", "")
        if self.own is not None:  # (started afresh there on its own flag)
            flag = self.own.add(node_id, model, ev, kind, slices) or flag
        if kind:
            flag = self._add(self.kinds, (node_id, model, kind), ev, kind, "") or flag
        for part in slices:
            for of in dict.fromkeys((kind, "")):  # within its kind, and over every kind
                flag = self._add(self.slices, (node_id, model, of, part), ev, of, part) or flag
        if flag is not None:  # the node is quarantined: cleared, its evidence starts afresh
            self.afresh(node_id, model)
        return flag

    def afresh(self, node_id: str, model: str) -> None:
        """Drop the pair's tallies (flagged: quarantined), told to ``on_drop``."""
        self._drop(lambda k: k[:2] == (node_id, model))
        if self.own is not None:
            self.own.afresh(node_id, model)
        if self.on_drop is not None:
            self.on_drop(node_id, model)

    def _table(self, key: Key) -> tuple[Kept, tuple[str, ...]]:
        node_id, model, kind, part = key
        if part:
            return self.slices, key
        return (self.kinds, (node_id, model, kind)) if kind else (self.tallies, (node_id, model))

    def get(self, key: Key) -> DepartureTally | None:
        """The tally keyed (node, model, kind, slice) (``""``: none), if kept."""
        into, k = self._table(key)
        return into.get(k)

    def keys_of(self, node_id: str, model: str) -> list[Key]:
        """The (node, model, kind, slice) keys of the pair's tallies kept."""
        out: list[Key] = [(node_id, model, "", "")] if (node_id, model) in self.tallies else []
        out += [(*k, "") for k in self.kinds if k[:2] == (node_id, model)]
        return out + [k for k in self.slices if k[:2] == (node_id, model)]

    def set(self, key: Key, score: float, probes: int = 0, departures: int = 0,
            at_first: int = 0) -> DepartureTally | None:  # fmt: skip
        """Make the tally keyed (node, model, kind, slice) what another's probes made it
        (the store's, ``registry/canary_departures_sync.py``), not told to ``on_add``: a
        score of 0 or less drops it; one at its threshold is returned, not kept (a flag:
        the caller starts the pair afresh)."""
        into, k = self._table(key)
        into.pop(k, None)
        kind, part = key[2], key[3]
        h = self.threshold(kind, part)
        tally = DepartureTally(score, probes, departures, at_first, kind, part, h)
        if score >= h:
            return tally
        if score > 0.0:
            into.put(k, tally)
        return None

    def _add(self, into: Kept, key: Any, ev: Evidence,
             kind: str, part: str) -> DepartureTally | None:  # fmt: skip
        if self.on_add is not None:
            self.on_add((key[0], key[1], kind, part), ev)
        h = self.threshold(kind, part)
        tally = into.pop(key, None) or DepartureTally(kind=kind, slice=part, threshold=h)
        tally.add(ev)
        if tally.score >= h:
            return tally  # not kept
        if tally.score > 0.0:
            into.put(key, tally)
        return None

    def _drop(self, which: Callable[[tuple[str, ...]], bool]) -> None:
        for into in (self.tallies, self.kinds, self.slices):
            for key in [k for k in into if which(k)]:
                del into[key]

    def forget(self, node_id: str, stored: bool = True) -> None:
        """Drop the node's tallies (the admin cleared it), told to ``on_drop`` unless not
        ``stored``: a clear made at another replica, which deleted the store's rows then;
        those written since are evidence after the clear, kept (found 2026-12-06,
        review35d: each replica's read of the clear deleted what the others had found since)."""
        self._drop(lambda k: k[0] == node_id)
        if self.own is not None:
            self.own.forget(node_id)
        if stored and self.on_drop is not None:
            self.on_drop(node_id, None)
