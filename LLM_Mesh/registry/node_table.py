"""The live, in-memory view of the nodes this registry routes to.

One :class:`NodeEntry` per node: its registration, its last heartbeat (on the
injected monotonic clock), what it reported, request/failure counters, the
result of the last active health check, and what the send stage saw of its answers
that its uptime credit depends on (:meth:`NodeTable.refused_gateway`,
:meth:`NodeTable.refused_request`, :meth:`NodeTable.answered`). A per-model index
(model id -> node ids) answers "who hosts this model" without scanning every node.

The table decides *liveness* only; which node serves a request is decided by
the one :class:`~LLM_Mesh.core.balancer.Router` in
:class:`~LLM_Mesh.registry.routing.Routing` (load, latency EWMAs, ejections).

Healthy means: state ONLINE, a heartbeat younger than
``settings.heartbeat_expiry_s``, and not failed by the last active check
(:func:`LLM_Mesh.core.liveness.is_routable`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.check_state import CheckState, reason
from LLM_Mesh.core.liveness import heartbeat_age, holds_address, is_routable
from LLM_Mesh.core.netguard import NodeUrlError, parse_node_url
from LLM_Mesh.core.rewards import answer_share_milli, decay
from LLM_Mesh.core.schemas import (
    MAX_MODELS_PER_NODE,
    Hardware,
    Heartbeat,
    HostedModel,
    NodeRegistration,
    NodeState,
)
from LLM_Mesh.core.strict_json import finite_number

Clock = Callable[[], float]
_ONLINE = NodeState.ONLINE  # a module global: an enum member read off its class costs ~0.1 µs


@dataclass
class NodeEntry:
    """Everything the gateway knows about one node right now."""

    node_id: str
    url: str
    region: str | None
    models: dict[str, HostedModel]
    hardware: Hardware
    max_concurrency: int
    max_queue: int
    version: str
    state: NodeState
    last_heartbeat: float | None = None
    reported_in_flight: int = 0
    reported_queued: int = 0
    uptime: float | None = None  # a heartbeat's optional ``uptime`` (0..1)
    continuation: bool = False  # the node advertises ``"continuation": true``
    keeps_no_prompts: bool | None = None  # signed declaration in its registration
    requests: int = 0
    failures: int = 0
    tokens_generated: int = 0
    check_failed: bool = False
    # when ``check_failed`` was decided (unix seconds; a local check, or a store row from
    # another replica's): a store row older than that does not undo it (``node_sync.py``)
    checked_at: float | None = None
    # since when the checks find it so (unix seconds: the first check with this result,
    # whichever replica made it) and the last failed check's reason (None: passing, or not
    # known: a store row written before migration 0016): what its heartbeat answers tell
    # the node (``check_answer``); another replica's come with its result (``node_sync.py``)
    check_since: float | None = None
    check_why: str | None = None
    expired_reported: bool = False
    # when the node last refused the gateway's signature or MAC (401; unix seconds): it
    # serves nothing, so its heartbeats credit no uptime for ``REFUSAL_NO_CREDIT_S`` after,
    # unless it registers again here (a fresh entry) or answers a request
    # (``NodeTable.refused_gateway`` / ``answered``, told by ``send.py``)
    refused_gateway_at: float | None = None
    # when it first answered a request here 429/503 since it last answered one (unix
    # seconds; None: it answered the last one, or none refused): refusing every request for
    # ``REFUSAL_NO_CREDIT_S`` earns no uptime (``core/rewards.serving``;
    # ``NodeTable.refused_request``)
    refusing_since: float | None = None
    refused_at: float | None = None  # ... and its latest such refusal
    # the requests sent here that it answered / refused (429, 503, 401, a 4xx blamed),
    # fading (``core/rewards.decay``) since ``tallied_at`` (the table's clock): their share
    # cuts its heartbeats' uptime credit (``core/rewards.answer_share_milli``; ``tally``)
    answered: float = 0.0
    refused: float = 0.0
    tallied_at: float | None = None
    # the requests the mesh knew it had sent the node when its last load report arrived
    # here (this replica's in flight there + other live replicas' published counts): what
    # explains the load it claimed (``core/rewards.explained_load_credit_s``, set by
    # ``api.absorb_heartbeat``)
    known_load: int = 0
    # ``NodeTable.goodbyes`` when it went OFFLINE here (0: never): a store poll that began
    # before then may have read it still online, and must not bring it back (``node_sync.py``)
    gone: int = 0
    # its key was revoked (the admin's ``registry nodes revoke``, ``operators revoke``): the
    # listing says so, not just OFFLINE (``NodeTable.revoke``; ``revocations.py``)
    revoked: bool = False
    added: float = 0.0  # when this entry was made (the table's clock): quiet since, if never heard

    @property
    def simulated(self) -> bool:
        """Every model it registered runs a simulated engine (its answers made up)."""
        return bool(self.models) and all(m.simulated for m in self.models.values())


_KEPT_ON_REGISTER = (
    "reported_in_flight", "reported_queued", "known_load",  # its last load report
    "refusing_since", "refused_at", "answered", "refused", "tallied_at",  # its refusals
)  # fmt: skip
"""What a node's registration again does not clear (``NodeTable.register``): the evidence
its heartbeats' uptime credit is judged by (``registry/uptime_credit.py``)."""

