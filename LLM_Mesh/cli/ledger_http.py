"""The registry's ledger endpoints, read by ``llm-mesh ledger verify`` (``cli/ledger_commands.py``).

Entries come from the bulk export (``GET /v1/ledger/export``: NDJSON rows, 100,000 a
request), or from the paged list (``GET /v1/ledger``, ``--page`` a request) when the
registry has no export; checkpoints 1,000 a page, then proofs, the key list and the one
balance a registry shows (``GET /v1/balance``).

The registry is not trusted with the verifier's memory or time: each answer is read to at
most :data:`MAX_ANSWER` bytes decoded (a gzip bomb counts whole) within :data:`ANSWER_S`
seconds (``bounded_http.call``), and an export line to :data:`MAX_EXPORT_LINE` bytes;
beyond: an error naming the URL and the limit. Pages must go forward (:func:`_forward`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import httpx

from LLM_Mesh.bounded_http import DECODED, call, decoded, hex_list, read_body, rows_in, wait_429
from LLM_Mesh.cli.common import error_said, json_object
from LLM_Mesh.client import bearer_header
from LLM_Mesh.core import strict_json
from LLM_Mesh.core.key_account import derived_account, key_tag
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS
from LLM_Mesh.errors import InvalidApiKey, MeshError
from LLM_Mesh.receipt_files import RECEIPTS_DIR

Row = Sequence[object]  # an entry in ENTRY_FIELDS order
EXPORT_LIMIT = 100_000  # the registry's most per export request
CHECKPOINT_PAGE = 1_000  # checkpoints per request (each with its witnesses' cosignatures)
# the most of one registry answer read, decoded: a page (entries, checkpoints), a proof or
# the key list. The largest real ones (benchmarks/ledger_page_sizes.py, docs/benchmarks.md):
# 10,000 entries (--page's most) at their largest fields 13.8 MB; CHECKPOINT_PAGE
# checkpoints with 10 witnesses' cosignatures under 128-character names 2.8 MB; a proof
# 6 kB. 64 MiB: 4.9 times the largest (and 2.4 times the 28.5 MB of 10,000 such
# checkpoints, the most the registry serves in a page).
MAX_ANSWER = 64 << 20
# the longest one answer may take, read whole: the largest page (13.8 MB) at 1 Mbit/s
# takes some 110 s. A registry trickling bytes within the client's read timeout is cut
# off here instead of holding the verifier for as long as it likes
ANSWER_S = 300.0
MAX_EXPORT_LINE = 64 << 10  # one export row: an entry at its largest fields is 1,263 bytes


def _row(item: dict[str, Any]) -> Row:
    """A ``GET /v1/ledger`` item as a row (a missing field is left for the verifier)."""
    return tuple(item.get(f) for f in ENTRY_FIELDS)


def _ndjson_rows(lines: bytes, first: int = 1) -> list[Row]:
    """Complete NDJSON lines (each a JSON array; ``first``: the first's number) parsed in one
    go, as RFC 8259 has JSON (``strict_json``: found 2026-12-04, ``NaN`` and ``Infinity``
    were taken, a line nested too deep a ``RecursionError``): a refusal names its line."""
    try:
        rows = strict_json.loads(b"[" + lines.rstrip(b"\n").replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):  # (invalid UTF-8 too): find the line, say why
        raise _bad_line(lines, first) from None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        at = first + next(i for i, r in enumerate(rows) if not isinstance(r, list))
        raise MeshError(f"the ledger export's line {at} is not a JSON array")
    return rows


def _bad_line(lines: bytes, first: int) -> MeshError:
    """The error for the first line of ``lines`` that is not JSON, parsed one by one."""
    for i, line in enumerate(lines.rstrip(b"\n").split(b"\n")):
        try:
            strict_json.loads(line)
        except RecursionError:
            why = "it is nested too deep"
        except ValueError as exc:  # NaN and Infinity too: "NaN is not JSON"
            why = str(exc)
        else:
            continue
        return MeshError(f"the ledger export is not NDJSON: line {first + i}: {why}")
    return MeshError(f"the ledger export is not NDJSON (lines {first} on)")  # pragma: no cover


class HttpSource:
    """The registry's public endpoints."""

    stored_every = False  # one account's balance (GET /v1/balance), not the store's rows

    def __init__(self, client: httpx.AsyncClient, api_key: str | None = None) -> None:
        self.client, self.api_key = client, api_key
        self.created: dict[str, int | None] | None = None  # keys() reads it: key -> created
        # keys() reads it too: the registry's signed rotation chain (``key_rotations``)
        self.key_rotations: object = None
        # the balance :meth:`stored` read: (account, balance, tree size); None: none read
        self.balance_read: tuple[str, int, int] | None = None

    async def _get(self, path: str, **params: int) -> dict[str, Any]:
        """The registry's JSON object at ``path``, read within :data:`MAX_ANSWER` bytes and
        :data:`ANSWER_S` seconds (``AnswerRefused`` beyond: the registry is not trusted)."""
        for tries in itertools.count():  # a registry's per-address budget: 429, wait
            r = await call(self.client, "GET", path, MAX_ANSWER, deadline_s=ANSWER_S, params=params)
            if not await wait_429(r, tries):
                return json_object(r, f"GET {path}")
        raise AssertionError("unreachable")  # pragma: no cover

    async def pricing(self) -> dict[str, Any]:
        """``GET /v1/pricing``: the network's fee and the models' prices (a registry older
        than 2026-12-05 has none: ``MeshError``)."""
        r = await call(self.client, "GET", "/v1/pricing", MAX_ANSWER, deadline_s=ANSWER_S)
        if r.status_code == 404:
            raise MeshError(
                "the registry publishes no fee (GET /v1/pricing: 404, a registry older than "
                "2026-12-05): pass --fee-bps"
            )
        return json_object(r, "GET /v1/pricing")

    async def keys(self) -> tuple[list[str], str]:
        what = "GET /v1/ledger/keys"
        answer = await self._get("/v1/ledger/keys")
        data = rows_in(answer, what, "data", ("public_key",))
        self.key_rotations = answer.get("key_rotations")
        if not data:
            raise MeshError("the registry publishes no ledger key")
        self.created = {str(k["public_key"]): _seconds(k.get("created")) for k in data}
        return [k["public_key"] for k in data], str(data[0].get("origin"))

    async def checkpoints(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            page = await self._get("/v1/ledger/checkpoints", after=after, limit=CHECKPOINT_PAGE)
            rows = rows_in(page, "GET /v1/ledger/checkpoints", "data")  # (a list of objects)
            out.extend(rows)
            if not page.get("has_more") or not rows:
                return out
            after = _forward(after, rows[-1].get("tree_size"), "/v1/ledger/checkpoints")

    async def entries(self, page: int) -> AsyncIterator[list[Row]]:
        after = -1
        while True:
            got, last = 0, None
            async for rows in self._export(after):
                if rows is None:  # no export at this registry: the paged list
                    async for batch in self._pages(after, page):
                        yield batch
                    return
                got += len(rows)
                if rows:
                    last = rows[-1][0]
                    yield rows
            if got < EXPORT_LIMIT:
                return
            if not isinstance(last, int) or last <= after:
                raise MeshError(f"the ledger export's rows after {after} do not go forward")
            after = last

    async def _export(self, after: int) -> AsyncIterator[list[Row] | None]:
        """One export request's rows, in batches as they arrive; ``None`` if there is none."""
        params = {"after": after, "limit": EXPORT_LIMIT}
        for tries in itertools.count():  # a registry's per-address budget: 429, wait
            stream = self.client.stream("GET", "/v1/ledger/export", params=params, headers=DECODED)
            async with stream as r:
                if await wait_429(r, tries):
                    continue
                if r.status_code == 404:
                    yield None
                    return
                if r.status_code != 200:
                    body = await read_body(r, MAX_ANSWER, what=f"GET {r.url}'s answer")
                    text = body.decode(errors="replace")
                    raise MeshError(f"GET /v1/ledger/export answered {r.status_code}: {text[:200]}")
                rest, line = b"", 1  # the answer's line number at rest's start
                what = f"GET {r.url}'s answer"  # decoded here in bounded pieces (a bomb too)
                async for chunk in decoded(r, what=what, piece=1 << 20, gather=1 << 20):
                    cut = chunk.rfind(b"\n") + 1
                    if not cut:
                        rest += chunk
                        if len(rest) > MAX_EXPORT_LINE:
                            too_long = f"longer than {MAX_EXPORT_LINE} bytes: not a ledger entry"
                            raise MeshError(f"GET {r.url} sent a line {too_long}, not read further")
                        continue
                    lines = rest + chunk[:cut]
                    yield _ndjson_rows(lines, line)
                    line += lines.count(b"\n")
                    rest = chunk[cut:]
                if rest.strip():
                    raise MeshError("the ledger export ended in the middle of a line")
                return

    async def _pages(self, after: int, page: int) -> AsyncIterator[list[Row]]:
        while True:
            data = await self._get("/v1/ledger", after=after, limit=page)
            rows = rows_in(data, "GET /v1/ledger", "data")  # (a list of objects)
            yield [_row(e) for e in rows]
            if not data.get("has_more") or not rows:
                return
            after = _forward(after, rows[-1].get("seq"), "/v1/ledger")

    async def consistency(self, first: int, second: int) -> list[bytes]:
        data = await self._get("/v1/ledger/proof/consistency", first=first, second=second)
        return hex_list(data, "proof", "GET /v1/ledger/proof/consistency")

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        data = await self._get("/v1/ledger/proof/inclusion", index=index, tree_size=size)
        return hex_list(data, "proof", "GET /v1/ledger/proof/inclusion")

    async def stored(self) -> tuple[int, dict[str, tuple[int, int]]] | None:
        """What the registry charges against (``GET /v1/balance``: the pool's balance, or
        the API key's user's) and the tree size it was read at; ``None`` from a registry
        that does not say the size (older), has no such endpoint, or shows no anonymous
        caller the pool's."""
        auth = bearer_header(self.api_key, "the API key", InvalidApiKey) if self.api_key else {}
        r = await call(self.client, "GET", "/v1/balance", MAX_ANSWER, deadline_s=ANSWER_S,
                       headers=auth)  # fmt: skip
        if r.status_code == 404 or (r.status_code in (401, 403) and not self.api_key):
            return None
        if r.status_code == 401 and self.api_key:  # a revoked key's books are still its own
            mine = derived_account(self.api_key)
            raise InvalidApiKey(
                f"GET /v1/balance answered 401: {error_said(r)}: the registry names no "
                "account for LLM_MESH_API_KEY; without the key, `ledger verify` checks the "
                f"log and `ledger statement --account {mine or 'user:...'} --receipts "
                f"$LLM_MESH_HOME/{RECEIPTS_DIR}/{key_tag(self.api_key)[:24]}` lists "
                + ("this key's account" if mine else "an account (the one your receipts name)")
                + " against the receipts `ask` kept for the key"
            )
        data = json_object(r, "GET /v1/balance")
        size, account, bal, res = (
            data.get(k) for k in ("tree_size", "account", "balance", "reserved")
        )
        if not isinstance(account, str) or not all(type(x) is int for x in (size, bal, res)):
            return None
        self.balance_read = account, cast(int, bal), cast(int, size)
        return cast(int, size), {account: (cast(int, bal), cast(int, res))}


def _forward(after: int, last: object, path: str) -> int:
    """The next page's ``after``: past this one's, or ``MeshError`` (a registry answering
    "more" from the same place again would hold the verifier for ever, within every
    answer's bounds; as the export's rows must go forward)."""
    if isinstance(last, bool) or not isinstance(last, int) or last <= after:
        raise MeshError(f"GET {path}'s pages after {after} do not go forward (next: {last!r:.40})")
    return last


def _seconds(value: object) -> int | None:
    """A key's published ``created`` (whole seconds), None when it is not one."""
    return value if type(value) is int else None
