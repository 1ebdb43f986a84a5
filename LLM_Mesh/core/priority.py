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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "KEYED",
    "MAX_ORDINARY_WAIT_S",
    "MAX_PASSED_OVER",
    "PRIORITY_FIELD",
    "Waiter",
    "is_keyed",
    "keyed_body",
    "keyed_raw",
    "next_waiter",
    "pass_over",
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
    if head is None or json.detect_encoding(raw) != "utf-8":
        return json.dumps(keyed_body(body), separators=(",", ":"), ensure_ascii=False).encode()
    at = head.end()
    comma = b"" if raw[at : at + 1] == b"}" else b","
    return raw[:at] + _MEMBER + comma + raw[at:]
