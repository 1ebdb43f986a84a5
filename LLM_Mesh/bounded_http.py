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
the URL and the limit. Users: ``cli/ledger_http.py`` (``ledger verify``'s registry),
``cli/ledger_witness.py`` (a witness's registry), ``cli/ledger_compare.py`` (another
verifier's checkpoint), ``registry/witness_push.py`` (a witness's answer, with
:func:`read_body`: its deadline covers the whole push).

**Shapes** (a server the user may have pointed the client at, any URL): what an answer
read whole holds is read here only, into the mesh's own
:class:`~LLM_Mesh.errors.UpstreamError` with a message in words (found 2026-12-04: a
raw ``JSONDecodeError``, ``RecursionError`` (100,000 ``[``), ``KeyError`` or ``TypeError``
reached the user's code and the CLI): :func:`answer_json` (not JSON, nested too deep, or
a 3xx: a redirect is never followed, its ``Location`` only named), :func:`answer_object`
(a JSON object), :func:`answer_rows` / :func:`rows` / :func:`rows_in` (an object's list of objects, named
fields text), :func:`hex_list` (a list of hex strings: a proof), :func:`json_or_none`
(an error answer's body, whatever it holds), :func:`raise_for_error`. Users: ``client.py`` (every ``MeshClient``
call, ``fetch_json_sync``), ``cli/common.py``'s ``json_object``, ``admin_proof.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from LLM_Mesh.core.client_retry import HEADER as SHOULD_RETRY
from LLM_Mesh.errors import MeshError, UpstreamError, error_from_payload

__all__ = [
    "AS_SENT", "DECODED", "RETRIES_429", "AnswerRefused", "AnswerTimedOut", "Read", "answer_json",
    "answer_object", "answer_rows", "call", "decoded", "hex_list", "json_or_none",
    "raise_for_error", "read_body", "redirected", "rows", "rows_in", "wait_429",
]  # fmt: skip

AS_SENT = {"Accept-Encoding": "identity"}  # the request headers of an ``as_sent`` read
# ... and of a decoded one: what :func:`decoded` reads (httpx offers br and zstd too when
# their packages are installed, which a server may then pick and this refuses)
DECODED = {"Accept-Encoding": "gzip, deflate"}
PIECE = 1 << 16  # the most one decoding step makes (:func:`decoded`)
_KEPT = ("retry-after", "location", SHOULD_RETRY)  # of an answer's headers (``call``)
# a server's 429s (its per-address budget spent) waited out in a row before giving up, each
# for its Retry-After, at most 60 s: a registry cannot hold a reader longer than ~30 min
RETRIES_429 = 30
_sleep = asyncio.sleep  # (tests: a clock of their own)
# the encodings :func:`decoded` reads: zlib's window bits (deflate: zlib-wrapped, else raw)
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class AnswerRefused(MeshError):
    """An answer longer than the reader's limit, slower than its deadline, or compressed
    where the bytes as sent were asked for: not read further."""


class AnswerTimedOut(AnswerRefused):
    """An answer (or its connection) slower than the reader's deadline: not a refusal of
    what was said, so said as "timed out" (found 2026-12-04: a node waiting on a hung
    registry logged "...'s answer refused: ... took longer than 5 s")."""


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
        raise AnswerTimedOut(
            f"{what} took longer than {deadline_s:g} s: not read further"
        ) from None
    # what the caller reads of them: a wait, a redirect, whether a retry can help
    # (x-should-retry: core/client_retry.py)
    kept = {k: r.headers[k] for k in _KEPT if k in r.headers} or None
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


# --- shapes (module docstring) ----------------------------------------------------------

#: how an answer read whole is read: ``read(r, what)`` (:func:`answer_object`, :func:`rows`)
Read = Callable[[httpx.Response, str], Any]


def _kind(value: Any) -> str:
    """What a JSON value is, in words."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "?")


def json_or_none(r: httpx.Response) -> Any:
    """``r``'s body as JSON, or ``None`` when it is not JSON (or nested too deep)."""
    try:
        return json.loads(r.content)
    except (ValueError, RecursionError):  # (invalid UTF-8 too)
        return None


def raise_for_error(response: httpx.Response) -> None:
    """Raise the mesh exception an error response (4xx, 5xx) stands for, whatever its body
    holds (found 2026-12-04: a body nested too deep raised ``RecursionError``)."""
    if response.status_code < 400:
        return
    payload = json_or_none(response)
    if payload is None and (page := _web_page(response)) is not None:
        raise UpstreamError(page)
    raise error_from_payload(response.status_code, response.text if payload is None else payload)


_TITLE = re.compile(r"<title>([^<]{1,120})</title>", re.IGNORECASE)


def _web_page(response: httpx.Response) -> str | None:
    """An HTML error page (a dashboard's, a proxy's) in words: its title and the URL asked,
    never its markup (found 2026-12-07, newuser45: ``ask --registry`` with a URL under the
    dashboard printed its HTML 404 page); ``None`` for any other body."""
    text = response.text[:4096]
    if "html" not in response.headers.get("content-type", "") and not text.lstrip().startswith("<"):
        return None
    found = _TITLE.search(text)
    title = f" ({found.group(1).strip()!r})" if found else ""
    try:
        asked = response.request.url
    except RuntimeError:  # a response built without its request
        url = "its URL"
    else:  # no user name, password or query said back (found 2026-12-07, review45: a
        # ``http://user:password@host/...`` URL's password was printed in the error)
        # ``raw_path``: the path as sent, percent-encoded (no control character decoded)
        path = asked.raw_path.partition(b"?")[0].decode("ascii", "replace")
        url = f"{asked.scheme}://{asked.netloc.decode('ascii', 'replace')}{path}"
    return (
        f"HTTP {response.status_code}: a web page{title}, not an answer of the mesh's API, at "
        f"{url}: is the URL the registry's own (what `llm-mesh up` prints as the gateway's, "
        "without /v1)?"
    )


def redirected(r: httpx.Response, what: str) -> UpstreamError | None:
    """The error a 3xx answer is (a redirect is never followed: its ``Location`` is named,
    not asked), else ``None``."""
    if not 300 <= r.status_code < 400:
        return None
    where = r.headers.get("location", "")
    return UpstreamError(
        f"{what} was a redirect (HTTP {r.status_code}) to {where[:200]!r}: not followed "
        "(point the client at the URL you mean)"
    )


def answer_json(r: httpx.Response, what: str) -> Any:
    """``r``'s body (read whole) as JSON; :class:`UpstreamError` naming ``what`` when it is a
    redirect (never followed: its ``Location`` is named, not asked), not JSON, or JSON
    nested deeper than Python parses."""
    if (redirect := redirected(r, what)) is not None:
        raise redirect
    try:
        return json.loads(r.content)
    except RecursionError:
        raise UpstreamError(f"{what} is JSON nested too deep to read") from None
    except ValueError as exc:  # (invalid UTF-8 too)
        raise UpstreamError(f"{what} is not JSON ({str(exc)[:120]})") from None


def answer_object(r: httpx.Response, what: str) -> dict[str, Any]:
    """``r``'s body as a JSON object (:func:`answer_json`; else :class:`UpstreamError`)."""
    data = answer_json(r, what)
    if not isinstance(data, dict):
        raise UpstreamError(f"{what} is {_kind(data)}, not a JSON object")
    return data


def answer_rows(
    r: httpx.Response, what: str, key: str, text: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The list of objects at ``key`` of ``r``'s JSON object, each with a string at every
    field named in ``text``; else :class:`UpstreamError` saying what is wrong where."""
    return rows_in(answer_object(r, what), what, key, text)


def rows_in(
    data: dict[str, Any], what: str, key: str, text: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """:func:`answer_rows` of an object already read (``data``)."""
    value = data.get(key)
    if not isinstance(value, list):
        raise UpstreamError(f"{what}'s {key!r} is {_kind(value)}, not a list of rows")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise UpstreamError(f"{what}'s {key!r} row {i} is {_kind(row)}, not an object")
        for field in text:
            if not isinstance(row.get(field), str):
                raise UpstreamError(f"{what}'s {key!r} row {i} has no {field!r} text")
    return value


def rows(key: str, *text: str) -> Read:
    """:func:`answer_rows` of ``key`` (``text``: the fields each row must hold as strings),
    as a :data:`Read`."""

    def read(r: httpx.Response, what: str) -> list[dict[str, Any]]:
        return answer_rows(r, what, key, text)

    return read


def hex_list(data: dict[str, Any], key: str, what: str) -> list[bytes]:
    """``data[key]`` as a list of hex strings' bytes (a proof's hashes); else
    :class:`UpstreamError`."""
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise UpstreamError(f"{what}'s {key!r} is not a list of hex strings")
    try:
        return [bytes.fromhex(h) for h in value]
    except ValueError:
        raise UpstreamError(f"{what}'s {key!r} holds a string that is not hex") from None