REFUSAL_NO_CREDIT_S = 300.0
"""How long after a node refused the gateway's key its heartbeats credit no uptime (unless
it registers again here or answers a request first): with traffic a refusing node is tried
and refuses again within it; an honest node that refused while it restarted registers at
once, or, registered at another replica, is credited again within it."""


class NodeTable:
    """Registration, heartbeats, load and outcomes of every known node."""

    def __init__(self, expiry_s: float, clock: Clock = time.monotonic) -> None:
        if expiry_s <= 0:
            raise ValueError("expiry_s must be positive")
        self.expiry_s = expiry_s
        self.clock = clock
        self._nodes: dict[str, NodeEntry] = {}
        self._by_model: dict[str, set[str]] = {}
        self._by_address: dict[tuple[str, int], set[str]] = {}  # (host, port) -> node ids
        self.goodbyes = 0  # nodes that went OFFLINE here, ever (``NodeEntry.gone``)
        # bumped by every change ``GET /mesh/nodes`` must show at once (a registration, a
        # state, a health check's verdict, an expiry, the models loaded): its cached body
        # is built again after one (``registry/node_listing.py``); load, heartbeat ages
        # and counters drift, and are shown up to ``NodeListing.ttl_s`` late
        self.changes = 0

    # --- membership ---------------------------------------------------------

    def register(
        self, reg: NodeRegistration, *, last_heartbeat: float | Literal["now"] | None = "now"
    ) -> NodeEntry:
        """Add or update a node from its registration.

        A registration counts as a heartbeat (``last_heartbeat`` defaults to now);
        a node loaded from the store passes the monotonic time of its stored last
        heartbeat, or ``None`` when it has never been heard from.
        """
        now = self.clock() if last_heartbeat == "now" else last_heartbeat
        old = self._nodes.get(reg.node_id)
        entry = NodeEntry(
            node_id=reg.node_id,
            url=reg.url,
            region=reg.region,
            models={m.id: m for m in reg.models},
            hardware=reg.hardware,
            max_concurrency=reg.max_concurrency,
            max_queue=reg.max_queue,
            version=reg.version,
            state=reg.state,
            last_heartbeat=now,
            continuation=advertises_continuation(reg),
            keeps_no_prompts=reg.keeps_no_prompts,
            added=self.clock(),
        )
        if old is not None:
            self._unindex(old)
            entry.requests = old.requests
            entry.failures = old.failures
            entry.tokens_generated = old.tokens_generated
            # a failed health check stands until a check passes (the sweep checks the node
            # again within a heartbeat interval): registering again does not clear it (it
            # would put a node that cannot prove its key back in routing, credited uptime)
            entry.check_failed, entry.checked_at = old.check_failed, old.checked_at
            entry.check_since, entry.check_why = old.check_since, old.check_why
            # nor is a registration evidence of serving: its refusals and the load report
            # that steers the router (which keeps it across a registration) stand, or a
            # node registering again before each heartbeat was credited in full while
            # refusing everything or reporting itself full (found 2026-12-05). Only the
            # gateway-key refusal (401) ends with it: registering re-pins the key
            for name in _KEPT_ON_REGISTER:
                setattr(entry, name, getattr(old, name))
        self._nodes[reg.node_id] = entry
        self.changes += 1
        for model_id in entry.models:
            self._by_model.setdefault(model_id, set()).add(reg.node_id)
        address = _address(reg.url)
        if address is not None:
            self._by_address.setdefault(address, set()).add(reg.node_id)
        return entry

    def address_holder(self, url: str, claimant: str) -> str | None:
        """Another node than ``claimant`` that holds ``url``'s address (``host:port``, any
        scheme or path: certificates are pinned per address) now, or ``None``
        (:func:`~LLM_Mesh.core.liveness.holds_address`)."""
        address = _address(url)
        now = self.clock()
        for node_id in sorted(self._by_address.get(address, ())) if address else ():
            e = self._nodes.get(node_id)
            if e is None or node_id == claimant or _address(e.url) != address:
                continue
            if holds_address(
                gone=e.state is NodeState.OFFLINE or e.revoked, last_heartbeat=e.last_heartbeat,
                now=now, expiry_s=self.expiry_s, check_failed=e.check_failed,
            ):  # fmt: skip
                return node_id
        return None

    def _unindex(self, entry: NodeEntry) -> None:
        address = _address(entry.url)
        if address is not None:
            held = self._by_address.get(address)
            if held is not None:
                held.discard(entry.node_id)
                if not held:
                    del self._by_address[address]
        for model_id in entry.models:
            ids = self._by_model.get(model_id)
            if ids is not None:
                ids.discard(entry.node_id)
                if not ids:
                    del self._by_model[model_id]

    def forget(self, node_id: str) -> bool:
        """Drop ``node_id`` as if never registered here (``node_forget.py``: gone for long)."""
        entry = self._nodes.pop(node_id, None)
        if entry is not None:
            self._unindex(entry)
            self.changes += 1
        return entry is not None

    def get(self, node_id: str) -> NodeEntry | None:
        return self._nodes.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def entries(self) -> Iterator[NodeEntry]:
        return iter(list(self._nodes.values()))

    def heartbeat(self, node_id: str, hb: Heartbeat) -> bool:
        """Record a heartbeat; ``False`` when the node is unknown (it must re-register)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return False
        now = self.clock()
        # what the listing shows at once (``changes``): health, state, the models' fields
        was = (self.healthy(entry, now), entry.state)
        entry.last_heartbeat = now
        entry.state = hb.state
        entry.reported_in_flight = hb.in_flight
        entry.reported_queued = hb.queued
        entry.expired_reported = False
        uptime = finite_number((hb.model_extra or {}).get("uptime"))
        if uptime is not None:
            entry.uptime = min(1.0, max(0.0, uptime))
        changed = was != (self.healthy(entry, now), entry.state)
        if hb.loaded_models is not None:
            loaded = set(hb.loaded_models)
            for model_id, hosted in entry.models.items():
                changed = changed or hosted.loaded != (model_id in loaded)
                hosted.loaded = model_id in loaded
        for item in heartbeat_models(hb):  # the extra ``models`` list wins where it speaks
            old = entry.models.get(item["id"])
            if old is None:  # the hosted set changes by re-registering, not by heartbeat
                continue
            try:
                new = HostedModel.model_validate({**old.model_dump(), **item})
            except ValidationError:
                continue
            changed = changed or new != old
            entry.models[old.id] = new
        if changed:
            self.changes += 1
        return True

    def mark_loaded(self, node_id: str, model_id: str) -> None:
        """The node just answered for ``model_id``: it is loaded now (until a heartbeat says)."""
        hosted = self.hosted(node_id, model_id)
        if hosted is not None and not hosted.loaded:
            hosted.loaded = True
            self.changes += 1

    def revoke(self, node_id: str) -> bool:
        """The node's key is revoked: OFFLINE, and marked so for the listing; whether it
        was routable until now (False: unknown here, or already OFFLINE)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return False
        was = entry.state is not NodeState.OFFLINE
        if not entry.revoked:
            entry.revoked = True
            self.changes += 1
        self.set_state(node_id, NodeState.OFFLINE)
        return was

    def set_state(self, node_id: str, state: NodeState) -> bool:
        entry = self._nodes.get(node_id)
        if entry is None:
            return False
        if state is NodeState.OFFLINE and entry.state is not NodeState.OFFLINE:
            self.goodbyes += 1
            entry.gone = self.goodbyes
        if entry.state is not state:
            entry.state = state
            self.changes += 1
        return True

    # --- health -------------------------------------------------------------

    def healthy(self, entry: NodeEntry, now: float | None = None) -> bool:
        return is_routable(
            online=entry.state is _ONLINE,
            last_heartbeat=entry.last_heartbeat,
            now=self.clock() if now is None else now,
            expiry_s=self.expiry_s,
            check_failed=entry.check_failed,
        )

    def alive(self, node_id: str, now: float) -> bool:
        """:meth:`healthy` of the node ``node_id`` at ``now`` (``False``: not known), in one
        call: ``Routing.pick`` re-checks every choice with it."""
        entry = self._nodes.get(node_id)
        return entry is not None and is_routable(
            online=entry.state is _ONLINE, last_heartbeat=entry.last_heartbeat, now=now,
            expiry_s=self.expiry_s, check_failed=entry.check_failed,
        )  # fmt: skip

    def set_check_result(
        self,
        node_id: str,
        ok: bool,
        at: float | None = None,
        why: str | None = None,
        since: float | None = None,
    ) -> None:
        """The outcome of an active health check (a failed node leaves routing), decided at
        ``at`` (unix seconds; ``None``: not said), failed for ``why`` (``None``: not known
        here, e.g. a store row written before reasons were shared: a reason known stays),
        the checks finding it so ``since`` (another replica's result from the store: the
        first check with it, whoever made it; ``None``: this table decides, from the turn)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return
        if entry.check_failed == ok:
            self.changes += 1
        turned = entry.check_failed == ok or (entry.checked_at is None and at is not None)
        if not ok:
            entry.check_why = reason(why) or (None if turned else entry.check_why)
        else:
            entry.check_why = None
        if since is not None:
            entry.check_since = since
        elif turned:
            entry.check_since = at
        entry.check_failed = not ok
        if at is not None:
            entry.checked_at = at

    def sweep_expired(self, now: float | None = None) -> list[str]:
        """Online nodes whose heartbeats expired since the last sweep (each reported once)."""
        now = self.clock() if now is None else now
        expired: list[str] = []
        for entry in self._nodes.values():
            if entry.state is not NodeState.ONLINE or entry.expired_reported:
                continue
            age = heartbeat_age(entry.last_heartbeat, now)
            if age is None or age >= self.expiry_s:
                entry.expired_reported = True
                expired.append(entry.node_id)
        if expired:
            self.changes += 1
        return expired

    # --- what a node's answers say of its uptime (``core/rewards.serving``) ------

    def refused_gateway(self, node_id: str, at: float) -> None:
        """The node refused the gateway's signature or MAC (401) at ``at`` (unix seconds):
        it serves nothing until it registers again, and earns no uptime meanwhile
        (``NodeEntry.refused_gateway_at``)."""
        entry = self._nodes.get(node_id)
        if entry is not None:
            entry.refused_gateway_at = at

    def answered(self, node_id: str) -> None:
        """The node answered a request (a 2xx/3xx, or its own 4xx): it serves."""
        entry = self._nodes.get(node_id)
        if entry is not None:
            entry.refused_gateway_at = entry.refusing_since = entry.refused_at = None

    def refused_request(self, node_id: str, at: float) -> None:
        """The node refused a request (429/503) at ``at`` (unix seconds): from its first
        refusal since it last answered one, refusing for long earns it no uptime
        (``NodeEntry.refusing_since``)."""
        entry = self._nodes.get(node_id)
        if entry is not None:
            entry.refused_at = at
            if entry.refusing_since is None:
                entry.refusing_since = at

    # --- counters (shown in views; routing state lives in the Router) ---------

    def count(self, node_id: str, *, ok: bool, tokens: int = 0) -> None:
        """One finished attempt on ``node_id`` (for the request/failure counters)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return
        entry.requests += 1
        entry.tokens_generated += tokens
        if not ok:
            entry.failures += 1

    def tally(self, node_id: str, *, answered: bool, now: float | None = None) -> None:
        """One request sent to ``node_id`` that it answered, or refused (uptime credit)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return
        now = self.clock() if now is None else now
        self._fade(entry, now)
        if answered:
            entry.answered += 1.0
        else:
            entry.refused += 1.0

    def answer_share_milli(self, entry: NodeEntry, now: float | None = None) -> int:
        """The share of the requests sent to ``entry`` here that it answered, lately, in
        thousandths (``core/rewards.answer_share_milli``; 1000 when it refused none)."""
        self._fade(entry, self.clock() if now is None else now)
        return answer_share_milli(entry.answered, entry.refused)

    @staticmethod
    def _fade(entry: NodeEntry, now: float) -> None:
        if entry.tallied_at is not None and (entry.answered or entry.refused):
            elapsed = now - entry.tallied_at
            entry.answered = decay(entry.answered, elapsed)
            entry.refused = decay(entry.refused, elapsed)
        entry.tallied_at = now

    def seed_counters(self, stats: dict[str, dict[str, int]]) -> None:
        """Start the counters from the store's totals (after a restart)."""
        for node_id, s in stats.items():
            entry = self._nodes.get(node_id)
            if entry is not None:
                entry.requests = int(s.get("requests", 0))
                entry.failures = int(s.get("failures", 0))
                entry.tokens_generated = int(s.get("tokens", 0))

    # --- what routing and listings read ---------------------------------------

    def hosts(self, model_id: str) -> bool:
        """Whether any known node (healthy or not) hosts ``model_id``."""
        return model_id in self._by_model

    def hosted(self, node_id: str, model_id: str) -> HostedModel | None:
        entry = self._nodes.get(node_id)
        return None if entry is None else entry.models.get(model_id)

    def healthy_entries_for(
        self, model_id: str, now: float | None = None, *, loaded_only: bool = False
    ) -> list[NodeEntry]:
        """Healthy nodes hosting ``model_id``: loaded or able to load it (``loaded_only``: loaded)."""
        now = self.clock() if now is None else now
        out: list[NodeEntry] = []
        for node_id in self._by_model.get(model_id, ()):
            entry = self._nodes[node_id]
            if (not loaded_only or entry.models[model_id].loaded) and self.healthy(entry, now):
                out.append(entry)
        return out

    def nodes_up_for(self, model_id: str, now: float | None = None) -> int:
        """Healthy nodes hosting ``model_id`` (loaded or loadable)."""
        return len(self.healthy_entries_for(model_id, now))

    def resting_for(self, model_id: str, now: float | None = None) -> int:
        """Nodes hosting ``model_id`` that are paused or draining, heartbeats fresh and
        checks passing: out of routing until their operator resumes them (a refusal for
        want of a node says so: found 2026-12-05, newuser32)."""
        now = self.clock() if now is None else now
        resting = (NodeState.PAUSED, NodeState.DRAINING)
        return sum(
            1
            for node_id in self._by_model.get(model_id, ())
            if (entry := self._nodes[node_id]).state in resting
            and is_routable(
                online=True, last_heartbeat=entry.last_heartbeat, now=now,
                expiry_s=self.expiry_s, check_failed=entry.check_failed,
            )
        )  # fmt: skip

    def models_up(self, now: float | None = None) -> list[str]:
        """Model ids that at least one healthy node hosts (loaded or loadable), sorted."""
        now = self.clock() if now is None else now
        return sorted(m for m in self._by_model if self.healthy_entries_for(m, now))

    def model_ids(self) -> list[str]:
        """Every model id any known node hosts, sorted."""
        return sorted(self._by_model)

    def custom_models(self) -> dict[str, HostedModel]:
        """Hosted models that are not in the catalog: model id -> one node's entry for it."""
        out: dict[str, HostedModel] = {}
        for model_id, ids in self._by_model.items():
            if get_spec(model_id) is None and ids:
                out[model_id] = self._nodes[min(ids)].models[model_id]
        return dict(sorted(out.items()))

    def declared_contexts(self, model_id: str) -> list[int | None]:
        """The ``context_length`` each known node hosting ``model_id`` declares for it."""
        nodes = self._nodes
        return [nodes[n].models[model_id].context_length for n in self._by_model.get(model_id, ())]

    def supports_continuation(self, node_id: str, model_id: str) -> bool:
        """Whether the node continues a chat from ``mesh_continue`` for ``model_id``."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return False
        hosted = entry.models.get(model_id)
        flag = (hosted.model_extra or {}).get("continuation") if hosted is not None else None
        return entry.continuation or flag is True


def check_answer(entry: NodeEntry) -> dict[str, Any] | None:
    """The heartbeat answer's ``health`` for ``entry``'s node (``core/check_state.py``):
    this registry's active checks of it, from the table (no query); ``None`` before any."""
    if entry.checked_at is None and not entry.check_failed:
        return None
    return CheckState(
        ok=not entry.check_failed,
        since=entry.check_since,
        checked_at=entry.checked_at,
        why=entry.check_why,
    ).wire()


