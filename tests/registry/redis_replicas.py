"""Gateway replicas of one registry sharing Redis, for the tests of what replicas count
together (``registry/redis_inflight.py``, ``redis_limits.py``, ``redis_shown.py``): each
a running app (``helpers.running``) on one store, one set of fake nodes and one
``registry.key`` (so one set of Redis names), entered on the test's ``AsyncExitStack``.
What Redis is given to answer is :mod:`tests.registry.redis_patience`'s, asked by the test
itself; nothing here changes it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from tests.registry.helpers import FakeNodes, Harness, running
from tests.registry.redis_keys import own_prefixes, swept

__all__ = ["prefixed", "replicas_sharing_redis"]


def prefixed(prefix: str, *hs: Harness) -> list[SharedInFlight]:
    """The replicas' shared counts (and what the nodes showed, ``redis_shown.py``) under
    this test's own prefix (Redis is shared); each replica's anonymous share, in order."""
    shares = []
    for h in hs:
        share, in_flight = h.runtime.shared_share, h.runtime.shared_in_flight
        assert share is not None and in_flight is not None
        share.prefix, in_flight.prefix = prefix + "share:", prefix + "if:"
        if h.runtime.shared_shown is not None:
            h.runtime.shared_shown.prefix = prefix + "shown:"
        shares.append(share)
    return shares


async def replicas_sharing_redis(
    stack: AsyncExitStack,
    tmp_path: Path,
    redis_url: str,
    nodes: FakeNodes,
    *,
    names: Sequence[str] = ("a", "b"),
    prefix: str | None = None,
    gateway_key: Ed25519PrivateKey | None = None,
    **settings: Any,
) -> list[Harness]:
    """One replica per name (its home ``tmp_path / name``), sharing a ``MemoryStore``,
    ``nodes``, ``gateway_key`` (a new one when None) and Redis at ``redis_url``;
    ``anonymous_rpm`` 600 unless ``settings`` say otherwise. ``prefix``: their shared
    counts under ``prefix`` and a new uuid (:func:`prefixed`); None: the product's. The keys
    under the prefixes the test gave them are swept once they stopped (``redis_keys``)."""
    store, key = MemoryStore(), gateway_key or Ed25519PrivateKey.generate()
    settings.setdefault("anonymous_rpm", 600)
    hs: list[Harness] = []
    # once every replica has stopped (the stack's last exit): the keys under the prefixes
    # the test gave them (here or with :func:`prefixed` later) deleted (hygiene44)
    stack.push_async_callback(_swept, redis_url, hs)
    hs += [
        await stack.enter_async_context(
            running(
                tmp_path / n,
                store=store,
                nodes=nodes,
                redis_url=redis_url,
                gateway_key=key,
                **settings,
            )
        )
        for n in names
    ]
    if prefix is not None:
        prefixed(f"{prefix}:{uuid.uuid4().hex}:", *hs)
    return hs


async def _swept(redis_url: str, hs: list[Harness]) -> None:
    prefixes = own_prefixes(h.runtime for h in hs)
    if prefixes:
        await swept(redis_url, *prefixes)
