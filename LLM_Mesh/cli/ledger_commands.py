"""``llm-mesh ledger verify``: check the public ledger, from a registry or a store.

Downloads (``--registry``, default ``$LLM_MESH_REGISTRY_URL``) or reads
(``--database-url``) the signing keys, every checkpoint and every entry, pages of
``--page`` at a time, and hands them to the verifier (``core/ledger_audit.py``); then
checks a consistency proof between each two successive checkpoints and an inclusion
proof of the latest checkpoint's last entry. Prints a summary; exit 1 on any finding,
each named (``missing``, ``changed``, ``reordered``, ``chain``, ``root``, ...).
``--key`` pins the registry's public key (base64) instead of trusting the published list.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol

import httpx
import typer

from LLM_Mesh.cli.common import HomeOpt, RegistryOpt, console, err, fail, settings_from
from LLM_Mesh.core.ledger_audit import Auditor, Report
from LLM_Mesh.core.ledger_entry import MINT
from LLM_Mesh.errors import MeshError

ledger_app = typer.Typer(help="The public ledger of NetworkTokens.", no_args_is_help=True)


class Source(Protocol):
    async def keys(self) -> tuple[list[str], str]: ...  # public keys, origin
    async def checkpoints(self) -> list[dict[str, Any]]: ...
    def entries(self, page: int) -> AsyncIterator[list[dict[str, Any]]]: ...
    async def consistency(self, first: int, second: int) -> list[bytes]: ...
    async def inclusion(self, index: int, size: int) -> list[bytes]: ...


class HttpSource:
    """The registry's public endpoints."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _get(self, path: str, **params: int) -> dict[str, Any]:
        r = await self.client.get(path, params=params)
        if r.status_code != 200:
            raise MeshError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
        data = r.json()
        if not isinstance(data, dict):
            raise MeshError(f"GET {path} did not answer an object")
        return data

    async def keys(self) -> tuple[list[str], str]:
        data = (await self._get("/v1/ledger/keys"))["data"]
        if not data:
            raise MeshError("the registry publishes no ledger key")
        return [k["public_key"] for k in data], str(data[0]["origin"])

    async def checkpoints(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            page = await self._get("/v1/ledger/checkpoints", after=after, limit=10_000)
            out.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return out
            after = int(page["data"][-1]["tree_size"])

    async def entries(self, page: int) -> AsyncIterator[list[dict[str, Any]]]:
        after = -1
        while True:
            data = await self._get("/v1/ledger", after=after, limit=page)
            yield data["data"]
            if not data["has_more"] or not data["data"]:
                return
            after = int(data["data"][-1]["seq"])

    async def consistency(self, first: int, second: int) -> list[bytes]:
        data = await self._get("/v1/ledger/proof/consistency", first=first, second=second)
        return [bytes.fromhex(p) for p in data["proof"]]

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        data = await self._get("/v1/ledger/proof/inclusion", index=index, tree_size=size)
        return [bytes.fromhex(p) for p in data["proof"]]


class StoreSource:
    """The ledger tables of a store, read directly (an operator's audit)."""

    def __init__(self, ledger: Any, origin: str) -> None:
        self.ledger, self.origin = ledger, origin

    async def keys(self) -> tuple[list[str], str]:
        return [k for k, _ in await self.ledger.keys()], self.origin

    async def checkpoints(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            cps, more = await self.ledger.checkpoints(after, 10_000)
            out.extend(c.to_json() for c in cps)
            if not more or not cps:
                return out
            after = cps[-1].tree_size

    async def entries(self, page: int) -> AsyncIterator[list[dict[str, Any]]]:
        after = -1
        while True:
            rows, more = await self.ledger.entries(after, page)
            yield [r.to_json() for r in rows]
            if not more or not rows:
                return
            after = rows[-1].seq

    async def consistency(self, first: int, second: int) -> list[bytes]:
        return list((await self.ledger.consistency_proof(first, second))[2])

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        return list((await self.ledger.inclusion_proof(index, size))[2])


async def audit(source: Source, *, page: int = 10_000, pin: str | None = None) -> Report:
    """Download and check everything (see the module docstring)."""
    keys, origin = await source.keys()
    if pin is not None:
        keys = [pin]
    auditor = Auditor(await source.checkpoints(), keys, origin)
    async for batch in source.entries(page):
        for e in batch:
            auditor.entry(e)
    report = auditor.finish()
    sizes = [s for s in auditor.signed_sizes if s <= report.entries]
    for first, second in itertools.pairwise(sizes):
        auditor.consistency(first, second, await source.consistency(first, second))
    if sizes:
        auditor.inclusion(sizes[-1], await source.inclusion(sizes[-1] - 1, sizes[-1]))
    return report


def print_report(report: Report, seconds: float) -> None:
    issued = -report.balances.get(MINT, 0)
    console.print(
        f"ledger: {report.entries} entries, {report.checkpoints} checkpoints, "
        f"{report.consistency_proofs} consistency and {report.inclusion_proofs} inclusion "
        f"proofs, {len(report.balances)} accounts, {issued} micro-NetworkTokens issued "
        f"(checked in {seconds:.1f} s)"
    )
    if report.ok:
        console.print("[green]OK[/]: every hash, signature, proof and balance checks out")
        return
    for f in report.findings:
        err.print(f"[red]{f.kind}[/]: {f.message}", markup=True, highlight=False)
    if report.more_findings:
        err.print(f"... and {report.more_findings} more")
    err.print(f"[red]MISMATCH[/]: {len(report.findings) + report.more_findings} findings")


@ledger_app.command("verify")
def verify(
    registry: RegistryOpt = None,
    database_url: Annotated[
        str | None, typer.Option(help="read a store directly instead of a registry")
    ] = None,
    key: Annotated[str | None, typer.Option(help="pin the registry's public key (base64)")] = None,
    page: Annotated[int, typer.Option(min=1, max=10_000, help="entries per request")] = 10_000,
    home: HomeOpt = None,
) -> None:
    """Check the whole ledger: hashes, chain, checkpoints' signatures and roots, proofs,
    balances. Exit 1 on any mismatch."""
    settings = settings_from(home, registry, database_url=database_url)

    async def go() -> Report:
        if database_url is None:
            async with httpx.AsyncClient(base_url=settings.registry_url, timeout=60) as client:
                return await audit(HttpSource(client), page=page, pin=key)
        from LLM_Mesh.registry.ledger import SqlLedger
        from LLM_Mesh.registry.store import SqlStore

        async with SqlStore(settings.effective_database_url) as store:

            async def engine() -> Any:
                return store.engine

            return await audit(
                StoreSource(SqlLedger(engine), settings.ledger_origin), page=page, pin=key
            )

    start = time.perf_counter()
    try:
        report = asyncio.run(go())
    except (MeshError, OSError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise fail(exc) from exc
    print_report(report, time.perf_counter() - start)
    if not report.ok:
        raise typer.Exit(1)
