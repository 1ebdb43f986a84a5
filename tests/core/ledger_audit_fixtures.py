"""Ledgers for the ledger-audit tests (``test_ledger_audit*.py`` and others): signed and raw
entries, a registry that signs checkpoints, an audit of them, the kinds of its findings, and
Merkle inclusion and consistency proofs."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.ledger_audit import Auditor, Report
from LLM_Mesh.core.ledger_entry import (
    GENESIS_PREV,
    MINT,
    Transfer,
    make_entry,
    pseudonym,
)
from LLM_Mesh.core.merkle import largest_power_of_two_below, root_of

ORIGIN = "test.local/ledger"
ALICE, BOB = pseudonym("user", "alice"), pseudonym("operator", "bob")
Entry = dict[str, object]


def pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ledger(n: int) -> tuple[list[Entry], list[bytes]]:
    """A grant to alice, then ``n - 1`` settlements from alice to bob (as published)."""
    transfers = [Transfer("grant", MINT, ALICE, 1_000_000)] + [
        Transfer("settle", ALICE, BOB, 10 + i, request_id=f"req-{i}") for i in range(n - 1)
    ]
    entries: list[Entry] = []
    leaves: list[bytes] = []
    prev = GENESIS_PREV
    for seq, t in enumerate(transfers):
        e, prev = make_entry(seq, 1_000 + seq, t, prev)
        entries.append(e.to_json())
        leaves.append(prev)
    return entries, leaves


class Registry:
    """Signs checkpoints the way the registry publishes them (``GET /v1/ledger/checkpoints``)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.pub = pub(self.key)
        self.keys = [base64.b64encode(self.pub).decode()]

    def checkpoint(self, size: int, root: bytes, **override: object) -> dict[str, object]:
        cp = sign_checkpoint(self.key, self.pub, ORIGIN, size, root, 7)
        record: dict[str, object] = {
            "tree_size": size,
            "root_hash": root.hex(),
            "note": cp.note,
            "public_key": self.keys[0],
        }
        record.update(override)
        return record


def audit(entries: list[Entry], checkpoints: list[dict[str, object]] = (), reg: Registry | None = None) -> Auditor:  # type: ignore[assignment]  # fmt: skip
    reg = reg or Registry()
    a = Auditor(checkpoints, reg.keys, ORIGIN)
    for e in entries:
        a.entry(e)
    return a


def kinds(report: Report) -> list[str]:
    return [f.kind for f in report.findings]


# Reference proofs, by RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF / SUBPROOF).
def inclusion_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = largest_power_of_two_below(len(d))
    if m < k:
        return [*inclusion_path(m, d[:k]), root_of(d[k:])]
    return [*inclusion_path(m - k, d[k:]), root_of(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [root_of(d)]
    k = largest_power_of_two_below(len(d))
    if m <= k:
        return [*subproof(m, d[:k], whole), root_of(d[k:])]
    return [*subproof(m - k, d[k:], False), root_of(d[:k])]
