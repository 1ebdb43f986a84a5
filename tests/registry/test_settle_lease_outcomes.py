"""A spend's outcomes, made once (``settle_lease._SPENT``), are the values they stand for;
an answer's total, summed once (``Answer.total``), leaves the answer's equality and hash
to its fields."""

from __future__ import annotations

import pytest

from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_lease import Spend, Spent


@pytest.mark.parametrize("ok", [True, False, 1, 0])
@pytest.mark.parametrize("lease", [1, 0, None])
def test_a_pg_spend_result_is_its_row(ok: object, lease: object) -> None:
    got = Spend.pg_result({"ok": ok, "lease": lease})
    assert got == Spent(bool(ok), lease == 1)
    assert (got.recorded, got.from_lease) == (bool(ok), lease == 1)


def test_an_answers_total_is_its_parts_and_not_a_field() -> None:
    parts = (PaidPart("n1", "op:a", 5, 1), PaidPart("n2", None, 7, 0))
    a = Answer("k", "u", "m", 20, parts, "h")
    assert a.total == 12 == a.total
    b = Answer("k", "u", "m", 20, parts, "h")
    assert a == b and hash(a) == hash(b)  # b's total not read yet: still equal
    assert {a: 1}[b] == 1
