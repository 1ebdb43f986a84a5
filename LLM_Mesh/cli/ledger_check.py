"""The check of ``llm-mesh ledger verify`` and ``ledger statement``: a ledger's :class:`Source`
(a registry's endpoints, ``cli/ledger_http.py``, or a store, ``cli/ledger_store.py``) read
and handed to the verifier (``core/ledger_audit.py``) by :func:`audit` (split from
``cli/ledger_commands.py``, which runs the command: its docstring).

Entries are read ahead while the verifier works (a queue of a few batches), and the
consistency proofs between successive checkpoints are fetched meanwhile, at most
:data:`PROOFS_IN_FLIGHT` at a time; then an inclusion proof of the latest checkpoint's last
entry.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import httpx

from LLM_Mesh.cli.ledger_http import Row
from LLM_Mesh.cli.read_ahead import read_ahead
from LLM_Mesh.core.ledger_audit import Auditor, Report, stored_findings
from LLM_Mesh.errors import MeshError

__all__ = ["PROOFS_IN_FLIGHT", "Source", "audit"]

PROOFS_IN_FLIGHT = 8


class Source(Protocol):
    async def keys(self) -> tuple[list[str], str]: ...  # public keys, origin
    async def checkpoints(self) -> list[dict[str, Any]]: ...
    def entries(self, page: int) -> AsyncIterator[list[Row]]: ...
    async def consistency(self, first: int, second: int) -> list[bytes]: ...
    async def inclusion(self, index: int, size: int) -> list[bytes]: ...

    # balances rows at a tree size: the store's every row (``stored_every``), or the one
    # account a registry shows (``None``: none shown)
    stored_every: bool

    async def stored(self) -> tuple[int, dict[str, tuple[int, int]]] | None: ...


async def _proofs(source: Source, sizes: Sequence[int]) -> list[list[bytes] | Exception]:
    """The consistency proofs between successive sizes, a few requests at a time; a
    failed request's error in its place (it matters only if the entries reach it)."""
    gate = asyncio.Semaphore(PROOFS_IN_FLIGHT)

    async def one(first: int, second: int) -> list[bytes] | Exception:
        async with gate:
            try:
                return await source.consistency(first, second)
            except (MeshError, ValueError, httpx.HTTPError) as exc:
                return exc

    return list(await asyncio.gather(*(one(a, b) for a, b in itertools.pairwise(sizes))))


async def audit(
    source: Source,
    *,
    page: int = 10_000,
    pin: str | None = None,
    remembered: tuple[int, bytes] | None = None,
    watch: Callable[[Sequence[Row]], None] | None = None,
    now_us: int | None = None,
    judge: Callable[[list[str], object], list[str]] | None = None,
) -> Report:
    """Download and check everything (see the module docstring); ``remembered``: the size
    and root an earlier audit of this ledger checked (the history must still hash to it);
    ``watch``: called with every batch of entries as read (``--receipt``); ``now_us``: the
    verifier's clock: with it, the time rules of ``core/ledger_time.py`` hold (each
    checkpoint within its key's validity window, entries no later than the checkpoints
    covering them, nothing ahead of the clock); ``ledger verify`` always passes it;
    ``judge``: which of the published keys to trust (given them and the source's
    ``key_rotations``; ``cli/ledger_keys.KeyMemory.judge``), unless ``pin``."""
    keys, origin = await source.keys()
    # each published key's ``created`` (what tells its validity window)
    created = getattr(source, "created", None) if now_us is not None else None
    if pin is not None:
        keys = [pin]
    elif judge is not None:  # found 2026-12-05: any key the registry listed was taken
        keys = judge(keys, getattr(source, "key_rotations", None))
    auditor = Auditor(
        await source.checkpoints(), keys, origin, remembered, pinned=pin is not None,
        created=created, now_us=now_us,
    )  # fmt: skip
    signed = auditor.signed_sizes
    # a store's balances rows, read before the entries: held against the balances of the
    # entries up to the size read with them (entries appended meanwhile come after)
    stored = await source.stored()
    at, fed, computed = -1 if stored is None else stored[0], 0, None
    proofs = asyncio.ensure_future(_proofs(source, signed))
    try:
        async for batch in read_ahead(source.entries(page)):
            if watch is not None:
                watch(batch)
            for i in range(0, len(batch), 2_000):  # let the readers run between slices
                rows, cut = batch[i : i + 2_000], at - fed
                if computed is None and 0 <= cut <= len(rows):  # the stored size is here
                    auditor.rows(rows[:cut])
                    computed = dict(auditor.report.balances)
                    auditor.rows(rows[cut:])
                else:
                    auditor.rows(rows)
                fed += len(rows)
                await asyncio.sleep(0)
        if stored is not None:  # the entries stop short of the stored size: as they are
            computed = dict(auditor.report.balances) if computed is None else computed
            for f in stored_findings(computed, stored[1], at, every=source.stored_every):
                auditor.report.add(f.kind, f.message)
        report = auditor.finish()
        fetched = await proofs
    finally:
        proofs.cancel()
    for (first, second), proof in zip(itertools.pairwise(signed), fetched, strict=True):
        if second <= report.entries:
            if isinstance(proof, Exception):
                raise proof
            auditor.consistency(first, second, proof)
    # a size-0 tree (an earlier audit of an empty ledger remembered it) holds no entry to
    # prove: found 2026-12-07 (money41), the next audit asked for entry -1 and stopped
    sizes = [s for s in signed if 0 < s <= report.entries]
    if sizes:
        auditor.inclusion(sizes[-1], await source.inclusion(sizes[-1] - 1, sizes[-1]))
    return report
