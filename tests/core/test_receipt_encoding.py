"""core/receipt.py's canonical bytes against the layout written out here, field by field,
with its memo of recurring fields (``_kept``) empty, warm and full."""

from __future__ import annotations

import struct

import pytest

from LLM_Mesh.core import receipt as rc
from LLM_Mesh.core.receipt import (
    MAX_FIELD,
    Money,
    Part,
    PartStatus,
    ReceiptBody,
    node_receipt_bytes,
)
from LLM_Mesh.core.receipt_old import old_receipt_bytes

HEX = "4ea5ee68fea05586106890ded5733820bb77d919cda27bc4b8139b7cd33b8889"
HEX2 = "00" * 31 + "ff"


def s(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


def q(*values: int) -> bytes:
    return b"".join(struct.pack(">Q", v) for v in values)


def expected_v3(parts: list[Part], money: Money | None) -> bytes:
    out = [b"llm-mesh/v1/receipt-v3\x00", s("reg-1"), s("req-é"), b"\x00\x00", s("model-ü"),
           q(1764900000123, 12, 40), bytes.fromhex(HEX)]  # fmt: skip
    out.append(
        b"\x00" if money is None else b"\x01" + s(money.payer) + q(money.fee_bps, money.cost)
    )
    out.append(struct.pack(">H", len(parts)))
    for p in parts:
        out += [s(p.node_id), s(p.node_key), s(p.status.value), s(p.reason),
                q(p.prompt_tokens, p.completion_tokens), bytes.fromhex(p.output_sha256),
                s(p.node_signature)]  # fmt: skip
        if money is not None:
            out.append(q(p.amount or 0, p.fee or 0))
    return b"".join(out)


def parts(money: bool) -> list[Part]:
    a, f = (1000, 50) if money else (None, None)
    return [
        Part(
            "node-a",
            "key-a",
            status,
            12,
            40 + i,
            HEX if i % 2 else HEX2,
            f"sig-{i}",
            "usage" if status is PartStatus.INVALID else "",
            None if a is None else a + i,
            f,
        )
        for i, status in enumerate(PartStatus)
    ]


def make(ps: list[Part], money: Money | None) -> bytes:
    """Version 3's layout (version 4's under another domain: ``core/receipt_old.py``)."""
    body = ReceiptBody("reg-1", "req-é", "model-ü", 1764900000123, 12, 40, HEX, tuple(ps), "",
                       money)  # fmt: skip
    return old_receipt_bytes(body, 3)


@pytest.mark.parametrize("settled", [False, True])
def test_receipt_bytes_are_the_layout_with_the_memo_empty_warm_and_full(
    settled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    money = Money("user", 500, 5000) if settled else None
    ps = parts(settled)
    want = expected_v3(ps, money)
    rc._KEPT.clear()
    assert make(ps, money) == want  # empty
    assert make(ps, money) == want  # warm: the same fields looked up
    rc._KEPT.clear()
    monkeypatch.setattr(rc, "_MAX_KEPT", 3)  # full again and again: emptied, then kept
    assert make(ps, money) == want
    assert 0 < len(rc._KEPT) <= 3
    assert make(ps, money) == want


def test_node_receipt_bytes_are_the_layout_warm_or_not() -> None:
    want = (b"llm-mesh/v1/node-receipt\x00" + s("reg-1") + s("node-a") + s("req-1") + s("m")
            + q(2, 1) + bytes.fromhex(HEX))  # fmt: skip
    rc._KEPT.clear()
    assert node_receipt_bytes("reg-1", "node-a", "req-1", "m", 2, 1, HEX) == want
    assert node_receipt_bytes("reg-1", "node-a", "req-1", "m", 2, 1, HEX) == want


def test_a_field_too_long_is_refused_every_time_and_never_kept() -> None:
    long = "x" * (MAX_FIELD + 1)
    rc._KEPT.clear()
    for _ in range(2):
        with pytest.raises(ValueError, match="at most"):
            node_receipt_bytes(long, "node-a", "req-1", "m", 2, 1, HEX)
        with pytest.raises(ValueError, match="at most"):
            make([Part(long, "k", PartStatus.SIGNED, 1, 1, HEX, "sig")], None)
    assert long not in rc._KEPT
    edge = "y" * MAX_FIELD  # the longest a field may be: encoded (and kept)
    assert node_receipt_bytes(edge, "n", "r", "m", 0, 0, HEX).startswith(
        b"llm-mesh/v1/node-receipt\x00" + s(edge)
    )


@pytest.mark.parametrize(("prompt", "completion"), [(-1, 0), (0, -1), (2**63, 0), (0, 2**63)])
def test_counts_out_of_range_are_refused(prompt: int, completion: int) -> None:
    with pytest.raises(ValueError, match="whole number"):
        node_receipt_bytes("reg-1", "node-a", "req-1", "m", prompt, completion, HEX)
    with pytest.raises(ValueError, match="whole number"):
        make([Part("node-a", "k", PartStatus.SIGNED, prompt, completion, HEX, "sig")], None)
    top = 2**63 - 1  # the largest count: encoded
    assert node_receipt_bytes("r", "n", "q", "m", top, top, HEX).endswith(
        q(top, top) + bytes.fromhex(HEX)
    )


def test_the_countersignature_lays_out_the_fields_a_body_has_in_its_order() -> None:
    """``ReceiptSigner.countersign`` lays out its fields without a :class:`ReceiptBody`
    (``_layout_fields``, money45): the layout's fields are the body's, by name and order,
    and a body laid out through either way gives the same bytes (the golden vectors:
    ``test_receipt_golden.py``)."""
    import inspect
    from dataclasses import fields

    layout = rc._layout_fields  # noqa: TID251 (its own test)
    names = list(inspect.signature(layout).parameters)
    assert names[:2] == ["head", "version"]
    assert names[2:] == [f.name for f in fields(ReceiptBody)]
    part = Part("node-a", "k", PartStatus.SIGNED, 1, 2, HEX, "sig", "", 10, 1)
    body = ReceiptBody("reg", "req", "m", 5, 1, 2, HEX, (part,), "", Money("user", 100, 10))
    signed = [getattr(body, f.name) for f in fields(ReceiptBody)]
    laid = layout(rc.RECEIPT_V4_DOMAIN, rc.VERSION, *signed)
    assert laid == rc.receipt_bytes(body)
