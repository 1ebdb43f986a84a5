"""The ledger's public, read-only endpoints (no key needed).

- ``GET /v1/ledger?after=&limit=``: entries with ``seq > after``, oldest first, in
  OpenAI's list shape (``object: "list"``, ``data``, ``has_more``) plus ``tree_size``;
  accounts are pseudonyms (``core/ledger_entry.py``); ``&request_id=``: only one
  request's, by the store's index (``registry/ledger_lookup.py``);
- ``GET /v1/ledger/export?after=&limit=``: the same entries in bulk (up to 100,000 a
  request), streamed as NDJSON, one JSON array per line in ``ENTRY_FIELDS`` order
  (``core/ledger_entry.py``): what ``llm-mesh ledger verify`` downloads (a tenth of the
  CPU per entry of the paged list on both sides, and no page held in memory);
- ``GET /v1/ledger/checkpoints?after=&limit=``: signed checkpoints with
  ``tree_size > after``, oldest first;
- ``GET /v1/ledger/proof/inclusion?index=&tree_size=``: RFC 9162 audit path;
- ``GET /v1/ledger/proof/consistency?first=&second=``: RFC 9162 consistency proof;
- ``GET /v1/ledger/keys``: the checkpoint signers' public keys (and ``vkey`` texts), and
  ``key_rotations``: the chain of signed rotation statements ending at this registry's
  key (``registry/key_history.py``, the one registration answers carry: the ledger key
  is ``registry.key``), by which a verifier that remembered an earlier key follows a
  rotation (``core/ledger_keys.py``).

Hashes are lowercase hex. A size or index outside the tree is 400 naming the parameter.
A query parameter a read does not take (``?acount=``, ``?afer=``) is 400
``unsupported_parameter`` naming it and the accepted ones, not ignored (found 2026-12-07,
money42: a mistyped filter answered the whole, unfiltered list; ``registry/strict_query.py``).

The entries and checkpoints these reads serve are counted per client address (an IPv6
one per /64), at most ``Settings.ledger_read_rows_per_min`` a minute
(``LLM_MESH_LEDGER_READ_ROWS_PER_MIN``, 1,000,000: ten whole exports); past it 429 with
``Retry-After`` (a page of 10,000 costs the gateway ~0.2 s of CPU, an export of 100,000
~0.7 s: without a bound one address asking in a loop kept the gateway busy). Every
address together is served at most ``Settings.ledger_read_rows_total_per_min`` rows a
minute by this process (``LLM_MESH_LEDGER_READ_ROWS_TOTAL_PER_MIN``, 3,000,000), first
come: a client holding many addresses (an IPv6 /48 is 65,536 /64s) gets no more than that.
A read is charged before it runs and settled to the rows it read from the store: a read
the store failed gives back all but 1; an export that ends early (the store failed, the
client left) keeps the rows of the queries it ran, and gives back the rest (found
2026-12-03: kept them all, a minute of the total for rows nobody read).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from LLM_Mesh.core.checkpoint import vkey
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS
from LLM_Mesh.core.ratelimit import Limits, address_scope
from LLM_Mesh.core.schemas import KeyRotation
from LLM_Mesh.errors import InvalidRequest, MeshError, RateLimited
from LLM_Mesh.registry.errors import NOSNIFF, JSONAnswer
from LLM_Mesh.registry.ledger import LedgerError, SqlLedger
from LLM_Mesh.registry.ledger_lookup import MAX_REQUEST_ID, entries_of_request, request_id_problem
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.runtime import get_runtime
from LLM_Mesh.registry.strict_query import STRICT

router = APIRouter(tags=["Ledger"])

MAX_PAGE = 10_000
MAX_EXPORT = 100_000
_EXPORT_CHUNK = 5_000  # rows read per query while streaming an export
_BIG = 1 << 62


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class LedgerEntryView(_Open):
    object: Literal["ledger.entry"]
    seq: int
    time_us: int
    kind: str
    from_: str = Field(alias="from")
    to: str
    amount: int
    request_id: str | None
    receipt_hash: str | None
    prev_hash: str
    leaf_hash: str


class LedgerPage(_Open):
    object: Literal["list"]
    data: list[LedgerEntryView]
    has_more: bool
    tree_size: int


class CheckpointView(_Open):
    object: Literal["ledger.checkpoint"]
    tree_size: int
    root_hash: str
    time_us: int
    public_key: str
    note: str


class CheckpointPage(_Open):
    object: Literal["list"]
    data: list[CheckpointView]
    has_more: bool


class InclusionProof(_Open):
    object: Literal["ledger.inclusion_proof"]
    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]


class ConsistencyProof(_Open):
    object: Literal["ledger.consistency_proof"]
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class LedgerKey(_Open):
    object: Literal["ledger.key"]
    public_key: str
    origin: str
    vkey: str
    current: bool
    created: int


class LedgerKeyList(_Open):
    object: Literal["list"]
    data: list[LedgerKey]
    has_more: bool
    key_rotations: list[KeyRotation] = []


_E400 = {"description": "a size or index outside the tree (`param` names it)"}


def _ledger(request: Request) -> tuple[SqlLedger, Checkpointer]:
    rt = get_runtime(request)
    if rt.ledger is None or rt.checkpointer is None:  # pragma: no cover - wiring bug
        raise MeshError("the ledger is not set up")
    return rt.ledger, rt.checkpointer


class _Rows:
    """The ledger rows one read takes from its client address's budget and from the
    process's total for every address (module doc)."""

    def __init__(self, request: Request, rows: int) -> None:
        rt = get_runtime(request)
        per_min = rt.settings.ledger_read_rows_per_min
        all_per_min = rt.settings.ledger_read_rows_total_per_min
        self.scope = "ledger-read:" + (
            address_scope(request.client.host) if request.client else "unknown"
        )
        self.limits = Limits(tpm=per_min) if per_min else None
        self.charged = self.total_charged = 0
        self.now = rt.clock()
        self.limiter = rt.limiter
        self.total = rt.limiter.total("ledger-read", all_per_min, self.now) if all_per_min else None
        need = max(1, rows)  # at least 1: an empty page is a request too
        if self.total is not None:
            wait = self.total.wait(self.now, need)
            if wait > 0:
                wait_s = max(1, math.ceil(wait))
                raise RateLimited(
                    f"this registry's public ledger reads served their {all_per_min} rows a "
                    f"minute to every address together; try again in {wait_s} s",
                    retry_after=wait_s,
                )
        if self.limits is not None and per_min is not None:
            # never more than the bucket holds
            decision = rt.limiter.check(self.scope, self.limits, self.now, min(need, per_min))
            if not decision.allowed:
                raise RateLimited(
                    f"this address has read its {per_min} ledger rows a minute from this "
                    "registry; wait, or ask for fewer (limit) at a time",
                    retry_after=max(1, math.ceil(decision.retry_after_s)),
                    headers=decision.headers,
                )
            self.charged = decision.charged
        if self.total is not None:
            self.total_charged = self.total.take(self.now, need)

    def used(self, rows: int) -> None:
        """Settle the charges to the rows the read really served."""
        if self.limits is not None:
            self.limiter.settle(self.scope, self.limits, self.now, self.charged, max(1, rows))
        if self.total is not None:
            self.total.settle(self.now, self.total_charged, max(1, rows))


