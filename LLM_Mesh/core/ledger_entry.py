"""Ledger entries: what one entry says, its canonical bytes (the Merkle leaf) and accounts.

An entry moves ``amount`` micro-NetworkTokens (an integer > 0) from one account to
another. Its **leaf** — the bytes the Merkle tree commits to (``core/merkle.py``
hashes them as ``SHA-256(0x00 || leaf)``) — is, in this fixed order::

    b"llm-mesh/ledger-entry/v1\\x00"      domain prefix (25 bytes)
    seq            uint64 big-endian      0-based; the entry's leaf index in the tree
    time_us        int64  big-endian      microseconds since 1970-01-01 UTC
    kind           str                    grant | settle | fee | reward | ... (see KINDS)
    from_account   str
    to_account     str
    amount         uint64 big-endian      micro-NetworkTokens, >= 1
    request_id     str                    "" when none
    receipt_hash   str                    lowercase hex SHA-256 of the receipt, "" when none
    prev_hash      32 bytes               the previous entry's leaf hash; 32 zero bytes for seq 0

where ``str`` is a uint16 big-endian byte length followed by the UTF-8 bytes. Because
each leaf holds its predecessor's leaf hash, the entries are also a hash chain.

Accounts are pseudonymous: ``mint`` (the issuer: grants and rewards come from it; the
only account allowed below zero), ``pool`` (the community pool), ``network`` (fees),
and ``user:<24 hex>`` / ``operator:<24 hex>`` made by :func:`pseudonym` from an API
key's id or an operator's name (anyone who knows the name can find its account; the
ledger alone does not show names); ``held:<24 hex>`` (:func:`held_account`) keeps a
quarantined node's earnings until the admin clears or revokes it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from LLM_Mesh.core.merkle import HASH_SIZE, leaf_hash

__all__ = [
    "ACCOUNT_RE",
    "GENESIS_PREV",
    "KINDS",
    "MINT",
    "NETWORK",
    "POOL",
    "LedgerEntry",
    "Transfer",
    "entry_leaf",
    "held_account",
    "is_held_account",
    "pseudonym",
]

DOMAIN = b"llm-mesh/ledger-entry/v1\x00"
GENESIS_PREV = bytes(HASH_SIZE)
MAX_AMOUNT = (1 << 63) - 1

MINT = "mint"
POOL = "pool"
NETWORK = "network"
#: Entry kinds known today (others may come; the verifier treats all alike). ``hold``:
#: a request's share for a node under quarantine, paid to the node's held account instead
#: of its operator; ``release``: the held account paid to the operator when the admin
#: clears the node; ``forfeit``: the held account paid to ``network`` when the admin
#: revokes the node instead (``registry/held.py``).
KINDS = ("grant", "settle", "fee", "reward", "pool_budget", "hold", "release", "forfeit")

ACCOUNT_RE = re.compile(r"^(mint|pool|network|(user|operator|node|held):[0-9a-z._-]{1,96})$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RECEIPT_RE = re.compile(r"^[0-9a-f]{64}$")
_PSEUDONYM_DOMAIN = b"llm-mesh/account/v1\x00"


def pseudonym(kind: str, name: str) -> str:
    """The ledger account of a user (an API key's id), an operator (its name), a node or a
    node's held earnings (its id)."""
    if kind not in ("user", "operator", "node", "held") or not name:
        raise ValueError("an account pseudonym is for a user, operator or node with a name")
    digest = hashlib.sha256(_PSEUDONYM_DOMAIN + kind.encode() + b"\x00" + name.encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


def held_account(node_id: str) -> str:
    """Where a quarantined node's earnings wait (``hold``) until cleared or revoked."""
    return pseudonym("held", node_id)


def is_held_account(account: str | None) -> bool:
    return account is not None and account.startswith("held:")


@dataclass(frozen=True)
class Transfer:
    """What a caller asks the ledger to write: ``amount`` from one account to another."""

    kind: str
    from_account: str
    to_account: str
    amount: int
    request_id: str | None = None
    receipt_hash: str | None = None

    def __post_init__(self) -> None:
        if not KIND_RE.match(self.kind):
            raise ValueError(f"bad ledger entry kind {self.kind!r}")
        for acct in (self.from_account, self.to_account):
            if not ACCOUNT_RE.match(acct):
                raise ValueError(f"bad ledger account {acct!r} (see core/ledger_entry.py)")
        if self.from_account == self.to_account:
            raise ValueError("a transfer moves between two different accounts")
        if type(self.amount) is not int or not 1 <= self.amount <= MAX_AMOUNT:
            raise ValueError(
                f"an amount is a whole number of micro-NetworkTokens >= 1, got {self.amount!r}"
            )
        if self.request_id is not None and not 1 <= len(self.request_id.encode()) <= 128:
            raise ValueError("a request id is 1 to 128 bytes")
        if self.receipt_hash is not None and not RECEIPT_RE.match(self.receipt_hash):
            raise ValueError("a receipt hash is 64 lowercase hex digits")


@dataclass(frozen=True)
class LedgerEntry:
    """One entry as stored and published (hashes as lowercase hex)."""

    seq: int
    time_us: int
    kind: str
    from_account: str
    to_account: str
    amount: int
    request_id: str | None
    receipt_hash: str | None
    prev_hash: str
    leaf_hash: str

    def to_json(self) -> dict[str, object]:
        return {
            "object": "ledger.entry",
            "seq": self.seq,
            "time_us": self.time_us,
            "kind": self.kind,
            "from": self.from_account,
            "to": self.to_account,
            "amount": self.amount,
            "request_id": self.request_id,
            "receipt_hash": self.receipt_hash,
            "prev_hash": self.prev_hash,
            "leaf_hash": self.leaf_hash,
        }


def _str(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("a ledger string field is at most 65535 bytes")
    return struct.pack(">H", len(data)) + data


def entry_leaf(
    seq: int,
    time_us: int,
    kind: str,
    from_account: str,
    to_account: str,
    amount: int,
    request_id: str | None,
    receipt_hash: str | None,
    prev_hash: bytes,
) -> bytes:
    """The canonical bytes of an entry (see the module docstring)."""
    if len(prev_hash) != HASH_SIZE:
        raise ValueError("prev_hash is 32 bytes")
    return b"".join(
        (
            DOMAIN,
            struct.pack(">Qq", seq, time_us),
            _str(kind),
            _str(from_account),
            _str(to_account),
            struct.pack(">Q", amount),
            _str(request_id or ""),
            _str(receipt_hash or ""),
            prev_hash,
        )
    )


def make_entry(seq: int, time_us: int, t: Transfer, prev_hash: bytes) -> tuple[LedgerEntry, bytes]:
    """The entry for transfer ``t`` at ``seq`` after ``prev_hash``, and its leaf hash."""
    leaf = entry_leaf(
        seq, time_us, t.kind, t.from_account, t.to_account, t.amount, t.request_id,
        t.receipt_hash, prev_hash,
    )  # fmt: skip
    h = leaf_hash(leaf)
    entry = LedgerEntry(
        seq=seq, time_us=time_us, kind=t.kind, from_account=t.from_account,
        to_account=t.to_account, amount=t.amount, request_id=t.request_id,
        receipt_hash=t.receipt_hash, prev_hash=prev_hash.hex(), leaf_hash=h.hex(),
    )  # fmt: skip
    return entry, h
