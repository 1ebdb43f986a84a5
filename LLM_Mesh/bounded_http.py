"""An HTTP answer read whole, to a size limit: what the mesh reads of a server it does not trust.

The outbound counterpart of :mod:`LLM_Mesh.body_limit`. A server that answers without end,
or with a gzip bomb, costs the reader at most ``limit`` bytes (and one chunk past it):

- :func:`read_body`: the body of a response opened with ``client.stream(...)``, counted as
  it streams in. Decoded by default (a compressed answer counts whole, as inflated); with
  ``as_sent`` never decompressed: the request sent :data:`AS_SENT` (``Accept-Encoding:
  identity``) and another ``Content-Encoding`` is refused unread.
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
from typing import Any

import httpx

from LLM_Mesh.errors import MeshError

__all__ = ["AS_SENT", "AnswerRefused", "call", "read_body"]

AS_SENT = {"Accept-Encoding": "identity"}  # the request headers of an ``as_sent`` read


class AnswerRefused(MeshError):
    """An answer longer than the reader's limit, slower than its deadline, or compressed
    where the bytes as sent were asked for: not read further."""


async def read_body(
    r: httpx.Response, limit: int, *, what: str = "the answer", as_sent: bool = False
) -> bytes:
    """``r``'s body (an open stream), at most ``limit`` bytes (module docstring)."""
    if as_sent:
        enc = r.headers.get("content-encoding", "identity").strip().lower()
        if enc not in ("", "identity"):
            raise AnswerRefused(f"{what} was sent with Content-Encoding {enc[:40]!r}")
    got = bytearray()
    async for chunk in r.aiter_bytes():  # as sent when the encoding is identity
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
    if as_sent:
        kw["headers"] = {**kw.get("headers", {}), **AS_SENT}
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
    return httpx.Response(r.status_code, content=body, request=request)
