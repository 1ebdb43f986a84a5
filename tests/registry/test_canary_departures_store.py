"""The canary's evidence across sampled probes through the store
(``registry/canary_departures_sync.py``, ``core/canary_departures_step.py``, migration 0030;
found and closed 2026-12-06, ``canarystore35``): the tallies lived in one process's memory,
so a registry restart (each deploy) forgot a liar's evidence and it started from zero
again, and replicas of one store each built their own. Now they are applied to the store's
rows in batches off the request path, loaded at start, added up by every replica (each
probe once), forgotten by ``nodes clear``, bounded."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_departures import Departures, DepartureTally, Evidence, probe_evidence
from LLM_Mesh.core.canary_departures_step import Counts, Step
from LLM_Mesh.core.canary_shape import DEFAULT_MIX
from LLM_Mesh.registry.canary import CanaryProber, ProbeResult
from LLM_Mesh.registry.canary_departures_sync import DepartureSync
from LLM_Mesh.registry.held import clear_and_release
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.store import SqlStore
from tests.registry.canary_mesh import MODEL, LogprobNodes, prober, register, trust
from tests.registry.helpers import Harness, running
from tests.registry.test_canary_departures import leaves_at_once
from tests.registry.test_canary_sampled import answered_by, sim

# -- the step (pure) ----------------------------------------------------------------------


def _counts(t: DepartureTally) -> Counts:
    return Counts(t.score, t.probes, t.departures, t.at_first)


def test_batches_applied_to_any_row_are_the_cusum_of_every_probe_once() -> None:
    """A tally's probes cut into batches, each batch one step applied to what the row holds
    then, give exactly the tally of every probe in order (score and counts); two steps
    composed (a failed write kept) as well."""
    rng = random.Random(7)
    for _ in range(300):
        evs = [Evidence(rng.uniform(-3.0, 2.5), 1, rng.choice([None, 0, 2]))
               for _ in range(rng.randrange(1, 30))]  # fmt: skip
        whole = DepartureTally()
        for ev in evs:
            whole.add(ev)
        row, at = Counts(), 0
        while at < len(evs):
            n = rng.randrange(1, 6)
            step = Step()
            for ev in evs[at : at + n]:
                step.add(ev)
            if rng.random() < 0.3 and at + n < len(evs):  # a batch kept and merged
                later = Step()
                for ev in evs[at + n : at + 2 * n]:
                    later.add(ev)
                step, n = step.then(later), len(evs[at : at + 2 * n])
            row, at = step.apply(row), at + n
        expect = _counts(whole)
        assert math.isclose(row.score, expect.score, abs_tol=1e-9), (row, expect)
        assert (row.probes, row.departures, row.at_first) == (
            expect.probes, expect.departures, expect.at_first,
        )  # fmt: skip


def test_adding_scores_would_count_twice_a_step_does_not() -> None:
    """Two replicas' batches on one row: each step applied to the row as the other left
    it is the CUSUM of both (an addition of scores, or a row written back from a value
    read before, is not: the negative evidence of one is lost by the other's clamp)."""
    a, b = Step(), Step()
    for x in (5.0, -4.0):
        a.add(Evidence(x, 1, None))
    b.add(Evidence(-3.0, 1, None))
    b.add(Evidence(4.0, 1, 0))
    row = b.apply(a.apply(Counts()))
    seq = DepartureTally()
    for x in (5.0, -4.0, -3.0, 4.0):
        seq.add(Evidence(x, 1, None))
    assert math.isclose(row.score, seq.score)  # 4.0: max(0, 1 - 3) + 4
    assert a.apply(Counts()).score + b.apply(Counts()).score != row.score  # 1 + 4


# -- through a registry app -----------------------------------------------------------------


async def _mesh(h: Harness) -> CanaryProber:
    await register(h, "verifier", answered_by(sim()))
    await register(h, "liar", leaves_at_once(sim(), sim(seed=7)))
    await trust(h, "verifier")
    p = prober(h)
    p.mix = replace(DEFAULT_MIX, sampled_share=1.0)
    return p


async def _probes(p: CanaryProber, seeds: range) -> list[ProbeResult]:
    """The liar probed in the shapes of ``seeds``, stopping at the first failure."""
    out = []
    for seed in seeds:
        p.rng = random.Random(seed)
        out.append(await p.probe("liar", MODEL))
        if out[-1].verdict == "fail":
            break
    return out


def _flagged(results: list[ProbeResult]) -> bool:
    return bool(results) and results[-1].detail.startswith("sampled_departures")


async def _fresh_count(tmp_path: Path, seeds: range) -> int:
    """Probes of ``seeds`` a registry with no evidence needs to flag the liar."""
    async with running(tmp_path, store=MemoryStore(), nodes=LogprobNodes()) as h:
        out = await _probes(await _mesh(h), seeds)
    assert _flagged(out), out[-1]
    return len(out)


def _sql(url: str) -> Any:
    """A store on ``url`` for ``running`` (opened by the app's lifespan)."""
    return SqlStore(url)


def _sync(p: CanaryProber) -> DepartureSync:
    assert isinstance(p.shared, DepartureSync)
    return p.shared


async def _by_hand(p: CanaryProber) -> DepartureSync:
    """The app's sync with its loop stopped (what was pending written): the test's
    ``run_once`` calls are then its only batches (none in flight when it reads)."""
    sync = _sync(p)
    await sync.stop()
    return sync


async def test_a_liars_evidence_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    """A registry probes the liar for 3/4 of the probes a fresh one needs, all passing, and
    restarts on the same store (SQLite, PostgreSQL): it flags the liar with the remaining
    probes alone. Failed before (the evidence in memory only): the restarted registry
    needed as many probes from those shapes as a fresh one, more than remained."""
    n = await _fresh_count(tmp_path / "fresh", range(200))
    k = 3 * n // 4
    again = await _fresh_count(tmp_path / "lost", range(k, k + 200))  # the evidence lost
    assert again > n - k, (n, k, again)  # so the test can fail
    async with running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as h:
        before = await _probes(await _mesh(h), range(k))
    assert len(before) == k and {r.verdict for r in before} == {"pass"}
    async with running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as h:
        p = await _mesh(h)
        assert p.departures.get(("liar", MODEL, "", "")) is not None  # loaded at start
        after = await _probes(p, range(k, k + 200))
        assert _flagged(after) and after[-1].quarantined, after[-1]
        assert len(after) <= n - k, (n, k, len(after))
        await (await _by_hand(p)).run_once()  # the pair afresh in the store too
        assert [r for r in await h.store.canary_departure_rows() if r[0][0] == "liar"] == []


async def test_two_registries_on_one_store_add_up(tmp_path: Path, database_url: str) -> None:
    """Two replicas on one store each probe the liar for half of what a fresh registry
    needs: neither flags it alone, together they do (the second's batch applied on the
    first's row and read back), and the store holds each probe once."""
    n = await _fresh_count(tmp_path / "fresh", range(200))
    k = n // 2
    async with (
        running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as ha,
        running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as hb,
    ):
        pa, pb = await _mesh(ha), await _mesh(hb)
        sa, sb = await _by_hand(pa), await _by_hand(pb)
        first = await _probes(pa, range(k))
        assert {r.verdict for r in first} == {"pass"}
        await sa.run_once()
        second = await _probes(pb, range(k, n))
        assert {r.verdict for r in second} == {"pass"}  # B alone: too few
        assert await sb.run_once() == 1  # A's row and B's batch: flagged
        q = hb.runtime.quality
        assert q is not None and q.quarantined("liar", MODEL)
        await sb.run_once()
        rows = await ha.store.canary_departure_rows()
        assert [r for r in rows if r[0][0] == "liar"] == []  # started afresh, in the store too


async def test_nodes_clear_forgets_the_evidence_in_the_store(
    tmp_path: Path, database_url: str
) -> None:
    """The admin's ``nodes clear`` (``Quality.clear``) drops the node's rows: a restart
    after it loads none."""
    async with running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as h:
        p = await _mesh(h)
        sync = await _by_hand(p)
        assert {r.verdict for r in await _probes(p, range(12))} == {"pass"}
        await sync.run_once()
        assert any(key[0] == "liar" for key, _ in await h.store.canary_departure_rows())
        q = h.runtime.quality
        assert q is not None
        await q.clear("liar")
        assert p.departures.keys_of("liar", MODEL) == []
        await sync.run_once()
        assert not any(key[0] == "liar" for key, _ in await h.store.canary_departure_rows())
    async with running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as h:
        assert prober(h).departures.keys_of("liar", MODEL) == []


async def test_the_admins_nodes_clear_command_forgets_the_evidence_in_the_store(
    tmp_path: Path, database_url: str
) -> None:
    """``llm-mesh registry nodes clear`` acts on the store (``held.clear_and_release``), not
    through a registry's ``Quality.clear``: it drops the node's rows too, so a restart after
    it loads none (found 2026-12-06, docs35: it failed before, the rows kept)."""
    async with running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as h:
        p = await _mesh(h)
        sync = await _by_hand(p)
        assert {r.verdict for r in await _probes(p, range(12))} == {"pass"}
        await sync.run_once()
        assert any(key[0] == "liar" for key, _ in await h.store.canary_departure_rows())
        await clear_and_release(h.store, "liar", datetime.now(timezone.utc))
        assert not any(key[0] == "liar" for key, _ in await h.store.canary_departure_rows())
    async with running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as h:
        assert prober(h).departures.keys_of("liar", MODEL) == []


class Spy(MemoryStore):
    """A memory store noting the task of each call to the tallies' rows."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[asyncio.Task[Any] | None] = []

    async def add_canary_departures(self, *args: Any) -> None:
        self.calls.append(asyncio.current_task())
        await super().add_canary_departures(*args)

    async def canary_departure_rows(self, *args: Any) -> Any:
        self.calls.append(asyncio.current_task())
        return await super().canary_departure_rows(*args)


async def test_the_batch_never_runs_on_the_request_path(tmp_path: Path) -> None:
    """A probe adds to the tallies in memory only: no store call in the probe's task; the
    batch writes them."""
    store = Spy()
    async with running(tmp_path, store=store, nodes=LogprobNodes()) as h:
        p = await _mesh(h)
        sync = await _by_hand(p)
        task = asyncio.get_running_loop().create_task(_probes(p, range(10)))
        assert {r.verdict for r in await task} == {"pass"}
        assert task not in store.calls
        assert sync.pending  # written by the batch, not before
        await sync.run_once()
        assert not sync.pending
        assert any(key[0] == "liar" for key in store.canary_departures)


async def test_the_store_drops_the_lowest_score_never_a_row_just_written(
    tmp_path: Path, database_url: str
) -> None:
    """Past a table's bound the lowest scores go (then the least recently written), never
    a row written at or after ``before``; the other tables' rows are not counted."""
    async with SqlStore(database_url) as store:
        for i, score in enumerate([5.0, 1.0, 3.0, 2.0]):
            step = Step()
            step.add(Evidence(score, 1, 0))
            await store.add_canary_departures({(f"n{i}", "m", "", ""): step}, [], 100.0 + i)
        low = Step()
        low.add(Evidence(0.5, 1, None))
        await store.add_canary_departures({("new", "m", "", ""): low}, [], 200.0)
        slice_step = Step()
        slice_step.add(Evidence(0.1, 1, None))
        await store.add_canary_departures({("n0", "m", "text", "top_p=1"): slice_step}, [], 90.0)
        dropped = await store.prune_canary_departures({"pairs": 3, "slices": 5}, before=200.0)
        assert dropped == 2
        kept = {key[0] for key, _ in await store.canary_departure_rows() if not key[3]}
        assert kept == {"n0", "n2", "new"}  # 1.0 and 2.0 gone; "new" (0.5) just written


def test_a_flag_on_the_stores_tallies_starts_the_pair_afresh() -> None:
    """A tally made the store's at its threshold is a flag: not kept, the pair afresh."""
    d = Departures()
    h = d.threshold()
    assert d.set(("n", "m", "", ""), h / 2) is None and d.get(("n", "m", "", "")) is not None
    flag = d.set(("n", "m", "stream", ""), h + 1.0, probes=9)
    assert flag is not None and flag.probes == 9 and flag.kind == "stream"


class Failing(MemoryStore):
    """A memory store whose next ``fail`` batches fail."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def add_canary_departures(self, *args: Any) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise OSError("the store is away")
        await super().add_canary_departures(*args)


async def _noop(*_args: Any) -> None:
    return None


async def test_a_failed_batch_is_kept_composed_with_what_came_since() -> None:
    """A batch the store refused is written with the next (each probe once); a pair started
    afresh meanwhile keeps only what came after; pending keys are bounded."""
    store, d = Failing(), Departures()
    sync = DepartureSync(store, d, _noop, max_pending=4)
    xs = [2.0, -1.0, 3.0]
    d.add("n", "m", Evidence(xs[0], 1, 0))
    d.add("gone", "m", Evidence(5.0, 1, 0))
    store.fail = 1
    try:
        await sync.run_once()
    except OSError:
        pass
    else:  # pragma: no cover - the store failed
        raise AssertionError("the batch did not fail")
    for x in xs[1:]:
        d.add("n", "m", Evidence(x, 1, None))
    d.forget("gone")
    d.add("gone", "m", Evidence(1.0, 1, None))  # after the clear: kept
    for i in range(6):  # past max_pending: judged here, not written
        d.add(f"x{i}", "m", Evidence(1.0, 1, None))
    assert sync.dropped == 4 and len(sync.pending) == 4  # n, gone, x0, x1
    await sync.run_once()
    rows = dict(await store.canary_departure_rows())
    assert math.isclose(rows[("n", "m", "", "")].score, 4.0)  # 2 - 1 + 3, each once
    assert rows[("n", "m", "", "")].probes == 3
    assert math.isclose(rows[("gone", "m", "", "")].score, 1.0)  # the 5.0 before it: forgotten


async def test_a_clear_by_another_replica_forgets_the_evidence_here(
    tmp_path: Path, database_url: str
) -> None:
    """Two replicas on one store: A's evidence and B's together flag the liar at B (B's
    tallies afresh, the store's rows deleted); A still holds what it had read back. The
    admin clears the node at B; A's watcher sees the clear in the store, and A's next probe
    starts from nothing, not from the evidence the flag already used and the admin cleared.
    Failed before (found 2026-12-06, review35b): only the replica that cleared forgot, so
    A's first departure after the clear flagged the node again on pre-clear evidence."""
    async with (
        running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as ha,
        running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as hb,
    ):
        pa, pb = await _mesh(ha), await _mesh(hb)
        sa, sb = await _by_hand(pa), await _by_hand(pb)
        qa, qb = ha.runtime.quality, hb.runtime.quality
        assert qa is not None and qb is not None
        h = pa.departures.threshold()
        assert pa.departures.add("liar", MODEL, Evidence(0.6 * h, 1, 0)) is None
        await sa.run_once()
        assert pb.departures.add("liar", MODEL, Evidence(0.6 * h, 1, 0)) is None
        assert await sb.run_once() == 1  # A's row and B's batch: flagged at B
        await sb.run_once()  # the rows deleted
        await qa.load()
        assert qa.quarantined("liar", MODEL)
        await qb.clear("liar")
        await qa.load()  # A's watcher: the clear, made at B
        assert not qa.quarantined("liar", MODEL)
        assert pa.departures.keys_of("liar", MODEL) == []
        assert pa.departures.add("liar", MODEL, Evidence(0.5 * h, 1, 0)) is None
        await sa.run_once()
        rows = dict(await ha.store.canary_departure_rows())
        assert math.isclose(rows[("liar", MODEL, "", "")].score, 0.5 * h)  # after the clear only


def _lie_and_honest() -> tuple[Evidence, Evidence]:
    """One sampled probe's evidence (at 0.8, 8 tokens each the arg max at 90 %): leaving
    the arg max at the first token, and an honest draw that kept it throughout."""
    top = [TokenLogprob(f"t{i}", math.log(0.9), ((f"t{i}", math.log(0.9)), (f"u{i}", math.log(0.05))))
           for i in range(8)]  # fmt: skip
    ref = Answer("", tuple(top))
    lie = Answer("", (TokenLogprob("u0", math.log(0.05)), *top[1:]))
    return probe_evidence(ref, lie, 0.8), probe_evidence(ref, ref, 0.8)


async def test_a_node_lying_to_one_replica_alone_is_flagged_by_it() -> None:
    """A node tells the replicas apart (their addresses) and leaves the arg max at once on
    replica A's sampled probes alone, honest on B's, one probe each in turn, each replica's
    batch written and read back after its probe: A flags it after as many of its probes as
    it needs alone (13). Failed before (found 2026-12-06, review35b): with the tallies
    shared, B's honest answers' negative evidence reset A's lies each round, and A never
    flagged it (none in 500), where a replica with tallies of its own did after 13."""
    lie, honest = _lie_and_honest()
    alone = Departures()
    needed = next(i for i in range(1, 100) if alone.add("n", "m", lie) is not None)
    store, da, db = MemoryStore(), Departures(), Departures()
    sa, sb = DepartureSync(store, da, _noop), DepartureSync(store, db, _noop)
    flagged_at = None
    for i in range(1, 501):
        if da.add("n", "m", lie) is not None:
            flagged_at = i
            break
        await sa.run_once()
        assert db.add("n", "m", honest) is None
        await sb.run_once()
    assert flagged_at == needed == 13, (flagged_at, needed)


async def test_a_clear_read_at_another_replica_keeps_the_evidence_written_since(
    tmp_path: Path, database_url: str
) -> None:
    """The clear made at B (its rows deleted there, with the admin's command); B's probes
    find the node lying again and B writes that evidence; then A's watcher reads the clear
    and A forgets its own copy of the node's tallies, but not the store's rows: they hold
    only what came after the clear, B's. Failed before (found 2026-12-06, review35d): A's
    forget queued the node's rows for deletion, and A's next batch deleted B's post-clear
    evidence (each replica's poll after a clear wiped what the others had gathered since)."""
    async with (
        running(tmp_path / "a", store=_sql(database_url), nodes=LogprobNodes()) as ha,
        running(tmp_path / "b", store=_sql(database_url), nodes=LogprobNodes()) as hb,
    ):
        pa, pb = await _mesh(ha), await _mesh(hb)
        sa, sb = await _by_hand(pa), await _by_hand(pb)
        qa, qb = ha.runtime.quality, hb.runtime.quality
        assert qa is not None and qb is not None
        h = pa.departures.threshold()
        assert pa.departures.add("liar", MODEL, Evidence(0.6 * h, 1, 0)) is None
        await sa.run_once()
        assert pb.departures.add("liar", MODEL, Evidence(0.6 * h, 1, 0)) is None
        assert await sb.run_once() == 1  # flagged at B
        await sb.run_once()
        await qa.load()
        assert qa.quarantined("liar", MODEL)
        await qb.clear("liar")
        await sb.run_once()  # B's clear: the node's rows deleted
        assert pb.departures.add("liar", MODEL, Evidence(0.4 * h, 1, 0)) is None  # after it
        await sb.run_once()
        await qa.load()  # A's watcher: the clear, made at B
        assert not qa.quarantined("liar", MODEL)
        assert pa.departures.keys_of("liar", MODEL) == []  # A's copy forgotten
        await sa.run_once()  # A's next batch
        rows = dict(await ha.store.canary_departure_rows())
        assert ("liar", MODEL, "", "") in rows  # before the fix: deleted by A's batch
        assert math.isclose(rows[("liar", MODEL, "", "")].score, 0.4 * h)  # B's, after it


async def test_a_flag_whose_quarantine_failed_is_tried_again_its_evidence_kept() -> None:
    """Replica A's lies and B's together flag the node at B, whose quarantine fails (the
    store away a moment): the next run quarantines it, and only then are its rows deleted.
    Failed before (found 2026-12-06, review36): the pair was started afresh before the
    quarantine, so the failure lost both, and the liar went on from zero."""
    store, sb, quarantined = await _flag_refused_once()
    assert quarantined == []
    assert any(k[:2] == ("n", "m") for k, _ in await store.canary_departure_rows())  # kept
    await sb.run_once()  # nothing new: the flag handed on again
    assert quarantined == [("n", "m")]
    await sb.run_once()  # then the pair afresh: its rows deleted
    assert not any(k[:2] == ("n", "m") for k, _ in await store.canary_departure_rows())


async def test_a_flag_not_yet_quarantined_goes_with_a_clear() -> None:
    """The admin clears the node (here, or read from another replica's clear) before the
    flag's quarantine could be written: the flag goes with the evidence it was made of."""
    _store, sb, quarantined = await _flag_refused_once()
    sb.lifted("n")
    await sb.run_once()
    assert quarantined == [] and sb.unquarantined == {}


async def _flag_refused_once() -> tuple[MemoryStore, DepartureSync, list[tuple[str, str]]]:
    """Replica A's lies and B's one together flag the node at B, whose quarantine fails."""
    lie, _ = _lie_and_honest()
    alone = Departures()
    needed = next(i for i in range(1, 100) if alone.add("n", "m", lie) is not None)
    store, da, db = MemoryStore(), Departures(), Departures()
    quarantined: list[tuple[str, str]] = []
    refuse = [1]

    async def on_flag(node_id: str, model: str, _tally: DepartureTally) -> None:
        if refuse[0] > 0:
            refuse[0] -= 1
            raise OSError("the store is away")
        quarantined.append((node_id, model))

    sa, sb = DepartureSync(store, da, _noop), DepartureSync(store, db, on_flag)
    for _ in range(needed - 1):
        assert da.add("n", "m", lie) is None
    await sa.run_once()
    assert db.add("n", "m", lie) is None  # B's one lie: not a flag at B alone
    try:
        await sb.run_once()  # A's rows and B's lie: a flag, its quarantine refused
    except OSError:
        pass
    else:  # pragma: no cover - on_flag refused
        raise AssertionError("the quarantine did not fail")
    return store, sb, quarantined


async def test_a_probes_flag_whose_quarantine_failed_is_written_by_the_next_run(
    tmp_path: Path,
) -> None:
    """The liar flagged by this replica's own tallies at a probe, whose quarantine the store
    refuses a moment: the next run of the sync writes it. Failed before (found 2026-12-06,
    review36): the pair was started afresh at the flag (its rows deleted by the next batch)
    and the failed write lost the flag: never quarantined, the evidence gone."""
    async with running(tmp_path, store=MemoryStore(), nodes=LogprobNodes()) as h:
        p = await _mesh(h)
        sync = await _by_hand(p)
        real, refused = p.quality.record, []

        async def record(node_id: str, model: str, *, ok: bool, reason: str | None,
                         probe: bool = True) -> Any:  # fmt: skip
            if not ok and not refused:
                refused.append(reason)
                raise OSError("the store is away")
            return await real(node_id, model, ok=ok, reason=reason, probe=probe)

        p.quality.record = record  # type: ignore[method-assign]
        for seed in range(200):
            p.rng = random.Random(seed)
            try:
                assert (await p.probe("liar", MODEL)).verdict == "pass"
            except OSError:
                break
        assert refused and str(refused[0]).startswith("canary: sampled_departures"), refused
        assert not p.quality.quarantined("liar", MODEL)
        await sync.run_once()
        assert p.quality.quarantined("liar", MODEL)
