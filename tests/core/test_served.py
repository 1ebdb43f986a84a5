"""A node's served record (``core/served.py``): its line, and the ledger key it finds its
entries by, for a request id the gateway made and for one the client chose (``c-…~suffix``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.served import Served, ledger_key, ledger_suffix, parse_line, record_keys

RID = "req-0123456789abcdef0123456789abcdef"


def _served(**kw: object) -> Served:
    base: dict[str, object] = {
        "time_ms": 1_700_000_000_000, "node": "n1", "request_id": RID, "model": "m",
        "prompt_tokens": 12, "completion_tokens": 7, "outcome": "ok",
    }  # fmt: skip
    base.update(kw)
    return Served(**base)  # type: ignore[arg-type]


def test_a_record_reads_back_from_its_line() -> None:
    r = _served(gateway="g", gateway_ms=5, auth="signature", signature="c2ln", body_sha256="ab")
    assert parse_line(r.to_line()) == r
    assert "\n" not in r.to_line()


@pytest.mark.parametrize(
    "line",
    ["", "[]", "{not json", '{"v": 2}', '{"v": 1, "time_ms": 1}', "x" * 5000,
     _served().to_line().replace('"ok"', '"paid"'),
     _served().to_line().replace('"prompt_tokens":12', '"prompt_tokens":-1'),
     _served().to_line().replace('"prompt_tokens":12', '"prompt_tokens":"12"')],
)  # fmt: skip
def test_what_is_not_a_record_is_refused_with_a_reason(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


def test_the_ledger_key_of_a_gateway_made_id_is_the_id() -> None:
    assert ledger_key(RID) == RID
    assert RID in record_keys(RID)


def test_a_client_chosen_ids_settlement_key_is_found_by_the_nodes_id() -> None:
    # what registry/parse.settle_key_for writes: c- + 24 hex ~ suffix . tag (.s tag scoped)
    suffix = ledger_suffix(RID)
    assert suffix == RID[4:20]
    for key in (f"c-{'a' * 24}~{suffix}.0badc0de", f"c-{'b' * 24}~{suffix}.s1234abcd"):
        assert ledger_key(key) in record_keys(RID)
    other = ledger_suffix("req-" + "f" * 32)
    assert ledger_key(f"c-{'a' * 24}~{other}.0badc0de") not in record_keys(RID)
    assert ledger_key("pool-budget-2026-12-05") == "pool-budget-2026-12-05"


def test_only_a_gateway_made_id_has_a_suffix() -> None:
    with pytest.raises(ValueError):
        ledger_suffix("alice-session-42")
    assert record_keys("alice-session-42") == ("alice-session-42",)
