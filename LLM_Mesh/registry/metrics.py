"""The gateway's Prometheus metrics, on a registry of this app's own (``GET /metrics``).

Events are counted where they happen, through children cached by label tuple
(:class:`~LLM_Mesh.metrics_http.Children`): a request's end
(:meth:`GatewayMetrics.request`, from :mod:`~LLM_Mesh.registry.telemetry`; the children
it moves looked up once per label values, :class:`_RequestKids`), an attempt's
end and an ejection (:meth:`GatewayMetrics.attempt`, from ``Routing.finish``), each
failover decision (:meth:`GatewayMetrics.step`, from the send stage); and the guards'
rare events, each only when it happens (found 2026-12-05: seen only in the logs): a place
in a wait taken by push-out or refused (:meth:`GatewayMetrics.wait_places`: the send stage's
wait between API keys, the admit stage's between addresses), a stream part cut for events
without output or data (:meth:`GatewayMetrics.padding_cut`), and settlement's failed syncs
of the store's log, answers whose write failed and journal lines recovered (the
:class:`~LLM_Mesh.registry.settle_durable.SettleWatch` methods), and a request answered but
not charged, its charges not in its receipt (:meth:`GatewayMetrics.unpriced`, by model:
its children made with their first event). States are read
when Prometheus scrapes, by :class:`_StateCollector`: nodes by state, healthy and
ejected, the opt-in wait and attempts in flight per model
(:func:`~LLM_Mesh.registry.metrics_states.read_states`; settlement's syncs failing now:
:attr:`GatewayMetrics.sync_failing`), the request writer's counts. Names, labels and
meanings: ``docs/operations.md``. Every background loop's failed rounds:
:attr:`GatewayMetrics.loops`
(``metrics_loops.py``). The guards' counters have every child made at the start
(their label values are a few fixed words), so each shows 0 before its first event.

In one process a request's end whose children all exist (every one an end of its outcome
can move: after the first few ends of those labels) is not counted at once but kept, in
order, and counted when the registry is next read (``/metrics``, any ``collect``: a
collector registered ahead of the counters, :class:`_Pending`) or once :data:`PENDING` wait,
so every read shows what counting each end at once showed (the same ends added in the same
order; an end counted at once counts those waiting first), ``_created`` included.
Counting one end by itself ran prometheus-client's code cold on every request (~10 µs of
the gateway loop's CPU, docs/benchmarks.md); a batch runs it warm. With several processes
each end is counted at once (another worker answers the scrape from the files).

Several processes (``registry serve --workers N``, prometheus-client's multiprocess mode:
:func:`~LLM_Mesh.metrics_http.events_registry`): the Counters and Histograms (and the
request writer's counts, then Counters too) are every worker's summed; the states are
gauges each worker writes for every scrape, merged over the live workers
(:mod:`~LLM_Mesh.registry.metrics_states` says how each); ``process_*`` are the answering
worker's, and every live worker's own figures are ``llm_mesh_worker_*`` by ``pid``.

Label values are bounded: ``code`` is one of the package's error codes or
``http_NNN`` (:func:`code_label`), never a string a node or a client chose.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from LLM_Mesh.core.balancer import Router
from LLM_Mesh.core.failover import Action, Step
from LLM_Mesh.core.quarantine_reason import KINDS as QUARANTINE_KINDS
from LLM_Mesh.core.quarantine_reason import reason_label
from LLM_Mesh.core.route_types import Outcome
from LLM_Mesh.core.usage_audit import KINDS as AUDIT_KINDS
from LLM_Mesh.core.wait_places import WaitPlaces
from LLM_Mesh.errors import ERROR_CODES
from LLM_Mesh.metrics_http import (
    LATENCY_BUCKETS_S,
    TOKENS_PER_S_BUCKETS,
    TTFT_BUCKETS_S,
    ByNode,
    Children,
    NodeLabels,
    events_registry,
    multiprocess_dir,
    new_registry,
)
from LLM_Mesh.registry.demand import DemandTracker
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.metrics_loops import LoopMetrics
from LLM_Mesh.registry.metrics_states import GAUGES, States, WorkerGauges, read_states
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.request_log import RequestWriter

__all__ = ["MULTIPROCESS_NODE_LABELS", "GatewayMetrics", "code_label"]

# codes the gateway itself answers with besides the error tree's (idempotency's 409)
_CODES = ERROR_CODES | {"duplicate_request", "internal_error"}
_OK_KIDS = ("duration", "prompt", "completion", "ttft", "tps")  # what an answered end moves
# request ends waiting to be counted before they are counted without a read (one process)
PENDING = 1024
# ``--workers N``: the node label values one worker writes (metrics_http.NodeLabels); a
# departed node's series stay in its files until the supervisor stops (docs/deploy.md)
MULTIPROCESS_NODE_LABELS = 1024
_End = tuple["_RequestKids", float | None, float | None, int, int]
_RECORDS = "llm_mesh_gateway_request_records"
_RECORDS_HELP = ("Request records for the store, by result (written | dropped: queue full or a "
                 "store error)")  # fmt: skip
WAIT_STAGES = ("send", "admit")  # the keyed wait (between API keys), the anonymous one
PADDING_KINDS = ("without_output", "without_data")


def code_label(code: str | None) -> str:
    """A bounded label value for an error code: the package's own codes and ``http_NNN``
    pass, ``""`` for none, anything else (a node's own code) is ``"other"``."""
    if not code:
        return ""
    if code in _CODES:
        return code
    if len(code) == 8 and code.startswith("http_") and code[5:].isdigit():
        return code
    return "other"


class GatewayMetrics:
    """The gateway's metrics (see the module docstring); ``registry`` is what ``/metrics`` shows."""

    def __init__(self, table: NodeTable, router: Router, demand: DemandTracker,
                 writer: RequestWriter | None = None) -> None:  # fmt: skip
        served = self.registry = new_registry()
        # whether settlement's syncs of the store's log fail now (the app sets it)
        self.sync_failing: Callable[[], bool] | None = None
        states = partial(read_states, table, router, demand)

        def read() -> States:
            failing = self.sync_failing
            return states(failing is not None and failing())

        path = multiprocess_dir()
        # several processes: each writes its states to its files, before the files are read
        self.gauges = WorkerGauges(path, read) if path is not None else None
        if self.gauges is not None:
            served.register(self.gauges)
        reg = events_registry(served)  # None: several processes, summed from their files
        # one process: request ends wait here to be counted, until a read of the registry
        # (_Pending, ahead of the counters) or PENDING of them (module docstring)
        self._pending: deque[_End] | None = None
        if reg is not None:
            self._pending = deque()
            reg.register(_Pending(self._count_pending))
        # one process: the children made per node label, which retain drops once it left
        self._by_node: ByNode = {}
        by = self._by_node if reg is not None else None
        # several processes: none can go (their files keep them), so at most this many node
        # label values a worker, the later nodes as node="other" (found 2026-12-06)
        fold = NodeLabels(MULTIPROCESS_NODE_LABELS) if reg is None else None
        self._requests: Children[tuple[str, str, str, str], Counter] = Children(Counter(
            "llm_mesh_gateway_requests",
            "Requests by model, the node that answered (or was tried last), outcome "
            "(ok | error | cancelled | refused | replayed) and error code",
            ["model", "node", "outcome", "code"], registry=reg,
        ), by, 1, fold)  # fmt: skip
        self._duration: Children[tuple[str, str], Histogram] = Children(Histogram(
            "llm_mesh_gateway_request_duration_seconds",
            "End-to-end time of requests that reached the send stage, by model and outcome",
            ["model", "outcome"], buckets=LATENCY_BUCKETS_S, registry=reg,
        ))  # fmt: skip
        self._ttft: Children[str, Histogram] = Children(Histogram(
            "llm_mesh_gateway_ttft_seconds",
            "Time to first token seen by the gateway (streams: the first token relayed; "
            "non-streams: the node's ttft plus the gateway's share), answered requests",
            ["model"], buckets=TTFT_BUCKETS_S, registry=reg,
        ))  # fmt: skip
        self._tps: Children[str, Histogram] = Children(Histogram(
            "llm_mesh_gateway_tokens_per_second",
            "Completion tokens per second after the first token, answered requests",
            ["model"], buckets=TOKENS_PER_S_BUCKETS, registry=reg,
        ))  # fmt: skip
        self._tokens: Children[tuple[str, str], Counter] = Children(Counter(
            "llm_mesh_gateway_tokens", "Tokens of answered requests, by model and kind "
            "(prompt | completion)", ["model", "kind"], registry=reg,
        ))  # fmt: skip
        self._attempts: Children[tuple[str, str], Counter] = Children(Counter(
            "llm_mesh_gateway_attempts",
            "Attempts on nodes by node and how each ended (success, connect_error, "
            "overloaded, unavailable, timeout, server_error, rejected, cancelled)",
            ["node", "outcome"], registry=reg,
        ), by, 0, fold)  # fmt: skip
        self._ejections: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_ejections", "Outlier ejections of a node by the router",
            ["node"], registry=reg,
        ), by, None, fold)  # fmt: skip
        self._blamed: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_refusals_blamed",
            "A node's refusal (4xx) of a request another node then took: counted as the "
            "node's failure", ["node"], registry=reg,
        ), by, None, fold)  # fmt: skip
        self._failovers: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_failovers",
            "Another node tried at once after a node refused (did nothing) or rejected the "
            "request (a 4xx: the second opinion), by its outcome",
            ["outcome"], registry=reg,
        ))  # fmt: skip
        self._retries: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_retries",
            "Another node tried after a backoff after a node failed (may have worked; "
            "mid-stream continuations included), by its outcome",
            ["outcome"], registry=reg,
        ))  # fmt: skip
        self._stops: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_failover_stops",
            "Why requests stopped trying nodes (succeeded, neutral, rejected, no_node, "
            "deadline, max_attempts, max_failovers, retry_budget, failover_budget)",
            ["reason"], registry=reg,
        ))  # fmt: skip
        self._continuations = Counter(
            "llm_mesh_gateway_stream_continuations",
            "Streams a node broke that another node was asked to continue", registry=reg,
        )  # fmt: skip
        # a request's children by its end's labels (model, node, outcome, code)
        self._ends: dict[tuple[str, str, str, str], _RequestKids] = {}
        self._health: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_health_checks",
            "Active health checks of nodes by result (ok, failed, unproven: answered "
            "without a valid signature of the check's challenge by the node's key)",
            ["result"], registry=reg,
        ))  # fmt: skip
        self._guards(reg)
        self.loops = LoopMetrics(reg)  # the loops' failed rounds (metrics_loops.py)
        if writer is not None and reg is None:  # the writer's counts summed over processes
            records = Counter(_RECORDS, _RECORDS_HELP, ["result"], registry=None)
            by_result = {result: records.labels(result) for result in ("written", "dropped")}
            writer.counted = lambda result, n: by_result[result].inc(n)
            writer = None
        served.register(_StateCollector(read if self.gauges is None else None, writer))

    def _guards(self, reg: CollectorRegistry | None) -> None:
        """The guards' counters (module docstring), every child made now."""
        pushouts = Counter(
            "llm_mesh_gateway_wait_pushouts",
            "Places in a wait for a slot taken from another holder's newest waiter (told at "
            "once, answered as without a wait), by stage (send: between API keys; admit: "
            "between anonymous addresses)", ["stage"], registry=reg,
        )  # fmt: skip
        refusals = Counter(
            "llm_mesh_gateway_wait_refusals",
            "Requests asking to wait refused a place (every place taken, none to push out: "
            "answered as without a wait), by stage (send | admit)", ["stage"], registry=reg,
        )  # fmt: skip
        self._pushouts = {stage: pushouts.labels(stage) for stage in WAIT_STAGES}
        self._refusals = {stage: refusals.labels(stage) for stage in WAIT_STAGES}
        padded = Counter(
            "llm_mesh_gateway_stream_padding_cuts",
            "Stream parts cut (a break, continued elsewhere) for padding: past the events "
            "allowed with too few carrying output (without_output), or too many events "
            "without data (without_data)", ["kind"], registry=reg,
        )  # fmt: skip
        self._padded = {kind: padded.labels(kind) for kind in PADDING_KINDS}
        self._sync_failures = Counter(
            "llm_mesh_gateway_settle_sync_failures",
            "Failed syncs (fsync) of the SQLite store's log by settlement (its round goes "
            "on; a journal of answers not written is kept)", registry=reg,
        )  # fmt: skip
        self._unwritten = Counter(
            "llm_mesh_gateway_settle_unwritten",
            "Answers served whose settlement write failed: written again, and kept in the "
            "home's journal until written", registry=reg,
        )  # fmt: skip
        recovered = Counter(
            "llm_mesh_gateway_settle_recovered",
            "Journalled answers of a gone process recovered on this home (at start, or an "
            "upkeep round), by result (recorded | not_recorded: written already, or the "
            "payer cannot cover it; the log line says which)", ["result"], registry=reg,
        )  # fmt: skip
        self._recovered = {done: recovered.labels(r)
                           for done, r in ((True, "recorded"), (False, "not_recorded"))}  # fmt: skip
        audited = Counter(
            "llm_mesh_gateway_usage_audit_flags",
            "Nodes flagged by the audit by peers of stated token counts (registry/"
            "usage_audit.py: a share of the gateway's caps over twice the model's other "
            "nodes' median), quarantined for the model, earnings held; by kind (completion "
            "| prompt)", ["kind"], registry=reg,
        )  # fmt: skip
        self._audited = {kind: audited.labels(kind) for kind in AUDIT_KINDS}
        quarantines = Counter(
            "llm_mesh_gateway_quarantines",
            "Nodes quarantined for a model (routed no more, the operator's earnings held "
            "until the admin clears it), by the reason's kind (core/quarantine_reason.py: "
            "canary token | ... | canary sampled_departures | usage_audit completion | ...)",
            ["reason"], registry=reg,
        )  # fmt: skip
        self._quarantines = {kind: quarantines.labels(kind) for kind in QUARANTINE_KINDS}
        self._unpriced: Children[str, Counter] = Children(Counter(
            "llm_mesh_gateway_unpriced_requests",
            "Answered requests whose charges could not be put in their receipt (a wiring fault: "
            "core/receipt_money.price_receipt): not charged, their nodes not paid, by model",
            ["model"], registry=reg,
        ))  # fmt: skip

    def wait_places(self, places: WaitPlaces, stage: str) -> None:
        """Count ``places``' push-outs and refusals under ``stage`` (its hooks set)."""
        places.on_push = self._pushouts[stage].inc
        places.on_refuse = self._refusals[stage].inc

    def padding_cut(self, kind: str) -> None:
        """A stream part cut for padding (``kind``: one of :data:`PADDING_KINDS`)."""
        self._padded[kind].inc()

    def usage_flagged(self, kind: str) -> None:
        """A node flagged by the usage audit (``kind``: one of :data:`AUDIT_KINDS`)."""
        self._audited[kind].inc()

    def quarantined(self, reason: str | None) -> None:
        """A node newly quarantined for a model (``Quality.record``), by its reason's kind."""
        self._quarantines[reason_label(reason)].inc()

    def unpriced(self, model: str) -> None:
        """A request answered but not charged: its charges could not be put in its receipt
        (``account.make_receipt``; found 2026-12-07, small42: the registry's ERROR line only)."""
        self._unpriced(model).inc()

    def settle_sync_failed(self) -> None:
        """A sync of the store's log failed (``SettleDurable._sync_failed``)."""
        self._sync_failures.inc()

    def settle_unwritten(self) -> None:
        """An answer's settlement write failed: written again, journalled."""
        self._unwritten.inc()

    def settle_recovered(self, recorded: bool) -> None:
        """A journal line of a gone process recovered: recorded, or not."""
        self._recovered[recorded].inc()

    def retain(self, node_ids: Iterable[str]) -> int:
        """Drop the children of every node not in ``node_ids`` (those still heard from: the
        app's upkeep after each health-check pass), so node ids that come and go grow
        neither this registry nor ``/metrics``; return how many nodes went. Found
        2026-12-06 (attack33): 10,000 ids gone, one request each, held 15 MB and made every
        scrape 0.7 s of the gateway's loop (shared box, load ~8). A node back counts from 0
        (a counter reset). Several processes: nothing (prometheus-client's multiprocess
        mode removes no child; its files keep them)."""
        by_node = self._by_node
        if self._pending is None or not by_node:
            return 0
        gone = by_node.keys() - set(node_ids)
        if not gone:
            return 0
        self._count_pending()  # ends waiting may move children about to go
        ends = self._ends
        for node in gone:
            for children, key in by_node.pop(node):
                children.drop(key)
                ends.pop(key, None)
        return len(gone)

    def round_logs(self) -> Iterable[RoundLog]:
        """Its gauges' refresh, with several processes (``failed_rounds.HasRoundLogs``)."""
        return () if self.gauges is None else (self.gauges.round_log,)

    def start(self) -> None:
        """With several processes: this worker's states written every ``REFRESH_S``."""
        if self.gauges is not None:
            self.gauges.start()

    async def stop(self) -> None:
        """With several processes: this worker's states out of every later scrape."""
        if self.gauges is not None:
            await self.gauges.stop()

    # -- events (hot path) -------------------------------------------------------------
    def request(
        self, model: str, node: str, outcome: str, code: str, *,
        latency_s: float | None = None, ttft_s: float | None = None,
        prompt_tokens: int = 0, completion_tokens: int = 0,
    ) -> None:  # fmt: skip
        """One request ended (``latency_s`` only for requests that reached the send stage).
        Its children are looked up once per label values (:class:`_RequestKids`). Counted
        at once, or, in one process, once every child it can move exists, when the
        registry is next read (module docstring)."""
        key = (model, node, outcome, code)
        kids = self._ends.get(key)
        pending = self._pending
        if kids is not None and kids.made and pending is not None:
            pending.append((kids, latency_s, ttft_s, prompt_tokens, completion_tokens))
            if len(pending) >= PENDING:
                self._count_pending()
            return
        if pending:  # the ends before this one first: every sum added in the same order
            self._count_pending()
        if kids is None:
            kids = self._ends[key] = _RequestKids(self, key)
        _count(kids, latency_s, ttft_s, prompt_tokens, completion_tokens)

    def _count_pending(self) -> None:
        """Count the request ends waiting, in order (thread-safe: ``deque``'s own)."""
        pending = self._pending
        while pending:
            _count(*pending.popleft())

    def attempt(self, node: str, outcome: Outcome, ejected: bool) -> None:
        """An attempt on ``node`` ended (``Routing.finish``); ``ejected``: the router
        ejected the node for it."""
        # ``_value_``: the member's value without ``Enum.value``'s two Python calls (a
        # property through ``enum.property``), one read a request (perf45)
        self._attempts((node, outcome._value_)).inc()
        if ejected:
            self._ejections(node).inc()

    def blamed(self, node: str, ejected: bool) -> None:
        """A refusal of ``node`` counted as its failure (``Routing.blame``); ``ejected``: the
        router ejected the node for it."""
        self._blamed(node).inc()
        if ejected:
            self._ejections(node).inc()

    def step(self, step: Step) -> None:
        """A failover decision (the send stage's ``Exchange._observed``)."""
        action = step.action
        if action is Action.STOP:
            self._stops(step.stop._value_ if step.stop is not None else "").inc()
        elif step.outcome is not None:
            counter = self._failovers if action is Action.RETRY else self._retries
            counter(step.outcome._value_).inc()

    def continuation(self) -> None:
        """A broken stream goes on on another node."""
        self._continuations.inc()

    def health_check(self, result: str) -> None:
        """One active health check ended (``HealthChecker.on_result``)."""
        self._health(result).inc()


