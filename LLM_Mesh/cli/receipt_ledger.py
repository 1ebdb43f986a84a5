"""``llm-mesh receipt verify --ledger``: a request's public ledger entries, fetched bounded.

``GET /v1/ledger?request_id=`` (``registry/ledger_lookup.py``) of the first replica that
answers, page after page (``after`` = the last page's last ``seq``, while ``has_more``:
each page must go forward), until it has every entry the registry lists for the request.
Bounded, for a hostile registry: each answer read to at most :data:`PAGE_BYTES` decoded
within 3 × the timeout, at most :data:`MAX_ENTRIES` entries (a request writes a few: a share
and a fee a part, at most 16 parts), :data:`MAX_PAGES` pages and :data:`MAX_BYTES` bytes in
all (found 2026-12-07, money42: a registry answering 400 pages of one entry each, every
page just under 1 MiB, had the command read and hold 400 MiB), past which it stops with an
error naming the bound (so at most :data:`MAX_BYTES` and one page are read); and all of it
within the command's ``--timeout``. What they are
compared with is pure (``core/receipt_ledger.ledger_findings``). With the registry's keys,
:func:`included` asks the newest signed checkpoint (``GET /v1/ledger/checkpoints/latest``)
and an inclusion proof of each entry in it (``GET /v1/ledger/proof/inclusion``), each read
bounded the same way.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import httpx

from LLM_Mesh.bounded_http import call
from LLM_Mesh.cli.common import no_registry_answered
from LLM_Mesh.cli.overall_timeout import Runner
from LLM_Mesh.client import gateway_urls
from LLM_Mesh.core import strict_json
from LLM_Mesh.core.checkpoint import BadCheckpoint, open_checkpoint
from LLM_Mesh.core.receipt_ledger import inclusion_finding, seen_finding, seen_sizes
from LLM_Mesh.tls import client_ssl_context

__all__ = [
    "MAX_BYTES",
    "MAX_ENTRIES",
    "MAX_PAGES",
    "PAGE_BYTES",
    "PROOFS_S",
    "included",
    "request_entries",
]

PAGE = 100
MAX_ENTRIES = 400  # 16 parts × (settle, forfeit, fee) and a release are under 50
PAGE_BYTES = 1 << 20  # 100 entries are ~60 KiB of JSON
# in all (module doc): an honest registry lists 400 entries in 4 pages of ~60 KiB; a
# registry that pages one at a time still fits 40 (the list's own paging obeys ``limit``)
MAX_PAGES = 40
MAX_BYTES = 4 * PAGE_BYTES
# all of a request's inclusion proofs, in all (each answer is also bounded by 3 × the
# timeout): an honest registry answers one in milliseconds, a request has under 50 entries
# (found 2026-12-05: each bounded alone, 400 listed entries each answered just within its
# 30 s held `receipt verify --ledger` for 3 h 20 min)
PROOFS_S = 120.0


def request_entries(
    registry_url: str | Sequence[str], request_id: str, timeout_s: float = 10.0,
    ca_file: str | None = None, run: Runner = asyncio.run, named: bool = False,
) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The replica that answered (ask it first next: found 2026-12-05, a hung first replica
    was waited for at every step) and the ledger entries of ``request_id`` it publishes,
    oldest first; ``ValueError`` naming what is wrong with its answers. ``run``: the
    command's ``--timeout`` over all of it (``overall_timeout.Deadline``); ``named``: the
    registry was given by ``--registry`` (what ``no_registry_answered`` says to check)."""
    urls = gateway_urls(registry_url)
    return run(_entries(urls, request_id, timeout_s, ca_file, named))


async def _entries(
    urls: Sequence[str], request_id: str, timeout_s: float, ca_file: str | None, named: bool
) -> tuple[str, list[dict[str, Any]]]:
    async with httpx.AsyncClient(timeout=timeout_s, verify=client_ssl_context(ca_file)) as c:
        for n, url in enumerate(urls, 1):
            try:
                return url, await _pages(c, url, request_id, timeout_s)
            except httpx.TransportError as exc:
                if n == len(urls):
                    what = "the request's ledger entries"
                    raise no_registry_answered(urls, exc, named, what=what) from exc
    raise ValueError("no registry URL given")  # pragma: no cover - gateway_urls refuses none


