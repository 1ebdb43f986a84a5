"""The request ids probes carry as their clients' own (core/probe_ids.py)."""

from __future__ import annotations

import os
import random
import re
import uuid
from collections import Counter

import pytest
from starlette.datastructures import Headers

from LLM_Mesh.core.probe_ids import FORMS, client_like_id
from LLM_Mesh.registry.parse import client_id

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def form_of(value: str) -> str:
    if UUID4.fullmatch(value):
        return "uuid4"
    if re.fullmatch(r"req-[0-9a-f]{32}", value):
        return "req-hex"
    assert re.fullmatch(r"[0-9a-f]{32}", value), value
    assert uuid.UUID(hex=value).version == 4
    return "hex"


def test_the_forms_add_up_and_a_uuid4_is_the_commonest() -> None:
    assert abs(sum(share for *_, share in FORMS) - 1.0) < 1e-9
    by_form = Counter[str]()
    for _, form, share in FORMS:
        by_form[form] += share
    assert by_form.most_common(1)[0][0] == "uuid4"


def test_ids_are_drawn_in_the_forms_shares_and_the_gateway_takes_them() -> None:
    rng = random.Random(5)
    n = 20_000
    seen = Counter[tuple[str, str]]()
    for _ in range(n):
        header, value = client_like_id(rng.random(), os.urandom(16))
        seen[header, form_of(value)] += 1
        assert client_id(Headers({header: value})) == value  # usable as a client's id
    for header, form, share in FORMS:
        assert abs(seen[header, form] / n - share) < 0.015, (header, form)


def test_the_bits_are_the_random_bytes_given() -> None:
    a = client_like_id(0.0, bytes(range(16)))[1]
    b = client_like_id(0.0, bytes(range(1, 17)))[1]
    assert a != b and UUID4.fullmatch(a) and UUID4.fullmatch(b)
    with pytest.raises(ValueError, match=r"^a client-like id needs 16 random bytes$"):
        client_like_id(0.0, b"short")


def test_a_draw_on_a_share_boundary_takes_the_next_form() -> None:
    """The forms take ``[0, 0.55)``, ``[0.55, 0.75)``, ...: a draw of exactly 0.55 is the
    second form's."""
    bits = bytes(range(16))
    assert client_like_id(0.0, bits)[0] == "X-Request-Id"
    header, value = client_like_id(0.55, bits)
    assert header == "Idempotency-Key" and form_of(value) == "uuid4"
    assert client_like_id(0.9999999, bits) == ("X-Request-Id", uuid.UUID(bytes=bits, version=4).hex)