def _count(
    kids: _RequestKids, latency_s: float | None, ttft_s: float | None, prompt_tokens: int,
    completion_tokens: int,
) -> None:  # fmt: skip
    """One request end moving ``kids`` (:meth:`GatewayMetrics.request`)."""
    kids.requests.inc()
    if latency_s is None:
        return
    duration = kids.duration
    (kids.make("duration") if duration is None else duration).observe(latency_s)
    if kids.outcome != "ok":
        return
    if prompt_tokens:
        prompt = kids.prompt
        (kids.make("prompt") if prompt is None else prompt).inc(prompt_tokens)
    if completion_tokens:
        completion = kids.completion
        (kids.make("completion") if completion is None else completion).inc(completion_tokens)
    if ttft_s is not None:
        ttft = kids.ttft
        (kids.make("ttft") if ttft is None else ttft).observe(ttft_s)
        gen_s = latency_s - ttft_s
        if completion_tokens and gen_s > 0:
            tps = kids.tps
            (kids.make("tps") if tps is None else tps).observe(completion_tokens / gen_s)


class _Pending(Collector):
    """Counts the request ends waiting (:meth:`GatewayMetrics.request`) when the registry
    is read, before the counters it is registered ahead of; yields nothing itself."""

    def __init__(self, count: Callable[[], None]) -> None:
        self.count = count

    def collect(self) -> Iterator[CounterMetricFamily]:
        self.count()
        return iter(())


