"""Active health checks and the heartbeat-expiry sweep.

Every ``settings.health_check_interval_s`` (with ±10 % jitter so many
registries do not beat in step) :meth:`HealthChecker.run_pass` sends
``GET {node}/mesh/health`` to every node that is not OFFLINE: ``concurrency``
workers take nodes from one shuffled list (bounded tasks and sockets, whatever
the fleet size; the shuffle spreads each pass's load over hosts differently),
each check within ``timeout_s`` in all (the app: twice ``Settings.connect_timeout_s``,
clamped to 1-10 s: 6 s): the address check of a URL not pinned yet, the connect (TLS
included), the request and the whole answer (at most 1 MiB decoded). There is no
separate connect timeout: a slow connect spends the same budget, and a check that runs
out of it fails as a timeout (``TimeoutError: no whole answer within 6.0 s``), logged
like any failed check, whichever part was slow. A node that fails leaves routing until a
check finds it healthy again: nodes that failed are checked again every sweep
(one heartbeat interval), so a recovered node is back within seconds, not at
the next full pass. Every heartbeat interval the sweep takes
nodes whose heartbeats expired out of routing (they already were by time:
:func:`LLM_Mesh.core.liveness.is_routable`; the router learns it here).
``on_change(node_id)`` is called whenever a check or the sweep changed a
node's liveness. 10,000 hosts answering at once take about a second a pass
(``tests/registry/test_health.py``).

With ``leases`` (replicas on one store, :class:`~LLM_Mesh.registry.node_sync.
StoreHealthLeases`) a pass checks only the nodes whose lease this replica took (for most
of an interval), and writes its results for the other replicas to apply: each node is
checked once per pass across the replicas, with since when the checks find it so and the
reason of a failure (``core/check_state.py``: what every replica tells the node in its
heartbeat answers). ``POST /mesh/health-check`` (``force``) checks every node here and
still shares the results.

A check passes on a 200 whose body does not name another node (:func:`other_node`): a
node answers ``{"node_id": ...}``, so node keys registered at another node's URL fail
their checks (and earn no uptime) instead of borrowing that node's health. With
``registry_id`` set (every registry that checks node signatures: the app sets it to the
gateway's id at start), each check also sends a fresh challenge (a 32-byte random nonce,
the node id, this registry's id, the time: :mod:`LLM_Mesh.core.health_proof`) and passes
only when the answer carries the node key's signature of it: a server answering for ids
whose keys it does not hold, an answer replayed from an earlier check, or one signed for
another id or registry fails the check, so the node leaves routing (as for any failed
check, until a check passes) and its heartbeats credit no uptime. Such failures are
logged and counted (``on_result``: the gateway's ``llm_mesh_gateway_health_checks``,
``result="unproven"``). Checking a proof costs about 0.2 ms of CPU per node (one Ed25519
verification and the id's SHA-256; the node's signature about 0.05 ms), some 2 s of a
10,000-node pass every 5 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from LLM_Mesh.core.check_state import CheckState, reason
from LLM_Mesh.core.health_proof import Challenge, check_proof, new_challenge
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.logs import safe_id
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.node_client import NodeClient, NodeTransportError
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable

log = logging.getLogger(__name__)


class Leases(Protocol):
    async def claim(self, node_ids: Sequence[str], lease_s: float) -> set[str]: ...

    async def record(self, results: Sequence[tuple[str, CheckState]]) -> None: ...

    def round_logs(self) -> Iterable[RoundLog]:
        """Its claims' and results' failed rounds (``failed_rounds.HasRoundLogs``)."""
        ...


MAX_HEALTH_BODY = 65_536  # a node's health answer is ~150 bytes; longer is not read


def other_node(content: bytes, node_id: str) -> str | None:
    """Why a 200 health answer is not ``node_id``'s: it names another node (several node
    keys registered at one node's URL, each to be credited uptime there), else ``None``.
    An answer that names no node (not JSON, or no ``node_id``) passes: only a node
    claiming to be another is refused."""
    if len(content) > MAX_HEALTH_BODY:
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    named = data.get("node_id") if isinstance(data, dict) else None
    if isinstance(named, str) and named != node_id:
        return f"answers as node {safe_id(named) or '(an unprintable id)'}"
    return None


class HealthChecker:
    """Checks nodes actively; owned and started by the app's lifespan."""

    def __init__(
        self,
        table: NodeTable,
        client: Callable[[], NodeClient],
        *,
        interval_s: float,
        sweep_interval_s: float,
        timeout_s: float = 5.0,
        concurrency: int = 32,
        jitter: float = 0.1,
        rng: random.Random | None = None,
        on_change: Callable[[str], None] | None = None,
        leases: Leases | None = None,
        wall_clock: Callable[[], float] = time.time,
        after_pass: Callable[[], object] | None = None,
        registry_id: str | None = None,
        on_result: Callable[[str], None] | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if interval_s <= 0 or sweep_interval_s <= 0 or timeout_s <= 0 or concurrency < 1:
            raise ValueError("intervals, timeout and concurrency must be positive")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        self.table = table
        self._client = client
        self.interval_s = interval_s
        self.sweep_interval_s = sweep_interval_s
        self.timeout_s = timeout_s
        self.jitter = jitter
        self.concurrency = concurrency
        self._on_change = on_change
        self.leases = leases
        self._wall = wall_clock  # stamps each result (``NodeEntry.checked_at``)
        self._rng = rng or random.Random()
        self._after_pass = after_pass  # upkeep after each periodic pass (the app: pins' retain)
        # the registry's id in the signed challenge (None: no challenge, any 200 not naming
        # another node passes: test registries whose nodes have no keys)
        self.registry_id = registry_id
        self.on_result = on_result  # "ok" | "failed" | "unproven", once per check (metrics)
        self._random = random_bytes
        self._tasks: list[asyncio.Task[None]] = []

    async def check(self, entry: NodeEntry) -> dict[str, Any]:
        """Check one node; marks it ok/failed in the table and returns the result."""
        return (await self._checked(entry))[0]

    async def _checked(self, entry: NodeEntry) -> tuple[dict[str, Any], float]:
        """:meth:`check`'s result and when the check was made (unix seconds): the store
        keeps a result only over an older one (``StoreHealthLeases.record``)."""
        clock = self.table.clock
        t0 = clock()
        error: str | None = None
        unproven = False
        challenge: Challenge | None = None
        if self.registry_id is not None:
            challenge = new_challenge(self.registry_id, entry.node_id, self._wall(), self._random)
        try:
            resp = await self._client().get(
                entry.url + "/mesh/health",
                timeout_s=self.timeout_s,
                headers=challenge.headers() if challenge is not None else None,
            )
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}"
            else:
                error = other_node(resp.content, entry.node_id)
                if error is None and challenge is not None:
                    error = check_proof(challenge, resp.headers)
                    unproven = error is not None
        except NodeTransportError as exc:
            error = f"{exc.kind}: {exc}".rstrip(": ")
        except Exception as exc:  # one odd answer must not lose the whole pass
            log.exception("health check of node %s raised", entry.node_id)
            error = f"check failed: {type(exc).__name__}: {exc}"
        latency_ms = (clock() - t0) * 1000.0
        ok = error is None
        changed = entry.check_failed == ok
        # to the microsecond, as the store keeps it: replicas reading the row say the same since
        at = round(self._wall(), 6)
        self.table.set_check_result(entry.node_id, ok, at=at, why=error)
        if changed and self._on_change is not None:
            self._on_change(entry.node_id)
        if not ok:
            log.warning("health check failed for node %s (%s): %s", entry.node_id, entry.url, error)
        if self.on_result is not None:
            self.on_result("ok" if ok else "unproven" if unproven else "failed")
        result = {
            "node_id": entry.node_id,
            "url": entry.url,
            "ok": ok,
            "latency_ms": round(latency_ms, 3),
            "error": error,
        }
        return result, at

    async def run_pass(self, *, force: bool = False) -> list[dict[str, Any]]:
        """Check every node that is not OFFLINE (with leases: whose lease this replica
        took, unless ``force``), now; one result per node checked."""
        entries = [e for e in self.table.entries() if e.state is not NodeState.OFFLINE]
        if not force:
            entries = await self._leased(entries, self.interval_s * (1 - self.jitter) * 0.9)
        return await self._shared(await self._check_all(entries))

    async def recheck_failed(self) -> list[dict[str, Any]]:
        """Check again the nodes whose last check failed (they are out of routing)."""
        entries = [
            e for e in self.table.entries() if e.check_failed and e.state is not NodeState.OFFLINE
        ]
        entries = await self._leased(entries, self.sweep_interval_s * 0.9)
        return await self._shared(await self._check_all(entries))

    async def _leased(self, entries: list[NodeEntry], lease_s: float) -> list[NodeEntry]:
        if self.leases is None or not entries:
            return entries
        mine = await self.leases.claim([e.node_id for e in entries], lease_s)
        return [e for e in entries if e.node_id in mine]

    async def _shared(self, checked: list[tuple[dict[str, Any], float]]) -> list[dict[str, Any]]:
        if self.leases is not None and checked:
            await self.leases.record([(str(r["node_id"]), self._state(r, at)) for r, at in checked])
        return [r for r, _ in checked]

    def _state(self, result: dict[str, Any], at: float) -> CheckState:
        """What a check found, for the other replicas: its result, the failure's reason,
        and since when (the table's, unless a store row changed the node's state there
        meanwhile; the store keeps its own while the result holds)."""
        ok = bool(result["ok"])
        entry = self.table.get(str(result["node_id"]))
        since = None if entry is None or entry.check_failed == ok else entry.check_since
        why = None if ok else reason(str(result["error"]))
        return CheckState(ok=ok, since=since, checked_at=at, why=why)

    async def _check_all(self, entries: list[NodeEntry]) -> list[tuple[dict[str, Any], float]]:
        self._rng.shuffle(entries)
        results: list[tuple[dict[str, Any], float]] = []
        todo = iter(entries)

        async def worker() -> None:
            for entry in todo:  # one shared iterator: each node checked once
                results.append(await self._checked(entry))

        workers = min(self.concurrency, len(entries))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return sorted(results, key=lambda r: str(r[0]["node_id"]))

    def sweep(self) -> list[str]:
        """Nodes that just left routing because their heartbeats expired."""
        expired = self.table.sweep_expired()
        for node_id in expired:
            if self._on_change is not None:
                self._on_change(node_id)
            log.info("node %s missed its heartbeats; out of routing until it beats again", node_id)
        return expired

    def upkeep(self) -> None:
        """What runs after each periodic pass (``after_pass``; the app: forget the pins of
        node URLs no node has any more, ``AddressPins.retain``)."""
        if self._after_pass is not None:
            self._after_pass()

    def next_delay(self) -> float:
        spread = self.interval_s * self.jitter
        return self.interval_s + self._rng.uniform(-spread, spread)

    async def _check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            try:
                await self.run_pass()
                self.upkeep()
            except Exception:  # a bug must not stop the loop
                log.exception("health-check pass failed")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                self.sweep()
                await self.recheck_failed()
            except Exception:  # a bug must not stop the loop (nodes would never expire)
                log.exception("heartbeat-expiry sweep failed")

    def round_logs(self) -> Iterable[RoundLog]:
        """The leases' claims and results (none without a store) (``failed_rounds.HasRoundLogs``)."""
        return () if self.leases is None else self.leases.round_logs()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._check_loop(), name="llm-mesh-health-check"),
                asyncio.create_task(self._sweep_loop(), name="llm-mesh-expiry-sweep"),
            ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