def _rows_after(size: int, after: int, limit: int) -> int:
    """The entries a read of ``limit`` after ``after`` serves from a tree of ``size``."""
    return max(0, min(limit, size - 1 - after))


After = Annotated[int, Query(ge=-1, le=_BIG, description="only items after this (seq or size)")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="at most this many")]


RequestId = Annotated[
    str | None,
    Query(
        description="only this request's entries (the ledger's request id: an answer's "
        "`mesh.ledger_request_id`, else its `mesh.request_id`), found by the store's index; "
        "at most "
        f"{MAX_REQUEST_ID} characters, no control characters"
    ),
]


@router.get(
    "/v1/ledger",
    **STRICT,
    responses={200: {"model": LedgerPage}},
    response_model=None,
)
async def ledger_entries(
    request: Request, after: After = -1, limit: Limit = 100, request_id: RequestId = None
) -> JSONAnswer:
    """The ledger's entries, oldest first (public; accounts are pseudonyms); with
    ``request_id``, only that request's (``registry/ledger_lookup.py``)."""
    ledger, _ = _ledger(request)
    if request_id is not None and (problem := request_id_problem(request_id)) is not None:
        raise InvalidRequest(problem, param="request_id")
    size, _root = await ledger.head()
    # charged as a page (its most), settled to the rows a request's lookup read
    rows = _Rows(request, _rows_after(size, after, limit))
    try:
        if request_id is None:
            entries, more = await ledger.entries(after, limit)
        else:
            entries, more = await entries_of_request(ledger, request_id, after, limit)
    except Exception:  # the store failed: nothing read (cancelled: its query ran, charged)
        rows.used(0)
        raise
    if request_id is not None:
        rows.used(len(entries) + more)
    data = [e.to_json() for e in entries]
    return JSONAnswer({"object": "list", "data": data, "has_more": more, "tree_size": size})


