"""Registration and heartbeats: the node's side of the registry contract.

Owned by the app's lifespan (through ``NodeService``). The loop:

1. ``POST {registry}/mesh/nodes`` (``NodeRegistration``) until it is accepted,
   waiting a capped, growing delay while the registry is down (log, never crash);
2. every ``heartbeat_interval_s``, ``POST /mesh/nodes/{id}/heartbeat``
   (``Heartbeat``); a 404 ``unknown_node`` answer means the registry forgot
   us: re-register at once. :meth:`NodeAgent.wake` sends the next one early
   (the node's state changed). A 200's ``health`` (``core/check_state.py``: the
   registry's active health checks of this node) is kept (``registry_health``, shown by
   ``/mesh/info``) and logged once per change: a WARNING when the checks turn to failing
   (the node is out of routing there and earns no uptime), an INFO when they pass again;
   an answer without it (an older registry) changes nothing;
   a 200's ``beat_token`` (a registration's too) goes back with the next heartbeat,
   goodbye or registration to that registry (``node/beat_token.py``: a forged flood);
3. on shutdown, once the loop has stopped, ``DELETE /mesh/nodes/{id}`` until the
   shutdown's deadline (:meth:`NodeAgent.stop`), else ``deregister_budget_s`` (6 s): each
   try waits at most ``deregister_timeout_s`` (2 s); a timeout or 5xx is tried again, signed
   anew, up to ``deregister_tries`` (3). When every registry refused the connection outright,
   the goodbye is skipped ("registry unreachable: goodbye skipped"): the node's heartbeats
   expire there. A goodbye that arrives twice is the same goodbye; an unregistered node says none.

Every message is signed by the node's key (``signer``, a
:class:`~LLM_Mesh.core.identity.NodeSigner`) over the exact bytes sent; the registration also
carries the operator token. A 401/403 answer (bad token, clock off by more than two minutes) is
logged with the registry's message (the same refusal again: one short line) and retried with the
growing delay; a 401 ``invalid_credential`` (no known operator token) signed as a 403 ``revoked``
below (its ``token_refusal``: ``agent_wire.token_doubt``) ends the loop: one ERROR, ``on_fatal``
told, the node exits. A 403 ``plain_http_remote`` (a re-check's too) or ``revoked`` is one ERROR
in words, then 1 min to the next registration, doubling up to 15 min (``core/revoked_notice.py``:
a re-check keeps its own waits); a revoked node's other registries are asked at once and its
goodbye goes to those only. A 403 ``revoked`` counts only when the registry key this node trusts (``registry_key``:
pinned in node.toml or learned at registration, ``node/gateway_guard.py``) signed it over the very
message it refuses (``core/revocation_proof.py``), or, for a learned key, a key the answer's signed
rotation chain leads to from it (a rotated ``registry.key``); one without that signature (forged by
whoever answers at the registry's URL, replayed, another node's, or an older registry's) is an
ordinary refusal: a failed heartbeat (the next one at the usual interval) or registration (the
backoff), logged once per registry as a WARNING (an unsigned 401: its words, once). A node with
no registry key yet (its first registration, or after ``keys forget-gateway``) honours either
unsigned: it has nothing to check it with, it serves no one yet (without a key every inference
request is refused), and whoever answers at the URL can hold back its first registration anyway.

**Several registries** (replicas: ``--registry URL,URL,...``, node.toml ``registry_url``,
``$LLM_MESH_REGISTRY_URL``): the agent talks to one at a time while it answers; one that
cannot be reached, times out or answers 5xx is left for the next at once, for the same message
(signed anew: a new sequence number, not a replay); a 4xx answer is the network's and is not
retried elsewhere (but ``revoked``, above). Replicas share the store; a 404 ``unknown_node``
from the new one means re-register there.

**A registry is not trusted with the node's resources** (whoever answers at the URL the
node was given, plain http on a LAN included): each answer is read to at most
``MAX_ANSWER_BYTES`` (decoded; the earnings report ``node/earnings_query.py``'s), whole within
the request's timeout (``bounded_http.call``): past either it is a failed call, like a
5xx. The heartbeat interval it sets is kept within ``MIN_INTERVAL_S``..``MAX_INTERVAL_S``;
an answer of another shape, or nested too deep to parse, changes nothing; what it says is
logged printable only (``logs.log_text``: no newline, no terminal escape).

``sleep`` is injectable; :meth:`NodeAgent.step` runs one iteration (tests: no real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from LLM_Mesh.bounded_http import AnswerRefused, AnswerTimedOut, call
from LLM_Mesh.core.check_state import CheckState
from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, MessageKind, NodeSigner
from LLM_Mesh.core.reach_hint import reach_hint
from LLM_Mesh.core.revocation_proof import TrustedKey
from LLM_Mesh.core.revoked_notice import (
    RevokedRegistries,
    check_delay,
    is_plain_http_refused,
    is_revoked,
    plain_http_waits,
    revoked_message,
)
from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
from LLM_Mesh.core.shutdown import retry_goodbye
from LLM_Mesh.logs import log_text as said
from LLM_Mesh.node.agent_wire import (
    Backoff,
    Unreached,
    answer_of,
    check_clock,
    error_message,
    heard_health,
    refusal,
    registration_body,
    revocation_doubt,
    token_doubt,
    wire_json,
)
from LLM_Mesh.node.beat_token import BeatToken
from LLM_Mesh.node.earnings_query import ask_earnings
from LLM_Mesh.task_stop import cancel_and_wait

log = logging.getLogger("LLM_Mesh.node.agent")

# what the node reads of a registry's answer (registration, heartbeat, goodbye: a few hundred
# bytes from an honest one), decoded, all within the request's timeout: a registry that
# answers without end, with a gzip bomb or a byte at a time is a failed call (found
# 2026-12-03: read whole, inflated whole, and a drip held the agent (and the goodbye) for ever)
MAX_ANSWER_BYTES = 1 << 20
# the heartbeat interval a registry's answer may set (found 2026-12-03: any positive number
# was taken: 1e-9 made the node sign and send heartbeats in a loop as fast as answered)
MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 3600.0


class NodeAgent:
    """Keeps the registry informed about one node."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        registry_url: str | Sequence[str],
        node_id: str,
        registration: Callable[[], NodeRegistration],
        heartbeat: Callable[[], Heartbeat],
        interval_s: float = 10.0,
        backoff: Backoff | None = None,
        request_timeout_s: float = 5.0,
        deregister_timeout_s: float = 2.0,
        deregister_tries: int = 3,
        deregister_budget_s: float = 6.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        signer: NodeSigner | None = None,
        operator_token: str | None = None,
        on_accepted: Callable[[dict[str, Any]], None] | None = None,
        on_heartbeat: Callable[[dict[str, Any]], None] | None = None,
        pinned_gateway: Callable[[], str | None] | None = None,
        registry_key: Callable[[], TrustedKey | None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        source: str = "",  # where registry_url came from, said when none answers (cli40b)
    ) -> None:
        self._client = client
        self._on_accepted = on_accepted
        self._on_heartbeat = on_heartbeat  # a 200's answer: what the gateway sends (guard)
        # the registry id this node pinned (node/gateway_guard.py): a heartbeat answer
        # naming another (a rotated registry.key) makes it register again, once per id,
        # to hear the rotation statement (core/key_rotation.py)
        self._pinned_gateway = pinned_gateway
        self._asked_gateway: str | None = None
        self._registry_key = registry_key  # trusted, pinned or learned (module docstring)
        self._doubted: set[str] = set()  # registries whose unsigned 403 revoked was logged
        self._signer = signer
        self._operator_token = operator_token
        urls = [registry_url] if isinstance(registry_url, str) else list(registry_url)
        self.registry_urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not self.registry_urls:
            raise ValueError("a node agent needs at least one registry URL")
        self._current = 0
        self.failovers = 0
        self.node_id = node_id
        self._registration = registration
        self._heartbeat = heartbeat
        self.interval_s = interval_s
        self.backoff = backoff or Backoff(cap_s=max(interval_s, 1.0) * 3)
        self._timeout, self._deregister_timeout = request_timeout_s, deregister_timeout_s
        self._deregister_tries = max(1, deregister_tries)
        self._deregister_budget = deregister_budget_s
        self._sleep, self._clock, self._source = sleep, clock, f"; {source}" if source else ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.registered = False
        # the registry's heartbeat expiry (its registration answer); until one said, the
        # default rule: three missed intervals
        self.heartbeat_expiry_s: float | None = None
        self.last_error: str | None = None
        self.fatal: str | None = None  # a refusal no retry changes: the loop has ended
        self._on_fatal = on_fatal
        self._refused_as: str | None = None  # the last registration refusal, logged in full
        self._plain_refusals = 0  # 403 plain_http_remote in a row: long waits (check_delay)
        self.heartbeats_sent = 0
        self.registrations = 0
        # the registry's active health checks of this node, as its last heartbeat answer
        # said (None: not said); whether they failed as last said (None: never said)
        self.registry_health: CheckState | None = None
        self._health_failing: bool | None = None
        # the registries that revoked this node, each asked again on its own schedule
        # (core/revoked_notice.py); the one that answered the last message
        self.revoked = RevokedRegistries()
        self._answered_by = self.registry_urls[0]
        self._sent: dict[str, str] = {}  # the headers of the message it answered
        self.beat_token = BeatToken()  # each registry's last, sent back (node/beat_token.py)

    # -- one step at a time (pure enough to test) ------------------------------

    def _signed(self, kind: MessageKind, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if body else {}
        if self._signer is not None:
            headers.update(self._signer.headers(kind, body, target=self.node_id))
        if kind is MessageKind.REGISTER and self._operator_token:
            headers[HDR_OPERATOR_TOKEN] = self._operator_token
        return headers

    @property
    def registry_url(self) -> str:
        """The registry the agent talks to now."""
        return self.registry_urls[self._current]

    def _next_registry(self, why: str | None = None) -> None:
        """Move to the next registry that did not revoke this node (``why``: a failover)."""
        for _ in range(len(self.registry_urls)):
            self._current = (self._current + 1) % len(self.registry_urls)
            if self.registry_url not in self.revoked:
                break
        if why is not None:
            self.failovers += 1
            log.warning("%s; trying %s", why, self.registry_url)

    async def _post(
        self,
        path: str,
        kind: MessageKind,
        body: bytes,
        timeout: float,
        deadline: float | None = None,
        only: str | None = None,
    ) -> httpx.Response | Unreached:
        """POST (or DELETE, for an empty deregistration) to the registries that did not
        revoke this node in turn, from the current one (``only``: to that one alone); the
        first answer below 500 (its registry kept as ``_answered_by``), else the last failure.
        ``deadline`` (on ``clock``): no registry is tried after it, none waited on past it."""
        failure = ""
        refused = True  # until a registry did anything but refuse the connection
        tries = 1 if only else len(self.revoked.allowed(self.registry_urls))
        if not tries:
            return Unreached("every registry revoked this node")
        if only is None and self.registry_url in self.revoked:
            self._next_registry()
        for _ in range(tries):
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock())
                if timeout <= 0:
                    return Unreached(failure or "no time left", refused=bool(failure) and refused)
            base = only or self.registry_url
            url = base + path
            method = "DELETE" if kind is MessageKind.DEREGISTER else "POST"
            headers = self._signed(kind, body) | self.beat_token.header(base, kind)
            try:
                r = await call(
                    self._client, method, url, MAX_ANSWER_BYTES, deadline_s=timeout,
                    content=body or None, headers=headers, timeout=timeout,
                )  # fmt: skip
            except httpx.HTTPError as exc:
                # ConnectError: refused, no route, unknown host (a ConnectTimeout is not one)
                refused = refused and isinstance(exc, httpx.ConnectError)
                failure = f"registry unreachable at {base}: {exc!r}"
                hint = reach_hint(base, str(exc))  # http vs https, its CA
                failure += (f" ({hint})" if hint else "") + self._source
            except AnswerRefused as exc:
                refused = False
                how = "timed out" if isinstance(exc, AnswerTimedOut) else "refused"
                failure = f"registry {base}'s answer {how}: {said(exc)}"
            else:
                if r.status_code < 500 or tries == 1:
                    self._answered_by, self._sent = base, headers
                    return r
                refused = False
                failure = f"registry {base} answered HTTP {r.status_code}"
            if tries > 1:
                self._next_registry(failure)
        return Unreached(failure, refused=refused)

    async def register(self, only: str | None = None) -> bool:
        """One registration attempt (each registry that did not revoke this node once, if
        need be; ``only``: that registry alone, a re-check); True when accepted."""
        body = registration_body(self._registration(), self._operator_token)
        r = await self._post("/mesh/nodes", MessageKind.REGISTER, body, self._timeout, only=only)
        retry_in = None if only else self.backoff.peek()  # a re-check says its own delay
        if isinstance(r, Unreached):  # step() waits the backoff's next delay, said here
            return self._failed(r.message, retry_in=retry_in)
        doubted = self._doubted_revocation(r, MessageKind.REGISTER)
        if is_revoked(r.status_code, answer_of(r)) and not doubted:
            self._heard_revoked(r)
            # the others are asked at once: each registry's revocation is its own
            return False if only or self._all_revoked() else await self.register()
        if r.status_code >= 400:
            plain = is_plain_http_refused(r.status_code, answer_of(r))
            self._plain_refusals, wait = plain_http_waits(self._plain_refusals, plain, bool(only))
            retry_in = wait or retry_in
            message = f"registration refused: HTTP {r.status_code} {refusal(r)}"
            doubt = token_doubt(r, self._sent, self._key())  # None: the registry's word
            if doubt is None:
                return self._given_up(message)
            message += doubt
            if doubted:  # its WARNING said it in full
                self._refused_as = message
            if message != self._refused_as:  # its words in full once, then one short line
                self._refused_as = message
                return self._failed(message, retry_in, logging.ERROR if plain else logging.WARNING)
            self.last_error = message
            again = "" if retry_in is None else f": registering again in {retry_in:.0f} s"
            log.warning("registration refused again (HTTP %s, as above)%s", r.status_code, again)
            return False
        # a re-check accepted by a registry this node does not heartbeat to: the interval and
        # expiry stay the other's (found 2026-12-04: a re-check's 3600 s made the node expire)
        elsewhere = self.registered and only is not None and only != self.registry_url
        self.registered = True
        self.registrations += 1
        self._doubted.discard(self._answered_by)
        self.last_error = self._refused_as = None
        self.backoff.reset()
        self._plain_refusals = 0
        answer = answer_of(r)
        if not isinstance(answer, dict):
            answer = {}
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            interval = float(answer.get("heartbeat_interval_s") or 0)
            if interval > 0 and math.isfinite(interval) and not elsewhere:
                self.interval_s = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, interval))
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            expiry = float(answer.get("heartbeat_expiry_s") or 0)
            if not elsewhere:
                self.heartbeat_expiry_s = expiry if expiry > 0 else None
        self.beat_token.heard(self._answered_by, answer)
        if self._signer is not None:
            check_clock(self._signer.wall_clock(), answer.get("registry_time"), log)
        if self._on_accepted is not None:  # the gateway key to pin (node/gateway_guard.py)
            self._on_accepted(answer)
        log.info("registered %s at %s", self.node_id, self._answered_by)
        return True

    def _given_up(self, message: str) -> bool:
        self.fatal = message
        if self._on_fatal is not None:  # the node's process ends (node_manager.py)
            self._on_fatal(message)
        return self._failed(f"{message}; not registering again", level=logging.ERROR)

    def _all_revoked(self) -> bool:
        return not self.revoked.allowed(self.registry_urls)

    def _heard_revoked(self, r: httpx.Response) -> None:
        """Registry ``_answered_by`` answered 403 ``revoked``: one ERROR the first time
        (``core/revoked_notice.py``), nothing sent to it until its re-check is due."""
        url, message = self._answered_by, error_message(r)
        self.last_error = f"revoked by the registry at {url}: {message}"
        if self.revoked.heard(url, message, self._clock()):
            others = self.revoked.allowed(self.registry_urls)
            log.error("%s", revoked_message(url, self.node_id, message, others))

    def _key(self) -> TrustedKey | None:
        return self._registry_key() if self._registry_key is not None else None

    def _doubted_revocation(self, r: httpx.Response, kind: MessageKind) -> bool:
        """A 403 ``revoked`` not signed by the registry key this node trusts (forged, or an
        older registry's): not honoured; one WARNING per registry until it accepts a message
        of this node again (``core/revocation_proof.py``)."""
        why = revocation_doubt(r, kind, self._sent, self._key())
        if why is None:
            return False
        url = self._answered_by
        self.last_error = f"a 403 revoked not signed by the registry's key, from {url}: {why}"
        if url not in self._doubted:
            self._doubted.add(url)
            log.warning(
                "the registry at %s answered a %s with 403 revoked (%s), but a 403 revoked not "
                "signed by the registry's key is not its word (%s): taken as a failed %s and "
                "sent again at the usual pace. If the registry did revoke this node, it runs "
                "an older version or another key than the one this node trusts",
                url, kind.value, error_message(r), why, kind.value,
            )  # fmt: skip
        return True

    async def _recheck(self) -> None:
        """One registration at each revoking registry whose re-check is due; one that
        accepts the node is asked again as before (heartbeats go there when it is the only
        one), else its next re-check waits twice as long (``core/revoked_notice.py``)."""
        for url in self.revoked.due(self._clock()):
            if not self.registered:
                self._current = self.registry_urls.index(url)
            if await self.register(only=url):
                self.revoked.lifted(url)
                log.warning("the registry at %s accepts this node again", url)
                continue
            now = self._clock()
            self.revoked.checked(url, now)
            left = self.revoked.get(url)
            wait = left.next_check - now if left is not None else 0.0
            log.info("the registry at %s still refuses this node: asked again in %.0f s", url, wait)

    def _failed(self, message: str, retry_in: float | None = None, level: int = 30) -> bool:
        self.last_error = message
        again = "" if retry_in is None else f": registering again in {retry_in:.0f} s"
        log.log(level, "%s%s", message, again)
        return False

    async def send_heartbeat(self) -> bool:
        """One heartbeat; a 404 ``unknown_node`` marks the node unregistered."""
        body = wire_json(self._heartbeat().model_dump(mode="json"))
        r = await self._post(
            f"/mesh/nodes/{self.node_id}/heartbeat", MessageKind.HEARTBEAT, body, self._timeout
        )
        if isinstance(r, Unreached):
            return self._failed(f"heartbeat failed: {r.message}")
        if r.status_code == 404:
            self.registered = False
            return self._failed("the registry does not know this node: re-registering")
        doubted = self._doubted_revocation(r, MessageKind.HEARTBEAT)
        if doubted:  # a failed heartbeat, as a 5xx: the next one at the usual time
            return False
        if is_revoked(r.status_code, answer_of(r)):
            self.registered = False  # no heartbeat to it until a re-check registers again
            # its checks of this node, as its last answer said, are no more its word:
            # /mesh/info showed "passing" beside "revoked by" (found 2026-12-04, review)
            self.registry_health = None
            self._heard_revoked(r)
            return False
        if r.status_code >= 400:
            return self._failed(f"heartbeat refused: HTTP {r.status_code} {said(r.text, 200)}")
        self.heartbeats_sent += 1
        self.last_error = None
        self._doubted.discard(self._answered_by)
        self._heard_health(r)
        self._heard_gateway(r)
        answer = answer_of(r)
        self.beat_token.heard(self._answered_by, answer)
        if self._on_heartbeat is not None and isinstance(answer, dict):
            self._on_heartbeat(answer)
        return True

    def _heard_gateway(self, r: httpx.Response) -> None:
        """A heartbeat answer's ``registry_id`` other than the pinned one: register again
        (once for each such id), whose answer may carry a rotation statement the pinned
        key signed (``node/gateway_guard.py`` decides)."""
        answer = answer_of(r)
        said_id = answer.get("registry_id") if isinstance(answer, dict) else None
        pinned = self._pinned_gateway() if self._pinned_gateway is not None else None
        if (
            not isinstance(said_id, str)
            or pinned is None
            or said_id in (pinned, self._asked_gateway)
        ):
            return
        self._asked_gateway = said_id
        self.registered = False
        log.info(
            "the registry at %s signs as gateway %s, this node pinned %s: registering again "
            "(a rotated registry key is accepted when the pinned key signed the rotation)",
            self.registry_url, said(said_id, 64), pinned,
        )  # fmt: skip

    def _heard_health(self, r: httpx.Response) -> None:
        """The answer's ``health``, kept for ``/mesh/info`` (``agent_wire.heard_health``)."""
        self.registry_health, self._health_failing = heard_health(
            self.registry_url, self._health_failing, answer_of(r)
        )

    async def step(self) -> float:
        """Register or heartbeat once (and the due re-checks of registries that revoked
        this node); return how long to wait before the next step."""
        await self._recheck()
        if self.registered:
            await self.send_heartbeat()
            if self.registered:
                return self.interval_s
        # not registered, or no more (404 unknown_node, another gateway, revoked): at once
        if self._all_revoked():
            return self._after_failure()
        return self.interval_s if await self.register() else self._after_failure()

    def _after_failure(self) -> float:
        """The wait after a failed registration: the backoff's, or until the next re-check
        when every registry revoked this node (nothing else is sent before it)."""
        if self._plain_refusals:  # nothing changes before someone acts: 1 min .. 15 min
            return check_delay(self._plain_refusals - 1)
        if not self._all_revoked():
            return self.backoff.next_delay()
        return max(0.0, (self.revoked.next_check() or 0.0) - self._clock())

    # -- the loop ---------------------------------------------------------------

    def wake(self) -> None:
        """Send the next heartbeat now (the node's state changed)."""
        self._wake.set()

    async def _pause(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        if self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()
            self._wake.clear()

    async def run(self) -> None:
        """Register, then heartbeat, until :attr:`fatal`. Errors are logged, never raised."""
        while self.fatal is None:
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the loop die
                self._failed(f"agent step failed: {exc!r}")
                delay = self.backoff.next_delay()
            await self._pause(delay)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"llm-mesh-agent-{self.node_id}"
            )

    async def stop(self, *, deregister: bool = True, deadline: float | None = None) -> None:
        """Stop the loop, then tell the registry we are gone (best effort, until
        ``deadline`` on ``clock`` if given: the shutdown's)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if not deregister:
            return
        if self.registered:  # at a registry that did not revoke it (_post skips those)
            await self.deregister(deadline=deadline)
        else:
            why = " (every registry revoked it)" if self._all_revoked() else ""
            log.info("not registered with a registry%s: no goodbye to say", why)

    async def earnings(self, days: int = 30) -> dict[str, Any]:
        """This node's earnings, as the registry answers ``GET /v1/earnings?node=<id>`` to
        the operator's token (``llm-mesh node info``): :func:`ask_earnings`."""
        return await ask_earnings(
            self._client, self.registry_url, self.node_id, self._operator_token, days,
            self._timeout,
        )  # fmt: skip

    @property
    def expiry_s(self) -> float:
        """After how long without a heartbeat the registry takes this node out: what it
        said at registration, else three intervals (the default)."""
        return self.heartbeat_expiry_s or self.interval_s * 3

    async def deregister(self, *, deadline: float | None = None) -> bool:
        """The goodbye (``DELETE``), tried again on a timeout or a 5xx until ``deadline``
        (on ``clock``; default ``deregister_budget_s`` from now), skipped at once when every
        registry refused the connection (see the module docstring); True when the registry
        took it (204, or 404: it did not know us)."""
        start = self._clock()
        if deadline is None:
            deadline = start + self._deregister_budget
        failure = Unreached("no time left")
        tries = 0
        while True:
            if tries:
                log.warning("deregistration failed (%s): trying again", failure.message)
                await self._sleep(0.2)
            tries += 1
            r = await self._post(
                f"/mesh/nodes/{self.node_id}", MessageKind.DEREGISTER, b"",
                self._deregister_timeout, deadline,
            )  # fmt: skip
            if isinstance(r, Unreached):
                failure = r
            elif r.status_code >= 500:
                failure = Unreached(f"registry {self.registry_url} answered HTTP {r.status_code}")
            else:
                self.registered = False
                if r.status_code < 400 or r.status_code == 404:
                    # said, as the registration is (found 2026-12-05: a clean stop left no
                    # line of its goodbye)
                    log.info(
                        "deregistered %s at %s: out of routing now", self.node_id, self._answered_by
                    )
                    return True
                return self._failed(
                    f"deregistration refused: HTTP {r.status_code} {said(r.text, 200)}"
                )
            if not retry_goodbye(
                refused=failure.refused, tries=tries, max_tries=self._deregister_tries,
                now=self._clock(), deadline=deadline,
            ):  # fmt: skip
                break
        expire = (
            f"it will mark this node offline when heartbeats expire after {self.expiry_s:.0f} s"
        )
        if failure.refused:
            return self._failed(f"{failure.message}: goodbye skipped; {expire}")
        return self._failed(
            f"deregistration failed after {tries} tries in {self._clock() - start:.1f} s "
            f"({failure.message}): {expire}"
        )