async def _pages(
    client: httpx.AsyncClient, url: str, request_id: str, timeout_s: float
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = -1
    what = "GET /v1/ledger?request_id="
    read = 0
    for pages in range(1, MAX_PAGES + 1):
        params = {"request_id": request_id, "after": after, "limit": PAGE}
        r = await call(client, "GET", url + "/v1/ledger", PAGE_BYTES, deadline_s=3 * timeout_s,
                       params=params)  # fmt: skip
        read += len(r.content)  # (so at most MAX_BYTES + a page is ever read)
        if read > MAX_BYTES:
            raise ValueError(f"{what}'s pages for one request are over {MAX_BYTES:,} bytes "
                             f"in all ({pages} pages): not read further")  # fmt: skip
        if r.status_code != 200:
            raise ValueError(f"{what} answered {r.status_code}: {r.text[:200]}")
        try:
            page = strict_json.loads_object(r.content)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{what}'s answer is not a JSON object ({exc})") from None
        data = page.get("data")
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise ValueError(f"{what}'s answer has no list of entries (data)")
        seqs = [e.get("seq") for e in data]
        if not all(type(s) is int for s in seqs) or any(s <= after for s in seqs):
            raise ValueError(f"{what}'s pages after {after} do not go forward")
        out += data
        if len(out) > MAX_ENTRIES:
            raise ValueError(f"{what} lists more than {MAX_ENTRIES} entries for one request")
        if page.get("has_more") is not True or not data:
            return out
        after = seqs[-1]
    raise ValueError(f"{what} still has more after {MAX_PAGES} pages ({len(out)} entries) for "
                     "one request: not read further")  # fmt: skip


def included(
    registry_url: str | Sequence[str], entries: Sequence[Mapping[str, Any]],
    keys: Collection[bytes], timeout_s: float = 10.0, ca_file: str | None = None,
    run: Runner = asyncio.run, seen: tuple[int, bytes] | None = None, named: bool = False,
) -> tuple[list[str], list[int]]:  # fmt: skip
    """Findings for ``entries`` not in the registry's newest checkpoint signed by one of
    ``keys``, and the seqs of those after it (not in a signed checkpoint yet): of the first
    replica that answers (found 2026-12-05: the first alone, a hung one's ReadTimeout the
    command's end); ``run`` as :func:`request_entries`'. ``seen``: the size and root an
    earlier ``ledger verify`` of this registry checked: the checkpoint must be a state of
    that log (``core/receipt_ledger.seen_finding``), else it is the only finding; ``named``
    as :func:`request_entries`'."""
    urls = gateway_urls(registry_url)
    for n, url in enumerate(urls, 1):
        try:
            return run(_included(url, entries, keys, timeout_s, ca_file, seen))
        except httpx.TransportError as exc:
            if n == len(urls):
                what = "its checkpoint and inclusion proofs"
                raise no_registry_answered(urls, exc, named, what=what) from exc
    raise ValueError("no registry URL given")  # pragma: no cover - gateway_urls refuses none


async def _json(client: httpx.AsyncClient, url: str, path: str, t: float, **params: Any) -> Any:
    r = await call(client, "GET", url + path, PAGE_BYTES, deadline_s=3 * t, params=params)
    if r.status_code != 200:
        raise ValueError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
    try:
        return strict_json.loads_object(r.content)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"GET {path}'s answer is not a JSON object ({exc})") from None


async def _included(
    url: str, entries: Sequence[Mapping[str, Any]], keys: Collection[bytes], t: float,
    ca_file: str | None, seen: tuple[int, bytes] | None = None,
) -> tuple[list[str], list[int]]:  # fmt: skip
    async with httpx.AsyncClient(timeout=t, verify=client_ssl_context(ca_file)) as client:
        cp = await _json(client, url, "/v1/ledger/checkpoints/latest", t)
        note = cp.get("note")
        try:
            pub = base64.b64decode(str(cp.get("public_key")), validate=True)
            if pub not in keys or not isinstance(note, str):
                raise BadCheckpoint("signed by none of the registry keys given")
            signed = open_checkpoint(note, note.split("\n", 1)[0], pub)
        except (BadCheckpoint, ValueError) as exc:
            return [f"the newest checkpoint does not check out: {exc}"], []
        if seen is not None:  # found 2026-12-05 (attack32): a fork signed for this check
            sizes = seen_sizes(seen, signed.tree_size)
            proof = [] if sizes is None else await _consistency(client, url, t, *sizes)
            forked = seen_finding(seen, signed.tree_size, signed.root_hash, proof)
            if forked is not None:  # its inclusion proofs would prove nothing of the log
                return [forked], []
        out: list[str] = []
        later: list[int] = []
        timeout = asyncio.timeout(PROOFS_S)
        try:
            async with timeout:
                for e in entries:
                    seq = e.get("seq")
                    if type(seq) is int and seq >= signed.tree_size:
                        later.append(seq)
                        continue
                    found = await _proven(client, url, t, e, signed.tree_size, signed.root_hash)
                    if found is not None:
                        out.append(found)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise ValueError(
                f"the registry's inclusion proofs for {len(entries)} entries took longer than "
                f"{PROOFS_S:g} s in all: not read further"
            ) from None
        return out, later


async def _consistency(
    client: httpx.AsyncClient, url: str, t: float, first: int, second: int
) -> list[bytes]:
    """The registry's consistency proof from its tree of ``first`` to ``second`` (a proof of
    the wrong shape: none, which joins nothing)."""
    data = await _json(client, url, "/v1/ledger/proof/consistency", t, first=first,
                       second=second)  # fmt: skip
    proof = data.get("proof")
    try:
        return [bytes.fromhex(h) for h in proof] if isinstance(proof, list) else []
    except (TypeError, ValueError):
        return []


async def _proven(
    client: httpx.AsyncClient, url: str, t: float, e: Mapping[str, Any], size: int, root: bytes
) -> str | None:
    """Why ``e`` is not shown to be in the tree of ``size`` and ``root`` by the proof the
    registry gives for it, or ``None``."""
    data = await _json(client, url, "/v1/ledger/proof/inclusion", t, index=e.get("seq"),
                       tree_size=size)  # fmt: skip
    proof = data.get("proof")
    try:
        hashes = [bytes.fromhex(h) for h in proof] if isinstance(proof, list) else []
    except (TypeError, ValueError):
        hashes = []
    return inclusion_finding(e, size, root, hashes)
