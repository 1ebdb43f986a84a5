"""Which request waiting in a node's admission queue gets the next slot: keyed ones first.

The gateway tells a node which requests come with an API key (paying) by the body field
:data:`PRIORITY_FIELD` (``"mesh_priority": "keyed"``), inside what the gateway's MAC or
signature covers (the body's SHA-256: ``core/gateway_auth.py``); a request without it,
or with any other value, is of the ordinary class, as every request of an older gateway
is, and a node reads it only from a request the gateway authenticated
(``node/app.py``): a client cannot claim it (the gateway refuses the field in a
client's body, ``registry/parse.py``; a node refuses a request the gateway did not
authenticate). An older node ignores the field (the request models tolerate unknown
fields) and serves first come, first served, as before.

The order (:func:`next_waiter`): keyed waiters before ordinary ones, first come first
served within a class; but the oldest ordinary waiter goes next once keyed waiters
have overtaken it :data:`MAX_PASSED_OVER` times or it has waited
:data:`MAX_ORDINARY_WAIT_S`, so a stream of keyed requests never starves the others:
under contention keyed requests get at least ``MAX_PASSED_OVER`` of every
``MAX_PASSED_OVER + 1`` slots that free, ordinary ones at least one. With no keyed
waiter, or only ordinary ones ahead of none, the order is first come first served,
exactly as before. Pure: the caller keeps the line and the clock.

Places kept for keyed requests (:func:`admits`): order alone did not help a keyed request
that found the line full: an anonymous flood filling a node's ``max_queue`` places made it
429 like any other, and on every node so flooded (found 2026-12-05, review29). So
:func:`kept_places` of the line (:data:`KEYED_KEPT_SHARE` of ``max_queue``, rounded
down, at least 1 when ``max_queue`` is 2 or more; 2 of the default 8) are kept from
ordinary requests: one that finds ordinary waiters holding all the others is refused
(429, ``Retry-After`` as for a full line); a keyed request takes any free place, and an
ordinary one any while ordinary waiters hold fewer (so keyed ones filling the line do not
shut ordinary ones out). The gateway's router applies the same rule
(``core/route_pools.py``). Kept only while the node has had a keyed request
in the last :data:`KEYED_SEEN_S` (:func:`keeps_places`): a node behind an older gateway
(which never sends the field), or on a network where no one uses a key, never sees one and
lends the whole line to everyone, exactly as before; the first keyed request of a flood
may still find the line full, the next ones find the kept places as ordinary waiters leave.
A node says in each heartbeat how long ago its last keyed request came
(:func:`keyed_age_s`, ``Heartbeat.keyed_age_s``), so every gateway replica counts its kept
places, not only the one that sent the keyed request (:func:`reported_keyed_at`;
``registry/node_sync.py`` carries it to the replicas the node does not heartbeat to).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from LLM_Mesh.core import strict_json

__all__ = [
    "KEYED",
    "KEYED_KEPT_SHARE",
    "KEYED_SEEN_S",
    "MAX_ORDINARY_WAIT_S",
    "MAX_PASSED_OVER",
    "PRIORITY_FIELD",
    "Waiter",
    "admits",
    "is_keyed",
    "keeps_places",
    "kept_places",
    "keyed_age_s",
    "keyed_body",
    "keyed_raw",
    "next_waiter",
    "pass_over",
    "reported_keyed_at",
]

#: the body field the gateway sets for a keyed request (its value :data:`KEYED`)
PRIORITY_FIELD = "mesh_priority"
KEYED = "keyed"

#: an ordinary waiter overtaken by this many keyed ones goes next (module docstring)
MAX_PASSED_OVER = 4
#: ... or once it has waited this long (seconds): a node whose requests take long (a big
#: model, long answers) still serves an ordinary waiter within about this much more than
#: first come, first served would
MAX_ORDINARY_WAIT_S = 30.0
#: the share of a node's ``max_queue`` waiting places kept for keyed requests (the last
#: ones: :func:`kept_places`)
KEYED_KEPT_SHARE = 0.25
#: places are kept while the node's last keyed request came less than this long ago
#: (seconds; :func:`keeps_places`)
KEYED_SEEN_S = 600.0


def kept_places(max_queue: int, share: float = KEYED_KEPT_SHARE) -> int:
    """How many of ``max_queue`` waiting places only keyed requests may take: ``share`` of
    them rounded down, at least 1 when ``max_queue`` is 2 or more, never all (none of a
    line of 0 or 1: an ordinary request could never wait)."""
    if max_queue < 2:
        return 0
    return min(max_queue - 1, max(1, int(max_queue * share)))


def keeps_places(last_keyed: float | None, now: float, window_s: float = KEYED_SEEN_S) -> bool:
    """Whether a node whose last keyed request came at ``last_keyed`` (its clock; ``None``:
    never) keeps places for keyed requests now."""
    return last_keyed is not None and now - last_keyed < window_s


def keyed_age_s(
    last_keyed: float | None, now: float, window_s: float = KEYED_SEEN_S
) -> float | None:
    """What a node says in its heartbeat (``Heartbeat.keyed_age_s``): the seconds since its
    last keyed request while it keeps places for keyed ones (:func:`keeps_places`), else
    ``None``."""
    if last_keyed is None or not keeps_places(last_keyed, now, window_s):
        return None
    return round(max(0.0, now - last_keyed), 3)


def reported_keyed_at(
    age_s: float | None, at: float, window_s: float = KEYED_SEEN_S
) -> float | None:
    """When a node's last keyed request came, on the reader's clock, from the age its
    heartbeat reported at ``at``: ``None`` for none, or for an age past the window (it
    keeps no places) or below 0."""
    if age_s is None or not 0.0 <= age_s < window_s:
        return None
    return at - age_s


def admits(queued: int, ordinary: int, max_queue: int, *, keyed: bool, keep: bool) -> bool:
    """Whether a request that finds ``queued`` waiters, ``ordinary`` of them not keyed, may
    join the line: a keyed one while any of the ``max_queue`` places is free, an ordinary
    one only while ordinary waiters hold fewer than ``max_queue`` less the places kept
    (:func:`kept_places`, when ``keep``). Kept from ordinary requests, not for keyed ones
    alone: a line full of keyed waiters still takes an ordinary request into the next
    place that frees (the bound of :func:`next_waiter` then serves it)."""
    if queued >= max_queue:
        return False
    if keyed or not keep:
        return True
    return ordinary < max_queue - kept_places(max_queue)


def is_keyed(value: object) -> bool:
    """Whether :data:`PRIORITY_FIELD`'s value puts a request in the keyed class (exactly
    :data:`KEYED`; anything else, a missing field included, is ordinary)."""
    return value == KEYED


class Waiter:
    """One request in line: its class, when it joined (the caller's clock), and how many
    keyed waiters were served before it although they came after it."""

    __slots__ = ("keyed", "passed", "since")

    def __init__(self, keyed: bool, since: float) -> None:
        self.keyed = keyed
        self.since = since
        self.passed = 0


def next_waiter(
    waiters: Sequence[Waiter],
    now: float,
    *,
    max_passed: int = MAX_PASSED_OVER,
    max_wait_s: float = MAX_ORDINARY_WAIT_S,
) -> int:
    """The index in ``waiters`` (in the order they came; not empty) of the one the next
    free slot goes to: the first keyed one, unless the first ordinary one came before it
    and is due (passed over ``max_passed`` times, or waiting ``max_wait_s``); with no
    keyed waiter, the first."""
    first_ordinary = -1
    first_keyed = -1
    for i, w in enumerate(waiters):
        if w.keyed:
            first_keyed = i
            break
        if first_ordinary < 0:
            first_ordinary = i
    if first_keyed < 0:
        return 0
    if first_ordinary < 0:  # every waiter before the keyed one is keyed: none
        return first_keyed
    old = waiters[first_ordinary]
    if old.passed >= max_passed or now - old.since >= max_wait_s:
        return first_ordinary
    return first_keyed


def pass_over(waiters: Sequence[Waiter], chosen: int) -> None:
    """Count that the waiter at ``chosen`` was served before the ordinary ones ahead of it."""
    for w in waiters[:chosen]:
        if not w.keyed:
            w.passed += 1


_OPEN = re.compile(rb"[ \t\n\r]*\{[ \t\n\r]*")
_MEMBER = b'"' + PRIORITY_FIELD.encode() + b'":"' + KEYED.encode() + b'"'


def keyed_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request body the gateway builds (a stream's, a continuation's) with the
    keyed class, first."""
    return {PRIORITY_FIELD: KEYED, **body}


def keyed_raw(raw: bytes, body: Mapping[str, Any]) -> bytes:
    """The bytes a keyed request is forwarded as: ``raw`` (the client's JSON object, as
    forwarded) with the keyed member spliced in first, the rest byte for byte; a body not
    in plain UTF-8 (UTF-16 or -32, a byte-order mark) is written again from ``body``."""
    head = _OPEN.match(raw)
    if head is None or strict_json.encoding(raw) != "utf-8":
        return json.dumps(keyed_body(body), separators=(",", ":"), ensure_ascii=False).encode()
    at = head.end()
    comma = b"" if raw[at : at + 1] == b"}" else b","
    return raw[:at] + _MEMBER + comma + raw[at:]
