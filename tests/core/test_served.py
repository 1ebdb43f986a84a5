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


def test_a_streamed_continued_record_and_a_minimal_line_read_back() -> None:
    r = _served(stream=True, continued=True)
    assert parse_line(r.to_line()) == r
    minimal = (
        '{"v":1,"time_ms":5,"node":"n1","request_id":"r1","model":"m","prompt_tokens":0,'
        '"completion_tokens":0,"outcome":"error","gateway":null,"auth":null}'
    )
    got = parse_line(minimal)
    assert got == Served(5, "n1", "r1", "m", 0, 0, "error")
    assert (got.stream, got.continued, got.gateway, got.auth, got.signature) == (
        False, False, "", "", "",
    )  # fmt: skip
    assert got.body_sha256 == "" and got.gateway_ms is None


def test_the_line_layout() -> None:
    line = _served(gateway="g", gateway_ms=5).to_line()
    assert line == (
        '{"v":1,"time_ms":1700000000000,"node":"n1","request_id":"' + RID + '","model":"m",'
        '"prompt_tokens":12,"completion_tokens":7,"outcome":"ok","stream":false,'
        '"continued":false,"gateway":"g","gateway_ms":5,"auth":"","signature":"",'
        '"body_sha256":""}'
    )


def test_a_line_of_exactly_max_line_is_read_one_more_is_not() -> None:
    from LLM_Mesh.core.served import MAX_LINE

    line = _served().to_line()
    padded = line[:-1] + " " * (MAX_LINE - len(line)) + "}"
    assert len(padded) == MAX_LINE and parse_line(padded) == _served()
    with pytest.raises(ValueError, match=r"^longer than a record$"):
        parse_line(padded[:-1] + " }")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 2}', "not a version-1 record"),
        ('{"v": 1, "time_ms": 1}', "no 'node'"),
        (_served().to_line().replace('"prompt_tokens":12', '"prompt_tokens":"12"'),
         "prompt_tokens is a whole number >= 0"),
        (_served().to_line().replace('"auth":""', '"auth":["mac"]'),
         "auth is mac, signature or empty"),
    ],
)  # fmt: skip
def test_each_refusal_in_words(line: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_line(line)
    assert str(err.value) == why


def test_the_bounds_of_a_record() -> None:
    top = 2**63 - 1
    for name in ("time_ms", "prompt_tokens", "completion_tokens"):
        for ok in (0, top):
            assert getattr(_served(**{name: ok}), name) == ok
        for bad in (-1, top + 1, 1.0, True):
            with pytest.raises(ValueError, match=rf"^{name} is a whole number >= 0$"):
                _served(**{name: bad})
    for ok_ms in (0, top):
        assert _served(gateway_ms=ok_ms).gateway_ms == ok_ms
    for bad_ms in (-1, top + 1, 1.5):
        with pytest.raises(ValueError, match=r"^gateway_ms is a whole number >= 0$"):
            _served(gateway_ms=bad_ms)
    for name in ("node", "request_id", "model", "gateway", "signature", "body_sha256"):
        assert getattr(_served(**{name: "x" * 512}), name) == "x" * 512
        for bad in ("x" * 513, 5):
            with pytest.raises(ValueError, match=rf"^{name} is a string of at most 512"):
                _served(**{name: bad})
    with pytest.raises(ValueError, match=r"^outcome is one of ok, cancelled, error$"):
        _served(outcome="paid")
    with pytest.raises(ValueError, match=r"^auth is mac, signature or empty$"):
        _served(auth="token")
    with pytest.raises(ValueError, match=r"^a served request has an id$"):
        _served(request_id="")


def test_only_a_client_chosen_key_with_its_tilde_is_matched_by_suffix() -> None:
    assert ledger_key("c-" + "a" * 24) == "c-" + "a" * 24  # no suffix
    assert ledger_key("pool~budget.x") == "pool~budget.x"  # a tilde, not a client's key
    with pytest.raises(ValueError, match=r"^a node's request id is req- and 32 hex digits$"):
        ledger_suffix("req-0123")