class NdjsonResponse(StreamingResponse):
    media_type = "application/x-ndjson"

    def init_headers(self, headers: Any = None) -> None:
        super().init_headers(headers)
        self.raw_headers.append(NOSNIFF)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As a stream, then its body closed now, however it ended (a client that left
        stops Starlette's loop over it, and the body would end only when collected)."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


_row_json = json.JSONEncoder(separators=(",", ":")).encode
_esc = encode_basestring_ascii  # a JSON string literal, quotes included (json's C code)


def _line(r: tuple[Any, ...]) -> str:
    """One export line: the row as a JSON array. Written out directly when every field
    has its type (twice as fast as the encoder per row); by the encoder otherwise."""
    seq, t, kind, frm, to, amount, rid, rh, prev, leaf = r
    if (
        type(seq) is int and type(t) is int and type(amount) is int and type(kind) is str
        and type(frm) is str and type(to) is str and type(prev) is str and type(leaf) is str
        and (rid is None or type(rid) is str) and (rh is None or type(rh) is str)
    ):  # fmt: skip
        rid_json = "null" if rid is None else _esc(rid)
        rh_json = "null" if rh is None else _esc(rh)
        return (
            f"[{seq},{t},{_esc(kind)},{_esc(frm)},{_esc(to)},{amount},{rid_json},{rh_json},"
            f"{_esc(prev)},{_esc(leaf)}]"
        )
    return _row_json(r)


async def _export(
    ledger: SqlLedger, after: int, limit: int, charge: _Rows | None = None
) -> AsyncIterator[bytes]:
    """The export's body: chunks of rows, each read while the one before is encoded. When
    it ends (however), ``charge`` is settled to the rows its queries read, a query still
    running counted whole (a store failure's: none)."""
    left = limit
    reading = min(_EXPORT_CHUNK, left)  # rows the query in flight asks for
    read = 0
    pending: asyncio.Future[list[tuple[Any, ...]]] | None = asyncio.ensure_future(
        ledger.entry_rows(after, reading)
    )
    try:
        while pending is not None:
            try:
                rows = await pending
            except Exception:
                reading = 0  # the store failed: it read nothing
                raise
            read, reading = read + len(rows), 0
            asked, left, pending = min(_EXPORT_CHUNK, left), left - len(rows), None
            if len(rows) == asked and left > 0:
                reading = min(_EXPORT_CHUNK, left)
                pending = asyncio.ensure_future(ledger.entry_rows(rows[-1][0], reading))
            if rows:
                yield ("\n".join(map(_line, rows)) + "\n").encode()
    finally:
        if pending is not None:
            pending.cancel()
        if charge is not None:
            charge.used(read + reading)


_EXPORT_DOC = (
    "The entries with `seq > after`, oldest first, at most `limit`, streamed as NDJSON "
    "(`application/x-ndjson`): one JSON array per line, its items in this order: "
    + ", ".join(f"`{f}`" for f in ENTRY_FIELDS)
    + " (the fields of a `GET /v1/ledger` item). Fewer than `limit` lines: the end of "
    "the ledger; otherwise ask again with `after` = the last line's `seq`. Public; accounts "
    "are pseudonyms. `X-Ledger-Tree-Size`: the tree's size when the export began."
)


@router.get(
    "/v1/ledger/export",
    **STRICT,
    response_class=NdjsonResponse,
    responses={
        200: {
            "description": "NDJSON, one entry (a JSON array) per line",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "headers": {
                "X-Ledger-Tree-Size": {
                    "description": "the tree's size when the export began",
                    "schema": {"type": "integer"},
                }
            },
        }
    },
    description=_EXPORT_DOC,
)
async def ledger_export(
    request: Request,
    after: After = -1,
    limit: Annotated[
        int, Query(ge=1, le=MAX_EXPORT, description="at most this many entries")
    ] = MAX_EXPORT,
) -> NdjsonResponse:
    """The ledger's entries in bulk, as NDJSON rows (what `llm-mesh ledger verify` reads)."""
    ledger, _ = _ledger(request)
    size, _root = await ledger.head()
    rows = _Rows(request, _rows_after(size, after, limit))
    return NdjsonResponse(
        _export(ledger, after, limit, rows), headers={"X-Ledger-Tree-Size": str(size)}
    )


@router.get(
    "/v1/ledger/checkpoints",
    **STRICT,
    responses={200: {"model": CheckpointPage}},
    response_model=None,
)
async def ledger_checkpoints(request: Request, after: After = -1, limit: Limit = 100) -> JSONAnswer:
    """Signed checkpoints (C2SP signed-note tlog-checkpoints), oldest first."""
    ledger, _ = _ledger(request)
    rows = _Rows(request, 1)  # refused while the budget is spent; charged what it served
    cps, more = await ledger.checkpoints(after, limit)
    rows.used(len(cps))
    return JSONAnswer({"object": "list", "data": [c.to_json() for c in cps], "has_more": more})


def _bad(exc: LedgerError, param: str) -> InvalidRequest:
    return InvalidRequest(str(exc), param=param)


@router.get(
    "/v1/ledger/proof/inclusion",
    **STRICT,
    responses={200: {"model": InclusionProof}, 400: _E400},
    response_model=None,
)
async def ledger_inclusion_proof(
    request: Request,
    index: Annotated[int, Query(ge=0, le=_BIG, description="the entry's seq")],
    tree_size: Annotated[int, Query(ge=1, le=_BIG, description="a checkpoint's size")],
) -> JSONAnswer:
    """RFC 9162 §2.1.3 audit path of entry ``index`` in the tree of ``tree_size``."""
    ledger, _ = _ledger(request)
    try:
        leaf, root, path = await ledger.inclusion_proof(index, tree_size)
    except LedgerError as exc:
        raise _bad(exc, "index" if "index" in str(exc) else "tree_size") from None
    return JSONAnswer(
        {
            "object": "ledger.inclusion_proof",
            "index": index,
            "tree_size": tree_size,
            "leaf_hash": leaf.hex(),
            "root_hash": root.hex(),
            "proof": [p.hex() for p in path],
        }
    )


@router.get(
    "/v1/ledger/proof/consistency",
    **STRICT,
    responses={200: {"model": ConsistencyProof}, 400: _E400},
    response_model=None,
)
async def ledger_consistency_proof(
    request: Request,
    first: Annotated[int, Query(ge=0, le=_BIG, description="the older tree's size")],
    second: Annotated[int, Query(ge=0, le=_BIG, description="the newer tree's size")],
) -> JSONAnswer:
    """RFC 9162 §2.1.4 consistency proof from the tree of ``first`` to ``second``."""
    ledger, _ = _ledger(request)
    try:
        r1, r2, path = await ledger.consistency_proof(first, second)
    except LedgerError as exc:
        raise _bad(exc, "second" if "second" in str(exc) else "first") from None
    return JSONAnswer(
        {
            "object": "ledger.consistency_proof",
            "first": first,
            "second": second,
            "first_root": r1.hex(),
            "second_root": r2.hex(),
            "proof": [p.hex() for p in path],
        }
    )


@router.get(
    "/v1/ledger/keys", **STRICT, responses={200: {"model": LedgerKeyList}}, response_model=None
)
async def ledger_keys(request: Request) -> JSONAnswer:
    """The keys that sign checkpoints (Ed25519, base64), with signed-note ``vkey`` texts,
    and the signed rotation chain to the current one (``key_rotations``, oldest first)."""
    ledger, cp = _ledger(request)
    await cp.ensure_published()
    data = [
        {
            "object": "ledger.key",
            "public_key": pk,
            "origin": cp.origin,
            "vkey": vkey(cp.origin, base64.b64decode(pk)),
            "current": pk == cp.public_key,
            "created": int(at.timestamp()),
        }
        for pk, at in await ledger.keys()
    ]
    chain = [dict(link) for link in get_runtime(request).key_rotations]
    return JSONAnswer({"object": "list", "data": data, "has_more": False, "key_rotations": chain})
