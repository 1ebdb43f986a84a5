"""The request id a canary probe carries as its client's own, drawn as clients draw theirs.

A client may name its request (``X-Request-Id`` or ``Idempotency-Key``); the public
ledger's key of such a request is ``c-`` + its hash (``registry/parse.settle_key_for``),
of any other the ``req-`` id its node got. A probe names itself as often as the model's
anonymous requests do (``core/priority_mix.py``), with an id of a form clients send:

- a uuid4 in its usual form (``str(uuid.uuid4())``: what most programs send);
- ``req-`` + a uuid4's 32 hex digits, in ``X-Request-Id`` (this project's own client,
  ``LLM_Mesh/client.py``, with several gateways);
- a uuid4's 32 hex digits (``uuid.uuid4().hex``).

Only the gateway ever sees the id itself (the node gets a fresh ``req-`` id, the ledger
and the request log its hash), so the forms keep the gateway's own view alike too.
Pure: the caller passes a draw and 16 random bytes (``os.urandom``: the id is no seeded
generator's output).
"""

from __future__ import annotations

import uuid

__all__ = ["FORMS", "client_like_id"]

#: (header, form, share): the shares add up to 1
FORMS: tuple[tuple[str, str, float], ...] = (
    ("X-Request-Id", "uuid4", 0.55),
    ("Idempotency-Key", "uuid4", 0.2),
    ("X-Request-Id", "req-hex", 0.15),
    ("X-Request-Id", "hex", 0.1),
)


def client_like_id(draw: float, random16: bytes) -> tuple[str, str]:
    """The header and the id a probe names itself with: the form where ``draw`` (uniform in
    [0, 1)) falls among :data:`FORMS`, its bits from ``random16`` (16 random bytes)."""
    if len(random16) != 16:
        raise ValueError("a client-like id needs 16 random bytes")
    u = uuid.UUID(bytes=random16, version=4)
    header, form = FORMS[-1][:2]
    acc = 0.0
    for name, kind, share in FORMS:
        acc += share
        if draw < acc:
            header, form = name, kind
            break
    if form == "uuid4":
        return header, str(u)
    if form == "req-hex":
        return header, "req-" + u.hex
    return header, u.hex