class _RequestKids:
    """The children one request's end moves, for one ``(model, node, outcome, code)``:
    one dict look-up a request instead of one per metric. A child is made when first
    needed (``make``), as before: a label set shows in ``/metrics`` only once counted."""

    __slots__ = ("completion", "duration", "made", "metrics", "model", "outcome", "prompt",
                 "requests", "tps", "ttft")  # fmt: skip

    def __init__(self, metrics: GatewayMetrics, key: tuple[str, str, str, str]) -> None:
        self.metrics, self.model, self.outcome = metrics, key[0], key[2]
        self.requests: Counter = metrics._requests(key)
        self.duration: Histogram | None = None
        self.prompt: Counter | None = None
        self.completion: Counter | None = None
        self.ttft: Histogram | None = None
        self.tps: Histogram | None = None
        # every child an end of this outcome can move exists (an end counted later then
        # makes none: each child's ``_created`` is when its first end came, as before)
        self.made = False

    def make(self, name: str) -> Any:
        """The child ``name`` (a slot above), made and kept."""
        m, model = self.metrics, self.model
        child: Counter | Histogram
        if name == "duration":
            child = m._duration((model, self.outcome))
        elif name in ("prompt", "completion"):
            child = m._tokens((model, name))
        elif name == "ttft":
            child = m._ttft(model)
        else:
            child = m._tps(model)
        setattr(self, name, child)
        wanted = _OK_KIDS if self.outcome == "ok" else ("duration",)
        self.made = all(getattr(self, kid) is not None for kid in wanted)
        return child


class _StateCollector(Collector):
    """States read at scrape time (never per request): ``read`` (``None``: the workers'
    gauges, merged from the files, show them) and the request writer's counts."""

    def __init__(self, read: Callable[[], States] | None, writer: RequestWriter | None) -> None:
        self.read, self.writer = read, writer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if self.read is not None:
            for name, samples in self.read().values.items():
                help_, labels, _mode = GAUGES[name]
                family = GaugeMetricFamily(name, help_, labels=list(labels))
                for values, n in samples.items():
                    family.add_metric(list(values), n)
                yield family
        if self.writer is not None:
            records = CounterMetricFamily(_RECORDS, _RECORDS_HELP, labels=["result"])
            records.add_metric(["written"], self.writer.written)
            records.add_metric(["dropped"], self.writer.dropped)
            yield records
