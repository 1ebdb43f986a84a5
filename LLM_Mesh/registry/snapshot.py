"""Loading stored nodes back into the node table (registry start-up, other replicas).

A stored node counts healthy only when its stored last heartbeat is still
within the expiry (translated from wall-clock time to the table's monotonic
clock) or after a fresh heartbeat; otherwise it waits, out of routing, for the
node to beat or re-register.

A stored node's TLS certificate pin (``NodeRecord.tls_fingerprint``, migration 0017) is
pinned with it (:func:`pin_stored_certificate`), so a replica that never saw the node's
registration (it registered and beats at another one) or a restarted registry calls it
pinned; a row that does not tell its pin leaves the node to register again (its heartbeat
gets 404 ``unknown_node``, ``api.py``). Its signed ``keeps_no_prompts`` declaration
(``NodeRecord.keeps_no_prompts``, migration 0029) goes into the table entry with it, so such
a replica routes to it as it declared (``core/prompt_keeping.py``); a row that does not tell
it leaves the node judged by its engines.

A stored node whose URL the registry's transport rule now refuses (``core/tls.py``: an
``http://`` node on another machine, stored before plain-HTTP nodes off loopback were refused
by default, or before ``--require-tls``) is not put in the table: it is not routed to, its
heartbeat gets 404 ``unknown_node`` and its registration again the 403 that says what to do.
It is judged by the URL as written (no DNS here: this runs at start, in the node poll and for
a heartbeat): a host name other than ``localhost`` is refused (but a named origin, or with
the opt-out), an IP literal is its own address; the addresses of a stored ``http://localhost`` are judged by the same rule before
the first connection to it (``AddressPins.admit``, as a registration judges them), so where
``localhost`` resolves off loopback the node is loaded but never called (its health check
fails saying why) and its registration hears the 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from pydantic import ValidationError

from LLM_Mesh.core.liveness import forgettable
from LLM_Mesh.core.schemas import NodeRegistration, NodeState
from LLM_Mesh.core.store_heard import quiet_s
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable
from LLM_Mesh.registry.ports import NodeRecord, Store

log = logging.getLogger(__name__)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def pin_stored_certificate(pins: AddressPins, rec: NodeRecord) -> None:
    """Pin the certificate (or, ``""``, no certificate) the stored registration carried; a
    row that does not tell (``None``) pins nothing."""
    if rec.tls_fingerprint is not None and rec.url.startswith("https://"):
        pins.pin_certificate(rec.url, rec.tls_fingerprint or None)


def stored_pin_known(pins: AddressPins, rec: NodeRecord) -> bool:
    """Whether ``pins`` already hold what ``rec`` tells of its certificate."""
    if rec.tls_fingerprint is None or not rec.url.startswith("https://"):
        return True
    return pins.registered(rec.url) and pins.fingerprint(rec.url) == (rec.tls_fingerprint or None)


def entry_from_record(
    table: NodeTable,
    rec: NodeRecord,
    *,
    heard_now: bool = False,
    wall_now: datetime | None = None,
    pins: AddressPins | None = None,
    transport: NodeTransport,
    clock_at: Callable[[float], float] | None = None,
) -> NodeEntry | None:
    """Put a stored node into ``table`` (and its certificate pin into ``pins``); ``None`` if
    the record no longer validates or ``transport`` refuses its URL. Its last heartbeat's
    age is the store's clock's where the row tells it (``NodeRecord.heard_age_s``), else
    the wall clock's (``wall_now``), or ``clock_at``'s: the table clock's reading at a
    wall-clock time (``node_sync.py``)."""
    refused = transport.refusal(rec.url)
    if refused is not None:
        log.warning(
            "stored node %s at %s is not routed: %s (this registry refuses it now; it is "
            "told why when it registers again)",
            rec.node_id, rec.url, refused,
        )  # fmt: skip
        return None
    state = NodeState.stored(rec.state)
    try:
        reg = NodeRegistration(
            node_id=rec.node_id,
            url=rec.url,
            region=rec.region,
            models=rec.models,  # validated from the stored dicts
            hardware=rec.hardware,
            max_concurrency=rec.max_concurrency,
            max_queue=rec.max_queue,
            version=rec.version,
            state=state,
            keeps_no_prompts=rec.keeps_no_prompts,  # migration 0029 (None: not told)
        )
    except ValidationError as exc:
        log.warning("stored node %s is not valid any more; skipped: %s", rec.node_id, exc)
        return None
    if pins is not None:
        pin_stored_certificate(pins, rec)
    if heard_now:
        return table.register(reg)
    last: float | None = None
    if rec.last_heartbeat_at is not None:
        # on the store's clock where the row tells it (0033, core/store_heard.py), else by
        # the writer's wall-clock stamp; ``clock_at`` maps either (tests: both real time)
        stamp = rec.heard_store_at if rec.heard_age_s is not None else None
        if clock_at is not None:
            told = _aware(stamp or rec.last_heartbeat_at)
            age = table.clock() - clock_at(told.timestamp())
        elif rec.heard_age_s is not None:
            age = rec.heard_age_s
        else:
            wall_now = wall_now or datetime.now(timezone.utc)
            age = (wall_now - _aware(rec.last_heartbeat_at)).total_seconds()
        if 0.0 <= age < table.expiry_s:
            last = table.clock() - age
    return table.register(reg, last_heartbeat=last)


async def load_nodes(
    table: NodeTable,
    store: Store,
    pins: AddressPins | None = None,
    *,
    transport: NodeTransport,
    forget_s: float | None = None,
    wall_now: datetime | None = None,
    read_now: datetime | None = None,
) -> int:
    """Every stored node into the table (but, with ``forget_s``, those last heard, or never
    heard registered, past it: ``core/liveness.forgettable``, ``node_forget.py``; quiet for
    how long on the store's clock where the row has a valid stamp, else on the wall clock
    ``wall_now``: ``core/store_heard.quiet_s``), with its counters from its ``nodes`` row (bumped
    in the transaction of every recorded batch, never lowered, untouched by the request
    log's retention; migration 0011 raised them once to the log's totals for rows recorded
    before the bumps existed). The request log is not read: a start costs one read of the
    ``nodes`` table, whatever the log's size. ``pins``: the certificate pins of the rows
    not offline, by URL the last heard's (a stale row at a URL never pins over the live
    node's). A row ``transport`` refuses is left out (:func:`entry_from_record`).
    Each row's last heartbeat is aged on the store's clock where the row tells it
    (migration 0033: ``NodeRecord.heard_age_s``); ``read_now``: the clock the others are
    aged on (a replica's ``NodeSync.first_read_now``: the store's clock where this one is
    behind it; ``None``: this wall clock)."""
    loaded = 0
    stats: dict[str, dict[str, int]] = {}
    recs = await store.list_nodes()
    if forget_s is not None:
        wall_now = wall_now or datetime.now(timezone.utc)
        recs = [
            r for r in recs
            if not forgettable(0.0, quiet_s(r.heard_age_s, wall_now, _heard(r)), forget_s,
                               table.expiry_s)
        ]  # fmt: skip
    for rec in recs:
        if entry_from_record(table, rec, transport=transport, wall_now=read_now) is not None:
            loaded += 1
        stats[rec.node_id] = {
            "requests": rec.requests,
            "failures": rec.failures,
            "tokens": rec.tokens_generated,
        }
    table.seed_counters(stats)
    if pins is not None:  # pinned by URL: the last heard live row of a URL is its pin
        live = [r for r in recs if r.state != NodeState.OFFLINE.value]
        for rec in sorted(live, key=_heard):
            pin_stored_certificate(pins, rec)
    return loaded


def _heard(rec: NodeRecord) -> datetime:
    """When ``rec``'s node was last heard (else registered): of rows at one URL (a node
    reinstalled there under a new id leaves its old row, with its old certificate's pin),
    the newest is pinned last."""
    return _aware(rec.last_heartbeat_at or rec.registered_at)
