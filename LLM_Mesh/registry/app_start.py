"""The app's start: its first replica beat and its witness pusher (``app.py``'s lifespan).

The start's steps on the store run through :class:`~LLM_Mesh.registry.start_retry.StartRetry`
(each again while PostgreSQL is away).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.witness import parse_vkey
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.replicas import ReplicaBeat
from LLM_Mesh.registry.witness_push import WitnessPusher, make_witness_client

__all__ = ["first_beat", "witness_pusher"]

log = logging.getLogger("LLM_Mesh.registry.app")  # its lines as before the split


async def first_beat(beat: ReplicaBeat) -> None:
    """Beat once before serving (other replicas see this one at once); a store that fails
    now is retried by the beat's loop."""
    try:
        await beat.poll()
    except Exception:
        log.exception("replica beat failed at start; retrying in the background")


def witness_pusher(
    settings: Settings,
    ledger: SqlLedger,
    client: httpx.AsyncClient | None,
    wall_clock: Callable[[], float],
    clock: Callable[[], float],
) -> WitnessPusher | None:
    """The checkpoints' pusher to ``settings.ledger_witness_urls`` (none: ``None``)."""
    if not settings.ledger_witness_urls:
        return None
    return WitnessPusher(
        ledger, settings.ledger_witness_urls,
        [parse_vkey(t) for t in settings.ledger_witnesses],
        client if client is not None else make_witness_client(),
        interval_s=settings.ledger_checkpoint_interval_s, wall_clock=wall_clock, clock=clock,
    )  # fmt: skip