def heartbeat_models(hb: Heartbeat) -> list[dict[str, Any]]:
    """The heartbeat's extra ``models`` list (each with ``id``, ``loaded``, ``load_time_s``...).

    Only objects with a string ``id`` are kept, of the first ``MAX_MODELS_PER_NODE`` items
    (a node hosts no more: 1 MiB of items naming a hosted id was 29,000 validations, ~240 ms
    of the registry's loop per heartbeat); a missing or malformed list gives ``[]``.
    What an item leaves out keeps the registration's value.
    """
    raw = (hb.model_extra or {}).get("models")
    if not isinstance(raw, list):
        return []
    head = raw[:MAX_MODELS_PER_NODE]
    return [m for m in head if isinstance(m, dict) and isinstance(m.get("id"), str)]


def load_time_ms(hosted: HostedModel) -> float | None:
    """The model's extra ``load_time_s`` in ms, when given and > 0 (0 means "loaded")."""
    value = finite_number((hosted.model_extra or {}).get("load_time_s"))
    if value is not None:
        ms = value * 1000.0
        if math.isfinite(ms) and ms > 0:
            return ms
    return None


def cold_starts_ms(entry: NodeEntry) -> dict[str, float]:
    """Per hosted model, its reported load time in ms (models reporting none are left out)."""
    out: dict[str, float] = {}
    for model_id, hosted in entry.models.items():
        ms = load_time_ms(hosted)
        if ms is not None:
            out[model_id] = ms
    return out


def loaded_models(entry: NodeEntry) -> list[str]:
    return [model_id for model_id, hosted in entry.models.items() if hosted.loaded]


def advertises_continuation(reg: NodeRegistration) -> bool:
    """A registration-level ``"continuation": true`` extra field."""
    return (reg.model_extra or {}).get("continuation") is True


def _address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a node URL (host lower case), or ``None`` if it does not parse."""
    try:
        node = parse_node_url(url)
    except NodeUrlError:
        return None
    return node.host, node.port
