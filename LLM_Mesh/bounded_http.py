"""An HTTP answer read whole, to a size limit: what the mesh reads of a server it does not trust.

The outbound counterpart of :mod:`LLM_Mesh.body_limit`. A server that answers without end,
or with a gzip bomb, costs the reader at most ``limit`` bytes (and one piece past it):

- :func:`decoded`: the body of a response opened with ``client.stream(...)``, as it streams
  in, decoded here (never by httpx: its decoders inflate a whole read at once, and
  ``Content-Encoding: gzip, gzip`` stacks them: 600 bytes sent became 256 MiB in one
  step, before any count) in pieces of at most ``piece`` bytes, from ``identity``,
  ``gzip`` or ``deflate`` only (one of them; anything else is refused unread).
- :func:`read_body`: that body, counted as it streams in. Decoded by default (a compressed
  answer counts whole, as inflated); with ``as_sent`` never decompressed: the request sent
  :data:`AS_SENT` (``Accept-Encoding: identity``) and another ``Content-Encoding`` is
  refused unread.
- :func:`call`: ``method url`` sent and its whole answer read so, as an ``httpx.Response``,
  within an overall deadline (``deadline_s``: sending, waiting and reading together; a
  trickle of bytes stays within any per-read timeout, not within this one).

Beyond the limit or the deadline, or in another encoding: :class:`AnswerRefused`, naming
the URL and the limit. Users: ``cli/ledger_commands.py`` (``ledger verify``'s registry),
``cli/ledger_witness.py`` (a witness's registry), ``cli/ledger_compare.py`` (another
verifier's checkpoint), ``registry/witness_push.py`` (a witness's answer, with
:func:`read_body`: its deadline covers the whole push).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from LLM_Mesh.errors import MeshError

__all__ = [
    "AS_SENT", "DECODED", "RETRIES_429", "AnswerRefused", "call", "decoded", "read_body",
    "wait_429",
]  # fmt: skip

AS_SENT = {"Accept-Encoding": "identity"}  # the request headers of an ``as_sent`` read
# ... and of a decoded one: what :func:`decoded` reads (httpx offers br and zstd too when
# their packages are installed, which a server may then pick and this refuses)
DECODED = {"Accept-Encoding": "gzip, deflate"}
PIECE = 1 << 16  # the most one decoding step makes (:func:`decoded`)
# a server's 429s (its per-address budget spent) waited out in a row before giving up, each
# for its Retry-After, at most 60 s: a registry cannot hold a reader longer than ~30 min
RETRIES_429 = 30
_sleep = asyncio.sleep  # (tests: a clock of their own)
# the encodings :func:`decoded` reads: zlib's window bits (deflate: zlib-wrapped, else raw)
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class AnswerRefused(MeshError):
    """An answer longer than the reader's limit, slower than its deadline, or compressed
    where the bytes as sent were asked for: not read further."""


async def decoded(
    r: httpx.Response, *, what: str = "the answer", as_sent: bool = False, piece: int = PIECE,
    gather: int | None = None,
) -> AsyncIterator[bytes]:  # fmt: skip
    """``r``'s body (an open stream) as it streams in, decoded in pieces of at most
    ``piece`` bytes (module docstring); ``as_sent``: ``identity`` only; ``gather``: an
    ``identity`` body's reads joined to that size (``aiter_raw``'s ``chunk_size``)."""
    enc = r.headers.get("content-encoding", "identity").strip().lower()
    identity = enc in ("", "identity")
    if not identity and (as_sent or enc not in _WBITS):  # or several stacked ("gzip, gzip")
        raise AnswerRefused(f"{what} was sent with Content-Encoding {enc[:40]!r}")
    if r.is_stream_consumed:  # built in memory, read whole already (a test's answer)
        for i in range(0, len(r.content), piece):
            yield r.content[i : i + piece]
        return
    if identity:
        async for chunk in r.aiter_raw(gather):  # as sent
            yield chunk
        return
    d = zlib.decompressobj(_WBITS[enc])
    first = enc == "deflate"  # zlib-wrapped as the RFC says, else raw (as httpx reads it)
    async for chunk in r.aiter_raw():
        data = chunk
        while data:
            try:
                out = d.decompress(data, piece)
            except zlib.error as exc:
                if not first:
                    raise AnswerRefused(f"{what} is not valid {enc}: {exc}") from None
                d, first = zlib.decompressobj(-zlib.MAX_WBITS), False
                continue
            first = False
            data = d.unconsumed_tail
            if out:
                yield out
            if d.eof:  # the end of the (first) stream: what follows is not read
                return
    tail = d.flush()  # what the last input left pending (a match's bytes at most)
    if tail:
        yield tail


async def read_body(
    r: httpx.Response, limit: int, *, what: str = "the answer", as_sent: bool = False
) -> bytes:
    """``r``'s body (an open stream), at most ``limit`` bytes (module docstring)."""
    got = bytearray()
    async for chunk in decoded(r, what=what, as_sent=as_sent):
        got += chunk
        if len(got) > limit:
            raise AnswerRefused(f"{what} is longer than {limit} bytes: not read further")
    return bytes(got)


async def call(
    client: httpx.AsyncClient, method: str, url: str, limit: int, *, deadline_s: float,
    as_sent: bool = False, follow_redirects: bool | None = None, **kw: Any,
) -> httpx.Response:  # fmt: skip
    """The answer to ``method url`` (``kw``: ``client.build_request``'s), its body read to at
    most ``limit`` bytes (decoded; ``as_sent``: see :func:`read_body`), all of it within
    ``deadline_s`` seconds; redirects followed as the client's setting says unless
    ``follow_redirects``; its headers are not kept (the body is no longer encoded)."""
    kw["headers"] = {**kw.get("headers", {}), **(AS_SENT if as_sent else DECODED)}
    request = client.build_request(method, url, **kw)
    what = f"{method} {request.url}'s answer"
    deadline = asyncio.timeout(deadline_s)
    try:
        async with deadline:
            follow = client.follow_redirects if follow_redirects is None else follow_redirects
            r = await client.send(request, stream=True, follow_redirects=follow)
            try:
                body = await read_body(r, limit, what=what, as_sent=as_sent)
            finally:
                await r.aclose()
    except TimeoutError:
        if not deadline.expired():
            raise
        raise AnswerRefused(f"{what} took longer than {deadline_s:g} s: not read further") from None
    kept = {"retry-after": r.headers["retry-after"]} if "retry-after" in r.headers else None
    return httpx.Response(r.status_code, content=body, request=request, headers=kept)


async def wait_429(r: httpx.Response, tries: int) -> bool:
    """Whether ``r`` is a 429 to wait out and ask again (the ``tries``-th in a row, fewer
    than :data:`RETRIES_429`): then after sleeping its ``Retry-After`` (1 to 60 s)."""
    if r.status_code != 429 or tries >= RETRIES_429:
        return False
    try:
        seconds = min(60.0, max(1.0, float(r.headers.get("retry-after", "1"))))
    except ValueError:
        seconds = 1.0
    await _sleep(seconds)
    return True
