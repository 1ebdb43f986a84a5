"""An async client for the gateway's OpenAI API and the registry's ``/mesh`` API.

Used by the seed API (``distributed_models``, ``mesh_manager``) and the CLI.
Errors come back as the mesh's exceptions: nothing answering at the URL is
:class:`~LLM_Mesh.errors.RegistryUnreachable`; an OpenAI-shaped error body is
rebuilt into its class (``ModelUnavailable``, ``InvalidRequest``, ...).

Requests to the OpenAI API (``/v1``) carry ``Authorization: Bearer <api_key>`` when an
API key is given (``llm-mesh ask --api-key``, ``$LLM_MESH_API_KEY``), and no
``Authorization`` header otherwise: the gateway serves them as anonymous.

The caller may pass its own ``httpx.AsyncClient`` (one per process, as the
house style wants); otherwise the client owns one and closes it in ``aclose``.

**Several gateways** (replicas: ``base_url`` a list, or ``"URL,URL,..."`` as
``$LLM_MESH_REGISTRY_URL`` and ``--registry`` take it): the client uses one at a time
and moves to the next when it cannot connect, the connection breaks before an answer,
or the answer is 5xx, a redirect or not of the shape asked (a read, the health check, or a call with a
request id; a redirect of a stream too), unless the answer says whether a retry can help
(``x-should-retry``: ``false`` is raised, no other gateway asked; ``true`` is asked again after
its ``Retry-After``, the next gateway first, at most twice a call:
:func:`~LLM_Mesh.client_failover.advised`; the final error then says how many times, over how
long), and stays with the one that answered (another process's too, given a ``memory``:
:class:`~LLM_Mesh.client_replicas.ReplicaMemory`, what the CLI passes). An OpenAI call then always
carries a request id (``X-Request-Id``: the caller's, else one made per call), the same
on every gateway it tries, so the gateways run it at most once: a duplicate is
replayed, or refused 409 ``duplicate_request`` when it may already have run. A stream
moves only before its first event. A gateway that takes the connection but never answers
(hung: SIGSTOPped, its listen backlog still filling) is left too, when such a call has
another gateway to try: while its answer (a stream's head) is not in, its ``GET /healthz``
is probed on a fresh connection (first after 4 s, then every 3 s, 2 s each), and two
probes unanswered in a row give it up (~9 s; a live but slow gateway answers them and is
waited for): :mod:`LLM_Mesh.client_hang`, :mod:`LLM_Mesh.core.hang_watch`
(``hang_policy``; ``None``: never).

**Bounds** (a gateway the client does not trust): each call reads at most so many bytes
of its answer, decoded, by what it asks for: :data:`PING_ANSWER_BYTES` (64 KiB) for
``ping`` and ``balance``, :data:`EARNINGS_ANSWER_BYTES` (8 MiB) for ``earnings``,
:data:`MAX_ANSWER_BYTES` (64 MiB, what the gateway itself reads of a node's answer) for
listings and completions; whole within connect + write + twice the read timeout. A stream
reads at most :data:`MAX_STREAM_EVENT_BYTES` of one event, and runs at most
``stream_max_s`` from its request to its last event (:data:`DEFAULT_STREAM_MAX_S`, 30 min;
``$LLM_MESH_STREAM_MAX_S``; the constructor's or the call's ``max_s``): a gateway sending
an honest event now and then, each within the read timeout, cannot hold it longer; nor
events without output past ``core/client_floor``'s bound for the request. Past a bound: :class:`~LLM_Mesh.bounded_http.AnswerRefused` (a ``MeshError``) naming it. The
blocking :func:`fetch_json_sync` reads the same way. A credential no header can carry is
refused before sending, never quoted (:class:`~LLM_Mesh.errors.InvalidCredential`).

**Shapes**: every answer is read by :mod:`LLM_Mesh.bounded_http`'s shape readers (a JSON
object; a listing's list of rows, each an object with its id a string); a redirect is
never followed. Otherwise :class:`~LLM_Mesh.errors.UpstreamError` in words, never a raw
``JSONDecodeError``, ``RecursionError``, ``KeyError`` or ``TypeError`` (found 2026-12-04).
A stream that ends without ``data: [DONE]`` (the gateway sends it at the end of every
stream, a failed one too) is an ``UpstreamError`` after its last chunk, never a complete
answer: "the stream ended before [DONE]: the answer may be cut short". The stream's pieces: :mod:`LLM_Mesh.client_stream`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx

from LLM_Mesh.admin_proof import prove
from LLM_Mesh.bounded_http import (
    DECODED,
    AnswerRefused,
    Read,
    answer_object,
    call,
    raise_for_error,
    redirected,
    rows,
)
from LLM_Mesh.client_failover import Again, Retry, Tally, advised, failed, said_not_up, unreachable
from LLM_Mesh.client_hang import Hung, probe, watched
from LLM_Mesh.client_replicas import ReplicaMemory, gateway_urls, own_path
from LLM_Mesh.client_stream import (
    CUT_SHORT,
    DEFAULT_STREAM_MAX_S,
    MAX_STREAM_EVENT_BYTES,
    STREAM_MAX_ENV,
    Bound,
    events,
    positive,
    stream_error,
    stream_max_s,
)
from LLM_Mesh.core.client_floor import QuietCount, choices_of, quiet_bound
from LLM_Mesh.core.hang_watch import DEFAULT_POLICY, HangPolicy
from LLM_Mesh.errors import InvalidApiKey, InvalidCredential, MeshError, UpstreamError
from LLM_Mesh.plain_http import PlainHttpNotice
from LLM_Mesh.tls import client_ssl_context

DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=30.0)
# a (non-streamed) call's answer, decoded, read to at most this in connect + write + 2 x read
# timeout (found 2026-12-03: read whole, a gzip bomb cost gigabytes, a byte at a time for ever)
MAX_ANSWER_BYTES = 64 << 20  # listings (nodes, models, health, canary, audit), completions
# ... smaller where the answer is (found 2026-12-03: 64 MiB for a `ping` too): `ping`,
PING_ANSWER_BYTES = 64 << 10  # `balance`; `earnings` (node/earnings_query.MAX_EARNINGS_BYTES):
EARNINGS_ANSWER_BYTES = 8 << 20
_unreachable = unreachable  # (tests/inprocess_mesh.py's name for it)
CHAT = "/chat/completions"  # a stream's path ends so for a chat (``core/client_floor``)
# (raise_for_error, MAX_STREAM_EVENT_BYTES, STREAM_MAX_ENV, DEFAULT_STREAM_MAX_S, stream_max_s,
# gateway_urls: imported, named still)
__all__ = [
    "DEFAULT_STREAM_MAX_S", "DEFAULT_TIMEOUT", "EARNINGS_ANSWER_BYTES", "MAX_ANSWER_BYTES",
    "MAX_STREAM_EVENT_BYTES", "PING_ANSWER_BYTES", "STREAM_MAX_ENV", "MeshClient", "bearer_header",
    "fetch_json_sync", "gateway_urls", "new_request_id", "raise_for_error", "stream_max_s",
]  # fmt: skip


def _bearer(secret: str, what: str, error: type[MeshError] = InvalidCredential) -> dict[str, str]:
    """``Authorization: Bearer <secret>``, if ``secret`` is one a header can carry (visible
    ASCII); else :class:`InvalidCredential` naming ``what`` but never quoting it, before
    anything is sent (found 2026-12-03: a key with a control character in it, e.g. pasted
    with a line break, was quoted whole by h11's refusal in the error printed and logged;
    one with a letter that is not ASCII ended the CLI with a ``UnicodeEncodeError``)."""
    if not (secret.isascii() and secret.isprintable() and " " not in secret):
        raise error(
            f"{what} holds characters no key has (spaces, control characters or letters "
            f"that are not ASCII, e.g. a line break pasted with it): not sent"
        )
    return {"Authorization": f"Bearer {secret}"}


#: the same check for the CLI's own clients (``cli/ledger_http.py``'s balance check)
bearer_header = _bearer


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex


class MeshClient:
    """Talks to a registry + gateway at ``base_url`` (e.g. ``http://127.0.0.1:8800``), or to
    the first of several that answers (see the module docstring)."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        admin_key: str | None = None,
        admin_registry_key: str | None = None,
        api_key: str | None = None,
        ca_file: str | None = None,
        stream_max_s: float | None = None,
        hang_policy: HangPolicy | None = DEFAULT_POLICY,
        memory: ReplicaMemory | None = None,
        notice: PlainHttpNotice | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_urls = gateway_urls(base_url)
        self._sleep, self._clock = sleep, clock  # a retry's wait, its final error's time
        self.retries = 0  # times a call asked again as an answer said (x-should-retry)
        # one WARNING when a credential first goes over plain http to another machine
        self.notice = notice or PlainHttpNotice(self.base_urls)  # (plain_http.py)
        self._memory = memory  # the replica that answered another process (client_replicas)
        # when a wait on a gateway, with another left to try, is given up as hung (module
        # docstring); None: never
        self.hang_policy = hang_policy
        # a stream's whole time (module docstring); None: $LLM_MESH_STREAM_MAX_S or 30 min
        self.stream_max_s = positive(stream_max_s) if stream_max_s is not None else None
        self._current = 0
        self.prefer(memory.start(self.base_urls) if memory is not None else None)
        self.failovers = 0  # times a call moved to another gateway
        self._admin_key = admin_key
        self._admin_registry_key = admin_registry_key  # to prove first (admin_proof.py)
        self._api_key = api_key
        self._owned = http_client is None
        # https: the system's CAs and ``ca_file``'s; the home's admin key never via a proxy
        # variable (a program on its port relays the proof: found 2026-12-03, review)
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, verify=client_ssl_context(ca_file), trust_env=not admin_registry_key
        )

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    @property
    def base_url(self) -> str:
        """The gateway in use now."""
        return self.base_urls[self._current]

    def prefer(self, base_url: str | None) -> None:
        """Begin at ``base_url``, one of :attr:`base_urls` (another is ignored): the gateway
        that answered a caller's previous client, so that a replica it left (hung, dead) is
        not waited on again by each new client."""
        if base_url in self.base_urls:
            self._current = self.base_urls.index(base_url)

    def _answered(self, i: int) -> None:
        self._current = i
        if self._memory is not None:
            self._memory.answered(self.base_urls, self.base_urls[i])

    def _order(self) -> list[int]:
        n = len(self.base_urls)
        return [(self._current + i) % n for i in range(n)]

    async def _each(self, call: Any) -> Any:
        """``await call(base_url, tally, is_last)`` on the gateways in turn until one does
        not ask to retry (``is_last``: no other gateway is left to try, nor a "not up" to
        raise; ``tally``: the call's retries so far, :class:`Tally`). An answer saying
        ``x-should-retry: true`` (:class:`Again`) is asked again after its wait, the other
        gateways in turn first; one saying ``false`` is raised by ``call``."""
        last: MeshError | None = None
        said: MeshError | None = None  # a gateway's "model not up" (``said_not_up``)
        queue = self._order()  # the gateways still to ask, in turn
        tally = Tally(self._clock)
        while queue:
            i = queue.pop(0)
            try:
                result = await call(self.base_urls[i], tally, not queue and said is None)
            except Again as exc:  # x-should-retry: true (``advised``): later, in turn
                self.retries += 1
                await self._sleep(exc.wait_s)
                queue.append(i)
                continue
            except Retry as exc:
                last = exc.error
                said = said or said_not_up(exc.error)
                if queue:
                    self.failovers += 1
                continue
            except MeshError as exc:  # raised by ``call``: after retries, it says so
                tally.noted(exc)
                raise
            self._answered(i)
            return result
        if last is None:  # no gateway URL at all (the constructor refuses that)
            raise MeshError("no gateway URL to try")
        raise tally.noted(said or last)

    def _watched(self, step: Any, base: str, leave: bool) -> Any:
        """``step`` (a wait on ``base``), watched for a hung gateway when ``leave`` (the
        wait may move to another gateway) and the client has a ``hang_policy``: then
        :class:`~LLM_Mesh.client_hang.Hung` once ``base`` answers neither it nor its
        ``GET /healthz`` probes (``core/hang_watch.py``); else ``step`` as it is."""
        policy = self.hang_policy
        if not leave or policy is None:
            return step
        return watched(step, base, policy, lambda: probe(self._http, base, policy.probe_s))

    def _deadline_s(self, timeout: Any) -> float:
        """A whole call's time: connect + write + twice the read timeout (``MAX_ANSWER_BYTES``)."""
        t = self._http.timeout if timeout is None else timeout
        if isinstance(t, (int, float)):
            return 3.0 * float(t)
        if isinstance(t, httpx.Timeout):
            return (t.connect or 0.0) + (t.write or 0.0) + 2.0 * (t.read or 300.0)
        return 3600.0

    async def _request(
        self, method: str, path: str, limit: int = MAX_ANSWER_BYTES, *, admin: bool = False,
        read: Read = answer_object, retry: bool = False, **kw: Any,
    ) -> Any:  # fmt: skip
        """``method path`` on the gateways in turn, its answer read to at most ``limit``, and
        then by ``read`` (its shape: a JSON object by default; a redirect, never followed,
        or another shape: ``UpstreamError``, the next gateway's turn as for a 5xx);
        ``admin``: with the admin key, if any (:meth:`_admin_headers`); ``retry``: a POST
        without a request id that may run again on another gateway (harmless twice)."""
        many, path = len(self.base_urls) > 1, own_path(path)
        headers = kw.get("headers") or {}
        # a retry elsewhere is safe for reads, for calls carrying a request id, and ``retry``
        retry_sent = many and (method == "GET" or retry or "X-Request-Id" in headers)

        async def sent(base: str) -> httpx.Response:
            extra = await self._admin_headers(base, kw.get("timeout")) if admin else {}
            return await call(
                self._http, method, base + path, limit,
                deadline_s=self._deadline_s(kw.get("timeout")), follow_redirects=False,
                **{**kw, "headers": {**headers, **extra}},
            )  # fmt: skip

        async def once(base: str, tally: Tally, last: bool) -> Any:
            try:  # the admin proof watched too (found 2026-12-05: it waited 300 s on a hung one)
                r = await self._watched(sent(base), base, retry_sent and not last)
            except Hung as exc:  # another gateway is left: it is asked (same request id)
                raise Retry(UpstreamError(str(exc))) from exc
            except InvalidCredential as exc:  # a URL that did not prove it is the registry
                if many:
                    raise Retry(exc) from exc
                raise
            except AnswerRefused as exc:
                if retry_sent:
                    raise Retry(exc) from exc
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if many:
                    raise Retry(unreachable(base, exc)) from exc
                raise unreachable(base, exc) from exc
            except httpx.TimeoutException as exc:
                error = UpstreamError(f"the registry at {base} timed out on {path}")
                if retry_sent:
                    raise Retry(error) from exc
                raise error from exc
            except httpx.TransportError as exc:
                error = UpstreamError(failed(base, path, exc))
                if retry_sent:
                    raise Retry(error) from exc
                raise error from exc
            if r.status_code >= 400:
                try:
                    raise_for_error(r)
                except MeshError as exc:
                    # what the answer says (x-should-retry), else a 5xx elsewhere as before
                    advised(r, exc, tally)
                    if r.status_code >= 500 and retry_sent:
                        raise Retry(exc) from exc
                    raise
            try:
                return read(r, f"{method} {base}{path}'s answer")
            except UpstreamError as exc:  # a redirect, or not JSON of the shape asked
                if retry_sent:
                    raise Retry(exc) from exc
                raise

        return await self._each(once)

    async def _admin_headers(self, base: str, timeout: Any) -> dict[str, str]:
        """The admin key's header for ``base`` (none without a key); with
        ``admin_registry_key`` only once ``base`` proved it holds it (``admin_proof.py``)."""
        if not self._admin_key:
            return {}
        header = _bearer(self._admin_key, "the admin key")  # a bad key: refused, nothing sent
        self.notice.sent("the admin key")
        if (holder := self._admin_registry_key) is not None:
            await prove(self._http, base, holder, deadline_s=self._deadline_s(timeout))
        return header

    # --- registry -----------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._request("GET", "/healthz", PING_ANSWER_BYTES)
        return data

    async def nodes(self) -> list[dict[str, Any]]:
        """The nodes; with ``admin_key`` the admin's view (URLs and hardware too)."""
        nodes: list[dict[str, Any]] = await self._request(
            "GET", "/mesh/nodes", admin=True, read=rows("nodes", "node_id")
        )
        return nodes

    async def models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = await self._request(
            "GET", "/mesh/models", read=rows("models", "id")
        )
        return models

    async def health_check(self) -> list[dict[str, Any]]:
        """One active health-check pass now: an admin operation (``admin_key``). Moved to
        another gateway like a read (found 2026-12-05: a 503 or hung first one failed it): a
        pass only asks every node's ``GET /mesh/health`` and records what it finds, so a
        second pass, should the first gateway run it too, checks them again, no harm done."""
        results: list[dict[str, Any]] = await self._request(
            "POST", "/mesh/health-check", admin=True, read=rows("results"), retry=True
        )
        return results

    async def earnings(
        self, operator_token: str, *, node: str | None = None, days: int = 30
    ) -> dict[str, Any]:
        """``GET /v1/earnings``: the operator's earnings (its token, not an API key)."""
        params: dict[str, Any] = {"days": days}
        if node:
            params["node"] = node
        data: dict[str, Any] = await self._request(
            "GET",
            "/v1/earnings",
            EARNINGS_ANSWER_BYTES,
            params=params,
            headers=self._credential(operator_token, "the operator token"),
        )
        return data

    async def canary_run(
        self, node: str | None = None, model: str | None = None, *, timeout_s: float = 600.0
    ) -> list[dict[str, Any]]:
        """One canary probe round now (admin): each probe's verdict (``registry/canary.py``)."""
        params = {k: v for k, v in (("node", node), ("model", model)) if v is not None}
        results: list[dict[str, Any]] = await self._request(
            "POST", "/mesh/canary/run", admin=True, params=params, timeout=timeout_s,
            read=rows("results"),
        )  # fmt: skip
        return results

    async def usage_audit(self) -> dict[str, Any]:
        """``GET /mesh/usage-audit`` (admin): each node's token shares, the recent verdicts."""
        data: dict[str, Any] = await self._request("GET", "/mesh/usage-audit", admin=True)
        return data

    async def balance(self) -> dict[str, Any]:
        """``GET /v1/balance``: the API key's user's balance (no key: the community pool's)."""
        return await self.keyed_get("/v1/balance", PING_ANSWER_BYTES)

    async def keyed_get(self, path: str, limit: int = PING_ANSWER_BYTES) -> dict[str, Any]:
        """``GET path``'s JSON object with the API key (if any), read to ``limit``:
        :meth:`balance`, ``llm-mesh receipt fetch``'s ``GET /v1/receipts/{hash}``."""
        key = self._api_key
        headers = self._credential(key, "the API key", InvalidApiKey) if key else None
        data: dict[str, Any] = await self._request("GET", path, limit, headers=headers)
        return data

    # --- OpenAI API -----------------------------------------------------------------

    def _v1_headers(self, request_id: str | None) -> dict[str, str]:
        if not request_id and len(self.base_urls) > 1:
            request_id = new_request_id()  # the same id on every gateway tried
        headers = {"X-Request-Id": request_id} if request_id else {}
        if self._api_key:
            headers.update(self._credential(self._api_key, "the API key", InvalidApiKey))
        return headers

    def _credential(
        self, secret: str, what: str, error: type[MeshError] = InvalidCredential
    ) -> dict[str, str]:
        """:func:`_bearer`, and :attr:`notice` told that ``what`` is sent."""
        header = _bearer(secret, what, error)
        self.notice.sent(what)
        return header

    async def completion(
        self, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        headers = self._v1_headers(request_id)
        data: dict[str, Any] = await self._request(
            "POST", "/v1/completions", json={**body, "stream": False}, headers=headers
        )
        return data

    async def chat(self, body: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        headers = self._v1_headers(request_id)
        data: dict[str, Any] = await self._request(
            "POST", "/v1/chat/completions", json={**body, "stream": False}, headers=headers
        )
        return data

    async def stream(
        self, path: str, body: dict[str, Any], *, request_id: str | None = None,
        max_s: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
        """Yield each SSE chunk (parsed JSON) of a streaming call; ends at ``[DONE]``. A
        stream that ends without ``[DONE]`` raises :class:`~LLM_Mesh.errors.UpstreamError`
        (:data:`~LLM_Mesh.client_stream.CUT_SHORT`) after its last chunk: the answer may be cut short.

        The stream's ``X-Mesh-*`` headers are yielded first as
        ``{"object": "mesh.headers", "headers": {...}}``. The whole stream, from its request
        to its last event (every gateway tried), runs at most ``max_s`` seconds (default:
        the client's ``stream_max_s``, else ``$LLM_MESH_STREAM_MAX_S``, else 30 min), then
        :class:`~LLM_Mesh.bounded_http.AnswerRefused`; events without output past twice what
        an honest gateway sends for ``body``: ``client_stream.QuietStream`` (one too).
        """
        headers = self._v1_headers(request_id)
        many, path = len(self.base_urls) > 1, own_path(path)
        started = False
        limit_s = positive(max_s) if max_s is not None else self.stream_max_s or stream_max_s()
        bound = Bound(asyncio.get_running_loop().time() + limit_s, limit_s)
        said: MeshError | None = None
        queue = self._order()  # the gateways still to ask, in turn (as ``_each``)
        tally = Tally(self._clock)
        while queue:
            i = queue.pop(0)
            base = self.base_urls[i]
            last = not queue and said is None  # (else: ``said`` is the error)
            try:
                request = self._http.build_request(
                    "POST", base + path, json={**body, "stream": True},
                    headers={**headers, **DECODED},
                )  # fmt: skip
                what = f"the stream from {base}"
                head = self._http.send(request, stream=True, follow_redirects=False)
                r = await bound.by(self._watched(head, base, many and not last), what)
                try:
                    if r.status_code >= 300:  # a redirect too: not followed, as a 5xx
                        error: MeshError | None = redirected(r, what)
                        if error is None:
                            error = await bound.by(stream_error(r, base + path), what)
                        if r.status_code >= 400:  # what it says (x-should-retry), if it does
                            left = bound.deadline - asyncio.get_running_loop().time()
                            advised(r, error, tally, left)
                        if r.status_code in range(400, 500):
                            raise error
                        if many and not last:
                            said, self.failovers = said or said_not_up(error), self.failovers + 1
                            continue
                        raise error
                    self._answered(i)
                    started = True
                    yield {
                        "object": "mesh.headers",
                        "headers": {
                            k: v for k, v in r.headers.items() if k.lower().startswith("x-mesh-")
                        },
                    }
                    quiet = QuietCount(quiet_bound(body, path.endswith(CHAT)), choices_of(body))
                    async for chunk in bound.each(events(r, base, quiet), what):
                        if chunk is None:  # [DONE]
                            return
                        yield chunk
                    # the gateway ends every stream with [DONE], a failure too (an error
                    # event first): an end without it is a cut, never a whole answer
                    # (found 2026-12-04: it passed as complete)
                    raise UpstreamError(f"{CUT_SHORT} (from {base})")
                finally:
                    await r.aclose()
            except Again as exc:  # x-should-retry: true: later, the others in turn first
                self.retries += 1
                await bound.by(self._sleep(exc.wait_s), what)
                queue.append(i)
            except MeshError as exc:  # after retries, it says so
                tally.noted(exc)
                raise
            except Hung:  # before its head (watched only with another gateway left)
                self.failovers += 1
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if started or not many or last:
                    raise unreachable(base, exc) from exc
                self.failovers += 1
            except httpx.TransportError as exc:
                if started or not many or last:
                    raise UpstreamError(f"the stream from {base} was cut: {exc}") from exc
                self.failovers += 1
        if said is not None:  # the last one failed too (hung, refused, 5xx)
            raise tally.noted(said)


def fetch_json_sync(
    base_url: str | Sequence[str],
    path: str,
    timeout: float = 5.0,
    *,
    ca_file: str | None = None,
    limit: int = MAX_ANSWER_BYTES,
    transport: httpx.AsyncBaseTransport | None = None,
    read: Read = answer_object,
    prefer: str | None = None,
    answered: Callable[[str], object] | None = None,
    memory: ReplicaMemory | None = None,
) -> Any:
    """A blocking GET for the few synchronous seed calls (``get_model_info``, ``llm-mesh
    status`` and ``models``, the registry's keys of ``receipt verify``); with several
    gateways, the first that answers (below 500) with what ``read`` asks for (a JSON object
    by default; :func:`~LLM_Mesh.bounded_http.rows`), beginning at ``prefer``
    (:meth:`MeshClient.prefer`, else ``memory``'s); ``answered(url)`` is told the one that did. Read as :class:`MeshClient` reads: at most
    ``limit`` bytes, decoded, within 3 × ``timeout`` in all (found 2026-12-03: ``httpx.get``
    read and inflated the answer whole, and a byte at a time within ``timeout`` held the
    caller for ever). Runs in a thread of its own, so it works under a running event loop
    too; ``transport``: tests'."""

    async def go() -> Any:
        http = httpx.AsyncClient(
            timeout=timeout, verify=client_ssl_context(ca_file), transport=transport
        )
        async with http, MeshClient(base_url, http_client=http, memory=memory) as client:
            client.prefer(prefer)
            try:
                return await client._request("GET", path, limit, read=read)
            finally:
                if answered is not None:
                    answered(client.base_url)

    # a daemon thread, joined without a pool: Ctrl-C ends the wait at once (the read ends
    # on its own within its bound), and nothing waits for it at exit (found 2026-12-03:
    # a ``ThreadPoolExecutor``'s exit waited for the read, at Ctrl-C and at exit)
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, asyncio.run(go())))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    thread = threading.Thread(target=run, name="llm-mesh-fetch", daemon=True)
    thread.start()
    thread.join()
    ok, value = box.pop()  # the box keeps no reference to an exception raised below
    if ok:
        return value
    try:
        raise value
    finally:
        del value
