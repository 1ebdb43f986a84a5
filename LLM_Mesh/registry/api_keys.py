"""Clients' API keys: made by the admin CLI, looked up by the gateway through a cache.

A key is ``lmk_`` + 264 random bits (44 URL-safe characters; one made before 2026-12-05
has 256, 43); the store keeps its SHA-256 (:func:`~LLM_Mesh.core.identity.hash_secret`),
an id (``key_`` + 12 hex digits, what ``keys list`` shows and ``keys revoke`` takes, as
does the name: a hash of the key, ``core/key_account.derived_key_id``, so that its holder
computes the key's ledger account; an older key's id is random and stays; an id already
taken is drawn again with a fresh key), its limits (``rpm``, ``tpm``), ``avoid_regions``
and strict region mode.

:class:`KeyCache` is the gateway's view: a request's key is hashed and looked up in
memory; a miss asks the store once (then ``ttl_s``, 5 min, for a key found;
``negative_ttl_s``, 2 s, for one not found, so a key made by the CLI works within
2 s). At most ``max_entries`` keys are kept, least recently used out. Revocations made
anywhere (the CLI, another registry on the same database) reach it by
:meth:`KeyCache.poll`, every ``interval_s`` (1 s) in the lifespan: keys revoked since
the last poll (with ``overlap_s`` of slack for writers' clocks) are marked revoked in
the cache, so the next request with them is 401 in every process within about a second.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.core.key_account import derived_key_id
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import ApiKeyRecord, Store

__all__ = ["KEY_PREFIX", "KeyCache", "NoFreeKeyId", "create_api_key", "parse_regions"]

log = logging.getLogger(__name__)

KEY_PREFIX = "lmk"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ID_TRIES = 8  # keys drawn before giving up on an id of its own (one clash: ~n / 2^48)


class NoFreeKeyId(MeshError):
    """:func:`create_api_key` drew :data:`_ID_TRIES` keys whose ids were all taken (found
    2026-12-05, review29: a RuntimeError traceback at ``keys create``); a ``MeshError``, so
    the CLI says it in one line."""

    status = 503
    type = "service_unavailable"
    code = "no_free_key_id"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_regions(text: str | Iterable[str] | None) -> list[str]:
    """``"eu, us"`` or ``["eu", "us"]`` → ``["eu", "us"]`` (sorted, no blanks, no repeats)."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return sorted({p.strip() for p in parts if p.strip()})


async def create_api_key(
    store: Store,
    *,
    name: str | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    avoid_regions: Iterable[str] = (),
    strict_regions: bool = False,
    trusted_only: bool = False,
    allow_prompt_keeping: bool = False,
) -> tuple[str, ApiKeyRecord] | None:
    """A new key: ``(the key, to show once, its record)``; ``None`` when the name is taken."""
    for label, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 1:
            raise ValueError(f"--{label} must be at least 1")
    if name is not None and not 1 <= len(name) <= 128:
        raise ValueError("a key name is 1 to 128 characters")
    regions = parse_regions(avoid_regions)
    for _ in range(_ID_TRIES):
        key = f"{KEY_PREFIX}_{secrets.token_urlsafe(33)}"  # the derived form: its id from it
        key_id = derived_key_id(key)
        if key_id is None:  # token_urlsafe(33) is always 44 characters: the derived form
            raise RuntimeError(f"a new key of {len(key)} characters is not of the derived form")
        rec = ApiKeyRecord(
            key_id=key_id,
            key_hash=hash_secret(key),
            created_at=_utcnow(),
            name=name,
            rpm=rpm,
            tpm=tpm,
            avoid_regions=regions,
            strict_regions=strict_regions,
            trusted_only=trusted_only,
            allow_prompt_keeping=allow_prompt_keeping,
        )
        if await store.add_api_key(rec):
            return key, rec
        # refused: the name taken, or the id (48 bits of a hash of the key) another key's
        # (found 2026-12-05: "a key named ... exists" for a name no key had); a fresh key
        if name is not None and any(k.name == name for k in await store.list_api_keys()):
            return None
    raise NoFreeKeyId(
        f"no key was made: each of {_ID_TRIES} keys drawn had an id another key has "
        "(a clash is a ~n / 2^48 chance per key; this many in a row suggests a broken random "
        "source or a store that refuses every new key); try again"
    )


class KeyCache(Poller):
    """The gateway's key lookups (see the module docstring); one per process."""

    task_name = "llm-mesh-key-revocations"

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        *,
        ttl_s: float = 300.0,
        negative_ttl_s: float = 2.0,
        max_entries: int = 10_000,
        interval_s: float = 1.0,
        overlap_s: float = 300.0,
        wall_now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.interval_s = interval_s
        self.overlap = timedelta(seconds=overlap_s)
        self._now = wall_now
        self._since = _EPOCH
        self._entries: OrderedDict[str, tuple[ApiKeyRecord | None, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key: str) -> tuple[bool, ApiKeyRecord | None]:
        """``(hit, record)`` from memory only: no store query."""
        h = hash_secret(key)
        entry = self._entries.get(h)
        if entry is None or entry[1] <= self.clock():
            return False, None
        self._entries.move_to_end(h)
        return True, entry[0]

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        """The key's record (revoked ones too), or ``None`` for a key the store does not know."""
        hit, rec = self.cached(key)
        if hit:
            return rec
        h = hash_secret(key)
        rec = await self.store.api_key_by_hash(h)
        ttl = self.ttl_s if rec is not None else self.negative_ttl_s
        self._entries[h] = (rec, self.clock() + ttl)
        self._entries.move_to_end(h)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return rec

    def revoke(self, key_ids: Iterable[str], at: datetime) -> list[str]:
        """Mark cached keys revoked; the ids that were cached and live."""
        ids = set(key_ids)
        out: list[str] = []
        if not ids:
            return out
        for h, (rec, expires) in list(self._entries.items()):
            if rec is not None and rec.key_id in ids and rec.revoked_at is None:
                self._entries[h] = (replace(rec, revoked_at=at), expires)
                out.append(rec.key_id)
        return out

    async def poll(self) -> list[str]:
        """Take in keys revoked since the last poll; the cached ids marked revoked now."""
        started = self._now()
        revoked = await self.store.revoked_api_keys_since(self._since)
        self._since = started - self.overlap
        out = self.revoke(revoked, started)
        for key_id in out:
            log.warning("API key %s is revoked", key_id)
        return out
