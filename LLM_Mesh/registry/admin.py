"""The admin key: who may manage operators, revoke nodes and run health-check passes.

The store keeps the SHA-256 of one admin key, so every registry process and the
admin CLI on that database agree on it. :func:`ensure_admin_key` (registry
start-up, and the admin CLI) settles which key that is:

- ``$LLM_MESH_ADMIN_KEY`` set: its hash becomes the store's (setting it rotates the key);
- else ``$LLM_MESH_HOME/admin.key`` exists: the store takes its hash if it has none;
- else, when the store has none either: a new key is made, written to
  ``$LLM_MESH_HOME/admin.key`` (mode 0600) and handed back once to be printed.

HTTP admin calls carry it as ``Authorization: Bearer <admin key>``
(:func:`check_admin`); a missing or wrong key is 401 ``invalid_credential``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import hash_secret, new_secret, secret_matches
from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.core.ratelimit import IdTries, Limits, RateLimiter, address_scope
from LLM_Mesh.errors import InvalidCredential, RateLimited, UnknownNode
from LLM_Mesh.registry.beat_tokens import BeatTokens
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.secret_files import admin_key_path, create_secret_file, read_admin_key

log = logging.getLogger(__name__)

# on every heartbeat (CredentialTries.before_verify, .verified): ``ipaddress`` parses the
# address each call, ~1-5 µs (measured 2026-12-06, trust37, timeit at load 19); a peer's
# answer never changes
_loopback = functools.lru_cache(maxsize=4096)(is_loopback)

WRONG_ADMIN_KEYS_PER_MIN = 10  # wrong admin keys a minute per client address (check_admin)
WRONG_ADMIN_KEYS = Limits(rpm=WRONG_ADMIN_KEYS_PER_MIN)
# ... and from all addresses together, a minute per process: many /64s (a /48 is 65,536)
# each spending their 10 read the store 10 times a minute each (found 2026-12-06, trust36).
# Past it every wrong key is a 429 with no read; the admin's own key still passes
# (check_admin: a key of the registry's form, compared in memory)
WRONG_ADMIN_KEYS_TOTAL_PER_MIN = 100
WRONG_OPERATOR_TOKENS_PER_MIN = 30  # ... of operator tokens (GET /v1/earnings), as the dashboard
WRONG_OPERATOR_TOKENS = Limits(rpm=WRONG_OPERATOR_TOKENS_PER_MIN)
# registrations refused for their signature (node_auth.SIGNATURE_REFUSALS: it does not
# verify, or is stale, replayed or for another id), a minute per client address, each an
# Ed25519 verify (found 2026-12-06, trust36). An honest node's verify: a node whose clock is
# off by over 120 s fails each try, at most ~2 a minute past its backoff (30 s cap at the
# default heartbeat); its successful registrations (every restart) are never counted
WRONG_NODE_SIGNATURES_PER_MIN = 30
WRONG_NODE_SIGNATURES = Limits(rpm=WRONG_NODE_SIGNATURES_PER_MIN)
# past those two counts of an address (a stranger behind the node's NAT or /64 spending
# them: session 38's note), a registration with the key this process already holds for its
# id (a node told to register again: a 404, a registry restart, a failover) is still
# verified: at most ..._PER_ID refused a minute per node id, and ..._TOTAL_PER_MIN tries
# in flight or refused from all addresses a minute per process (CredentialTries.
# before_reregister); a key new here is 429 as before, so new ids stay bounded per address
WRONG_REREGISTRATIONS_PER_ID_PER_MIN = 10
WRONG_REREGISTRATIONS_TOTAL_PER_MIN = 300
# node ids whose key is in neither memory nor the store, a minute per client address
# (heartbeats, goodbyes: node_auth.SignedNodeAuth.check_message); a node that must register
# again hears one 404 each
UNKNOWN_NODE_IDS_PER_MIN = 60
UNKNOWN_NODE_IDS = Limits(rpm=UNKNOWN_NODE_IDS_PER_MIN)
# heartbeats and goodbyes of a node this replica knows whose signature does not hold
# (node_auth.SIGNATURE_REFUSALS), each an Ed25519 verify, for an id anyone can read in
# GET /mesh/nodes (found 2026-12-06, trust36; bounded 2026-12-06, trust37): a minute per
# client address, and from all addresses together per process. Past either, a message is
# still verified when it comes from the address (IPv6: the /64) of its node's last verified
# message or registration here, at most ..._AT_HOME_PER_MIN failing a minute per node id,
# so strangers elsewhere cannot stop a node's heartbeats (CredentialTries.before_verify)
WRONG_BEAT_SIGNATURES_PER_MIN = 30
WRONG_BEAT_SIGNATURES = Limits(rpm=WRONG_BEAT_SIGNATURES_PER_MIN)
WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN = 300
WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN = 30
# the two counts kept per node id (re-registrations, forged beats at home) are not scopes of
# the limiter beside the clients' but its ``per_id`` counts: dropped once their minute has
# passed, at most ratelimit.DEFAULT_MAX_IDS ids counted within a minute each, and never
# pushed out by other clients' scopes (found 2026-12-07, beatrot40)
# (past the id's count, a re-registration carrying its node's beat token has a count of
# its own: ``_REREGISTER_TOKEN``, regtoken40)
_REREGISTER, _BEAT_HOME = "reregister:", "beat-home:"
_REREGISTER_TOKEN = "reregister-token:"


@dataclass(frozen=True)
class AdminKeyStatus:
    key: str | None  # the key this process holds (env or file), if any
    created: bool  # made just now: print it once
    matches_store: bool  # the key held is the store's


async def ensure_admin_key(
    settings: Settings, store: Store, *, env_rotates: bool = True, made: set[str] | None = None
) -> AdminKeyStatus:
    """Make sure the store has an admin key; see the module docstring.

    ``env_rotates=False`` (the admin CLI): ``$LLM_MESH_ADMIN_KEY`` is only checked
    against the store's key, never made the store's key over another one. ``made``: the
    keys this process made and has not announced yet (the registry's start, each of whose
    steps may run again after a lost connection: ``start_retry.py``); a key found there is
    ``created`` still (found 2026-12-06, review37: a key whose first write to the store was
    lost was read from its file at the next try, as made before, and never announced).
    """
    now = datetime.now(timezone.utc)
    if settings.admin_key and env_rotates:
        await store.set_admin_key_hash(hash_secret(settings.admin_key), now, replace=True)
        return AdminKeyStatus(settings.admin_key, created=False, matches_store=True)
    key = read_admin_key(settings)
    created = False
    if key is None and await store.get_admin_key_hash() is None:
        fresh = new_secret("lma")
        if create_secret_file(admin_key_path(settings), (fresh + "\n").encode()):
            key, created = fresh, True
            if made is not None:
                made.add(fresh)
        else:  # another process made the file meanwhile
            key = read_admin_key(settings)
    if key is not None:
        await store.set_admin_key_hash(hash_secret(key), now, replace=False)
    stored = await store.get_admin_key_hash()
    ok = secret_matches(key, stored)
    created = created or (made is not None and key in made)
    if key is not None and not ok:
        log.warning(
            "the admin key held (LLM_MESH_ADMIN_KEY or %s) is not this store's",
            admin_key_path(settings),
        )
    return AdminKeyStatus(key, created=created and ok, matches_store=ok)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


#: the admin key's form as the registry makes it (``new_secret("lma")``: 256 random bits);
#: only a key of this form is let through an address's full count (:func:`check_admin`)
MADE_ADMIN_KEY = re.compile(r"lma_[A-Za-z0-9_-]{43}")


@dataclass
class AdminKeyMemo:
    """The admin key's hash as this process last read it from the store (``None``: never
    read). :func:`check_admin` compares a key against it when the address's count is full,
    without reading the store (docs/security.md, trust36)."""

    hash: str | None = None


class NodeHomes:
    """Where each node's last verified message (a registration, a heartbeat, a goodbye)
    came from here: its address's scope (an IPv6 one's /64), by node id. Past the counts of
    forged heartbeats, :meth:`CredentialTries.before_verify` still verifies a message from
    there (docs/security.md, trust37). Only verified messages write it, one entry a node."""

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[str, str] = {}

    def get(self, node_id: str) -> str | None:
        return self._at.get(node_id)

    def note(self, node_id: str, where: str) -> None:
        self._at[node_id] = where

    def forget(self, node_id: str) -> None:
        self._at.pop(node_id, None)


@dataclass(frozen=True)
class CredentialTries:
    """Where a request's wrong credentials (admin key, operator token) are counted: the
    process's limiter, the client's address (``None``: unknown) and the time now.

    Each check reads the credential's hash from the store, so a stranger's ``Authorization:
    Bearer x`` in a loop cost the store a read each, with no bound, where API keys'
    look-ups were bounded per address (found 2026-12-06, attack35). :meth:`before` refuses
    (429) an address whose wrong tries of that kind filled the minute, before the store is
    read; :meth:`wrong` counts one. Only wrong ones are counted, so a credential's holder
    is never limited (but a registration's, counted while in flight: :meth:`before_taken`,
    past 30 at once from one address); a loopback client (the CLI on the registry's machine) is neither
    counted nor refused, so strangers cannot lock it out. An IPv6 address counts as its /64.
    """

    limiter: RateLimiter
    address: str | None
    now: float
    admin_memo: AdminKeyMemo | None = None  # the process's (Runtime.admin_memo)
    homes: NodeHomes | None = None  # the process's (Runtime.node_homes)
    tokens: BeatTokens | None = None  # the process's (Runtime.beat_tokens)

    def _where(self) -> str:
        return address_scope(self.address) if self.address else "unknown"

    def before(
        self, kind: str, limits: Limits, what: str, total_per_min: int | None = None
    ) -> str | None:
        """The scope to count a wrong ``kind`` in (``None``: not counted); 429 when full, or
        when ``total_per_min`` wrong ones came from all addresses together this minute."""
        if is_loopback(self.address):
            return None
        scope = f"{kind}:" + (address_scope(self.address) if self.address else "unknown")
        wait = self.limiter.wait(scope, limits, self.now)
        where = "from this address"
        if wait <= 0 and total_per_min is not None:
            total = self.limiter.total(f"wrong-{kind}", total_per_min, self.now)
            wait = total.wait(self.now)
            where = "from all addresses this minute"
            if wait <= 0:  # taken as the read starts, given back when right (:meth:`right`):
                total.take(self.now)  # tries sent at once all found it free (review36b)
        if wait > 0:
            raise RateLimited(
                f"too many wrong {what} {where}; wait before trying again",
                retry_after=max(1, math.ceil(wait)),
            )
        return scope

    def wrong(self, scope: str | None, limits: Limits) -> None:
        """Count one wrong credential in ``scope`` (from :meth:`before`; the total of its
        kind, where one is kept, was taken there)."""
        if scope is not None:
            self.limiter.check(scope, limits, self.now)

    def right(self, scope: str | None, total_per_min: int | None) -> None:
        """The credential was right: the total of its kind taken by :meth:`before` given
        back (found 2026-12-06, review36b: taken only once a read found a key wrong, the
        total let every try sent at once read the store)."""
        if scope is not None and total_per_min is not None:
            kind = scope.partition(":")[0]
            self.limiter.total(f"wrong-{kind}", total_per_min, self.now).give(self.now)

    def before_taken(self, kind: str, limits: Limits, what: str) -> str | None:
        """:meth:`before`, one wrong ``kind`` counted now, as the try begins: one that
        awaits between the look and the check (a registration's body, a store read) would
        find the count free however many were sent at once (found 2026-12-07, rot41: 120
        forged registrations in flight from one address, 120 verifies where 30 are the
        bound). :meth:`not_wrong` gives it back when it was not refused for that reason."""
        scope = self.before(kind, limits, what)
        if scope is not None:
            self.limiter.check(scope, limits, self.now)
        return scope

    def not_wrong(self, scope: str | None, limits: Limits) -> None:
        """Give back what :meth:`before_taken` counted: the try was not refused for it."""
        if scope is not None:
            self.limiter.give(scope, limits, self.now)

    def before_reregister(
        self, node_id: str, refused: RateLimited, token: str | None = None
    ) -> str:
        """A registration past this address's counts (``refused``, :meth:`before`'s 429)
        whose key this process already holds for ``node_id`` (``SignedNodeAuth.known_signer``:
        a re-registration): the scope to count it in, or ``refused`` again when the id's
        ``WRONG_REREGISTRATIONS_PER_ID_PER_MIN`` or every id's
        ``WRONG_REREGISTRATIONS_TOTAL_PER_MIN`` are spent this minute. The total is taken
        now (tries sent at once are counted one by one: a registration awaits its body
        before the verify) and given back by :meth:`reregistered` when it verified. The
        id's count is kept apart from the clients' scopes, only while it counts
        (``RateLimiter.per_id``, beatrot40).

        Past those, one carrying its node's beat ``token`` (``X-Mesh-Beat-Token``, what only
        the node was answered) that holds for ``node_id`` is still verified, at most
        ``WRONG_REREGISTRATIONS_PER_ID_PER_MIN`` of those refused a minute per id, a count
        of its own: a stranger with the node's public key spends the id's count, not this
        one (regtoken40). Counted as it starts, given back by :meth:`reregistered` when it
        was not refused, so tries sent at once are counted one by one. The token only
        chooses the count; the signature is verified."""
        total = self.limiter.total(
            "wrong-reregister", WRONG_REREGISTRATIONS_TOTAL_PER_MIN, self.now
        )
        wait = max(self._reregistrations().wait(node_id, self.now), total.wait(self.now))
        if wait <= 0:
            total.take(self.now)
            return f"{_REREGISTER}{node_id}"
        tokens, with_token = self.tokens, self._reregistrations_with_token()
        if (
            tokens is not None
            and tokens.matches(node_id, token)
            and with_token.wait(node_id, self.now) <= 0
        ):
            with_token.count(node_id, self.now)
            return f"{_REREGISTER_TOKEN}{node_id}"
        raise refused

    def _reregistrations(self) -> IdTries:
        return self.limiter.per_id("reregister", WRONG_REREGISTRATIONS_PER_ID_PER_MIN)

    def _reregistrations_with_token(self) -> IdTries:
        return self.limiter.per_id("reregister-token", WRONG_REREGISTRATIONS_PER_ID_PER_MIN)

    def _at_home(self) -> IdTries:
        return self.limiter.per_id("beat-home", WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN)

    def reregistered(self, scope: str | None, refused: bool) -> None:
        """The end of a registration :meth:`before_reregister` let through: ``refused`` for
        its signature or operator token (counted for its id; the total stays taken), else
        the total given back (a node registered, or refused for something else); one let
        through by its beat token: its count given back unless ``refused``."""
        if scope is None:
            return
        if scope.startswith(_REREGISTER_TOKEN):  # its own count, taken as it began
            if not refused:
                self._reregistrations_with_token().give(
                    scope.removeprefix(_REREGISTER_TOKEN), self.now
                )
            return
        if refused:
            self._reregistrations().count(scope.removeprefix(_REREGISTER), self.now)
            return
        total = self.limiter.total(
            "wrong-reregister", WRONG_REREGISTRATIONS_TOTAL_PER_MIN, self.now
        )
        total.give(self.now)

    def before_verify(self, node_id: str, token: str | None = None) -> str | None:
        """Before a known node's heartbeat or goodbye is verified: the scope to count it in
        should it fail (``None``: not counted), or a refusal with nothing verified (found
        2026-12-06, trust36: a forged signature for a public id cost a verify each, without
        bound). Within this address's ``WRONG_BEAT_SIGNATURES_PER_MIN`` and every address's
        ``WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN`` failures this minute it is verified; past
        either, only from the address the node's last verified message came from
        (:class:`NodeHomes`), at most ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing
        there a minute per node id (then 429); from elsewhere it is 404 ``unknown_node``,
        which makes an honest node register again from where it is (review38). Past them a
        message carrying its node's beat ``token`` (``X-Mesh-Beat-Token``) uses the id's
        allowance from anywhere, and once the node has sent one here, a message without it
        is 404 from its home too, its allowance untouched (beattoken38,
        ``registry/beat_tokens.py``). Looks and counts (:meth:`failed_verify`) without an
        await between them on a known key, so messages sent at once are counted one by one."""
        if _loopback(self.address):
            return None
        where = self._where()
        scope = f"beat-signature:{where}"
        wait = self.limiter.wait(scope, WRONG_BEAT_SIGNATURES, self.now)
        if wait <= 0:
            total = self.limiter.total(
                "wrong-beat-signature", WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN, self.now
            )
            wait = total.wait(self.now)
        if wait <= 0:
            return scope
        tokens = self.tokens
        if tokens is not None and tokens.matches(node_id, token):
            pass  # its own: the id's allowance, wherever it comes from (beattoken38)
        elif tokens is not None and tokens.sends(node_id):
            # it sends tokens, this one has none (or a wrong or old one): a stranger, at
            # the node's own address too, spends nothing of the node's allowance
            raise UnknownNode(
                f"node {node_id!r}: too many heartbeats or goodbyes for it whose signature "
                "does not hold, and this one does not carry its beat token; register again",
                param="node_id",
            )
        elif self.homes is None or self.homes.get(node_id) != where:
            # not from its home here (none known: a restarted or other replica or worker;
            # or the node's address changed): "register again", which is verified per
            # address and makes this its home. A 429 left the node waiting, its beats
            # refused for as long as the forgeries went on (found 2026-12-06, review38)
            raise UnknownNode(
                f"node {node_id!r}: too many heartbeats or goodbyes for it whose signature "
                "does not hold, and this one is not from the address it last registered or "
                "beat from here; register again",
                param="node_id",
            )
        at_home = self._at_home().wait(node_id, self.now)  # kept apart (beatrot40)
        if at_home <= 0:
            return f"{_BEAT_HOME}{node_id}"
        raise RateLimited(
            "too many heartbeats or goodbyes whose signature does not hold; wait before "
            "trying again",
            retry_after=max(1, math.ceil(min(wait, at_home))),
        )

    def failed_verify(self, scope: str | None) -> None:
        """Count one message that :meth:`before_verify` let be verified and that failed."""
        if scope is None:
            return
        if scope.startswith(_BEAT_HOME):
            self._at_home().count(scope.removeprefix(_BEAT_HOME), self.now)
            return
        self.limiter.check(scope, WRONG_BEAT_SIGNATURES, self.now)
        self.limiter.total(
            "wrong-beat-signature", WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN, self.now
        ).take(self.now)

    def verified(self, node_id: str, token: str | None = None) -> None:
        """``node_id``'s message from this address verified: its home from now on; one
        carrying its beat ``token`` marks it as sending tokens before any flood (its next
        token is issued with the answer: ``BeatTokens.issue``)."""
        if self.homes is not None and not _loopback(self.address):
            self.homes.note(node_id, self._where())
        if self.tokens is not None and token:
            self.tokens.matches(node_id, token)


_ADMIN_TRIES = ("admin-key", WRONG_ADMIN_KEYS, "admin keys", WRONG_ADMIN_KEYS_TOTAL_PER_MIN)


async def check_admin(
    headers: Mapping[str, str], store: Store, tries: CredentialTries | None = None
) -> None:
    """Raise 401 unless the request carries the store's admin key; with ``tries`` (every
    HTTP route) at most :data:`WRONG_ADMIN_KEYS_PER_MIN` wrong ones a minute from an
    address (and :data:`WRONG_ADMIN_KEYS_TOTAL_PER_MIN` from all together), then 429 before
    the store is read (:class:`CredentialTries`).

    Past either count the right key still passes, if it is of the registry's own form
    (:data:`MADE_ADMIN_KEY`) and is the hash this process last read (``tries.admin_memo``),
    confirmed by one read: a stranger behind the admin's NAT or /64 spending the address's
    tries locked the admin out for up to a minute (found 2026-12-06, trust36). Any other
    key gets the 429 with no store read; docs/security.md argues why a guesser learns
    nothing it could use."""
    token = bearer(headers)
    if token is None:
        raise InvalidCredential(
            "this is an admin operation: send the admin key as 'Authorization: Bearer <key>' "
            "(LLM_MESH_ADMIN_KEY, or the registry's $LLM_MESH_HOME/admin.key)"
        )
    memo = None if tries is None else tries.admin_memo
    try:
        scope = None if tries is None else tries.before(*_ADMIN_TRIES)
    except RateLimited:
        if memo is None or not MADE_ADMIN_KEY.fullmatch(token):
            raise
        if not secret_matches(token, memo.hash):  # constant time; no store read
            raise
        memo.hash = await store.get_admin_key_hash()  # rotated since? then 429 too
        if not secret_matches(token, memo.hash):
            raise
        return
    stored = await store.get_admin_key_hash()
    if memo is not None:
        memo.hash = stored
    if not secret_matches(token, stored):
        if tries is not None:
            tries.wrong(scope, WRONG_ADMIN_KEYS)
        raise InvalidCredential("wrong admin key")
    if tries is not None:
        tries.right(scope, WRONG_ADMIN_KEYS_TOTAL_PER_MIN)


async def add_operator(store: Store, name: str, *, replace: bool = False) -> str | None:
    """A new operator with a fresh token (only its hash is stored); the token, to show once,
    or ``None`` when the name is taken (``replace``: give it a new token instead)."""
    token = new_secret("lmo")
    added = await store.add_operator(
        name, hash_secret(token), datetime.now(timezone.utc), replace=replace
    )
    return token if added else None
