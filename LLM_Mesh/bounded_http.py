"""An HTTP answer read whole, to a size limit: what the mesh reads of a server it does not trust.

The outbound counterpart of :mod:`LLM_Mesh.body_limit`. A server that answers without end,
or with a gzip bomb, costs the reader at most ``limit`` bytes (and one chunk past it):

- :func:`read_body`: the body of a response opened with ``client.stream(...)``, counted as
  it streams in. Decoded by default (a compressed answer counts whole, as inflated); with
  ``as_sent`` never decompressed: the request sent :data:`AS_SENT` (``Accept-Encoding:
  identity``) and another ``Content-Encoding`` is refused unread.
- :func:`call`: ``method url`` sent and its whole answer read so, as an ``httpx.Response``.

Beyond the limit, or in another encoding: :class:`AnswerRefused`. The time a whole answer
may take is the caller's (``asyncio.timeout``/``wait_for`` around it): a trickle of bytes
stays within any read timeout. Users: ``cli/ledger_witness.py`` (a witness's registry),
``cli/ledger_compare.py`` (another verifier's checkpoint), ``registry/witness_push.py`` (a
witness's answer).
"""

from __future__ import annotations

from typing import Any

import httpx

from LLM_Mesh.errors import MeshError

__all__ = ["AS_SENT", "AnswerRefused", "call", "read_body"]

AS_SENT = {"Accept-Encoding": "identity"}  # the request headers of an ``as_sent`` read


class AnswerRefused(MeshError):
    """An answer longer than the reader's limit, or compressed where the bytes as sent were
    asked for: not read further."""


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
    client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
) -> httpx.Response:
    """The answer to ``method url`` (``kw``: ``client.stream``'s), its body read to at most
    ``limit`` bytes decoded; its headers are not kept (the body is no longer encoded)."""
    async with client.stream(method, url, **kw) as r:
        body = await read_body(r, limit, what=f"{method} {url}'s answer")
        return httpx.Response(r.status_code, content=body, request=r.request)
