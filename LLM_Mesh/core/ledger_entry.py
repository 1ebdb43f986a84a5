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
``user:<24 hex>`` made by :func:`pseudonym` from an API key's id (unkeyed: anyone who
knows the id can find its account; the probe accounts keyed-class canary probes are paid
from have that form, :meth:`Pseudonyms.probe`, keyed), and ``operator:`` / ``node:`` / ``held:`` + 32 hex
made by :class:`Pseudonyms` from an operator's name or a node's id under the ledger's
secret key (HMAC: nobody without the key can tell whose account it is, though names and
node ids are guessable or public); ``held:`` keeps a quarantined node's earnings until the
admin clears or revokes it. Before the key (migration 0018) these three were unkeyed
:func:`pseudonym` s of 24 hex digits (:func:`is_legacy_account`): their balances stay there
(an entry moving one to its keyed account would link the two in public), and the
operator's views add both up (``registry/ledger_accounts.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from LLM_Mesh.core.merkle import HASH_SIZE, leaf_hash

__all__ = [
    "ACCOUNT_RE",
    "ENTRY_FIELDS",
    "GENESIS_PREV",
    "KINDS",
    "MINT",
    "NETWORK",
    "POOL",
    "PROBE_ACCOUNTS",
    "LedgerEntry",
    "Pseudonyms",
    "Transfer",
    "entry_leaf",
    "is_held_account",
    "is_legacy_account",
    "leaf_encoder",
    "pseudonym",
]

DOMAIN = b"llm-mesh/ledger-entry/v1\x00"
GENESIS_PREV = bytes(HASH_SIZE)
MAX_AMOUNT = (1 << 63) - 1

MINT = "mint"
POOL = "pool"
NETWORK = "network"
#: An entry's fields in row order: ``GET /v1/ledger/export``'s arrays and the auditor's rows.
ENTRY_FIELDS = (
    "seq", "time_us", "kind", "from", "to", "amount", "request_id", "receipt_hash",
    "prev_hash", "leaf_hash",
)  # fmt: skip
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
_KEYED_DOMAIN = b"llm-mesh/account/v2\x00"
_TAG_DOMAIN = b"llm-mesh/ledger-scope/v1\x00"
_PROBE_DOMAIN = b"llm-mesh/probe-account/v1\x00"
#: the accounts keyed-class canary probes are paid from (``Pseudonyms.probe``), 1 to this
PROBE_ACCOUNTS = 4
_LEGACY_RE = re.compile(r"^(operator|node|held):[0-9a-f]{24}$")
KEYED = ("operator", "node", "held")


def pseudonym(kind: str, name: str) -> str:
    """The unkeyed ledger account of a user (an API key's id); for an operator (its name),
    a node or a node's held earnings (its id): the account before migration 0018 (now
    :class:`Pseudonyms`'), which anyone could compute from the name."""
    if kind not in ("user", "operator", "node", "held") or not name:
        raise ValueError("an account pseudonym is for a user, operator or node with a name")
    digest = hashlib.sha256(_PSEUDONYM_DOMAIN + kind.encode() + b"\x00" + name.encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


class Pseudonyms:
    """The keyed accounts of operators (a name), nodes and held earnings (a node id):
    ``kind:`` + 32 hex digits of HMAC-SHA256 under ``key``, the ledger's secret
    (``registry/ledger_accounts.py``, never published)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("an account key is at least 32 bytes")
        self._key = key
        self._made: dict[tuple[str, str], str] = {}

    def of(self, kind: str, name: str) -> str:
        made = self._made.get((kind, name))
        if made is None:
            if kind not in KEYED or not name:
                raise ValueError("a keyed account is for an operator or a node with a name")
            msg = _KEYED_DOMAIN + kind.encode() + b"\x00" + name.encode()
            made = f"{kind}:{hmac.digest(self._key, msg, 'sha256').hex()[:32]}"
            if len(self._made) < 65_536:
                self._made[(kind, name)] = made
        return made

    def tag(self, *fields: str) -> str:
        """8 hex digits of HMAC-SHA256 under the key of ``fields`` (JSON, so unambiguous):
        a settlement key's scope tag (``registry/paid_ids.PaidIds.scoped``), which nobody
        without the key can test a guess against (an address, a prompt)."""
        msg = _TAG_DOMAIN + json.dumps(fields).encode()
        return hmac.digest(self._key, msg, "sha256").hex()[:8]

    def probe(self, index: int) -> str:
        """Probe account ``index`` (1 to :data:`PROBE_ACCOUNTS`): what a canary probe of
        the keyed class is paid from (``registry/canary.py``), in a user's form, ``user:`` +
        24 hex digits (:func:`pseudonym`'s): of HMAC-SHA256 under the key here, so nobody
        without the key tells it from the account of an API key it does not hold, nor ties
        it to the pool or to the other probe accounts."""
        if type(index) is not int or not 1 <= index <= PROBE_ACCOUNTS:
            raise ValueError(f"a probe account is 1 to {PROBE_ACCOUNTS}, got {index!r}")
        digest = hmac.digest(self._key, _PROBE_DOMAIN + str(index).encode(), "sha256")
        return f"user:{digest.hex()[:24]}"

    def operator(self, name: str) -> str:
        return self.of("operator", name)

    def node(self, node_id: str) -> str:
        """The account of a node without an operator."""
        return self.of("node", node_id)

    def held(self, node_id: str) -> str:
        """Where a quarantined node's earnings wait (``hold``) until cleared or revoked."""
        return self.of("held", node_id)


def is_legacy_account(account: str) -> bool:
    """Whether ``account`` is an unkeyed operator, node or held account (before 0018)."""
    return _LEGACY_RE.match(account) is not None


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

    def to_row(self) -> tuple[object, ...]:
        """The entry as a row in :data:`ENTRY_FIELDS` order."""
        return (
            self.seq, self.time_us, self.kind, self.from_account, self.to_account, self.amount,
            self.request_id, self.receipt_hash, self.prev_hash, self.leaf_hash,
        )  # fmt: skip


_SEQ_TIME = struct.Struct(">Qq").pack
_U16 = struct.Struct(">H").pack
_U64 = struct.Struct(">Q").pack


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
    """The canonical bytes of an entry (see the module docstring).

    Written out flat (no helper per field): the verifier calls it once per entry.
    """
    if len(prev_hash) != HASH_SIZE:
        raise ValueError("prev_hash is 32 bytes")
    k, f, t = kind.encode(), from_account.encode(), to_account.encode()
    r = request_id.encode() if request_id else b""
    h = receipt_hash.encode() if receipt_hash else b""
    if max(len(k), len(f), len(t), len(r), len(h)) > 0xFFFF:
        raise ValueError("a ledger string field is at most 65535 bytes")
    return b"".join(
        (
            DOMAIN, _SEQ_TIME(seq, time_us), _U16(len(k)), k, _U16(len(f)), f, _U16(len(t)), t,
            _U64(amount), _U16(len(r)), r, _U16(len(h)), h, prev_hash,
        )
    )  # fmt: skip


_NO_STR = _U16(0)
MAX_CACHED_TRIPLES = 1 << 16


def _field(value: str) -> bytes:
    data = value.encode()
    if len(data) > 0xFFFF:
        raise ValueError("a ledger string field is at most 65535 bytes")
    return _U16(len(data)) + data


def leaf_encoder() -> Callable[
    [int, int, str, str, str, int, str | None, str | None, bytes], bytes
]:  # fmt: skip
    """A function with :func:`entry_leaf`'s arguments and result, for a verifier that
    encodes a million leaves: the encoded ``kind``, ``from``, ``to`` are kept per
    triple (a ledger has few kinds and accounts; at most ``MAX_CACHED_TRIPLES``), and no
    helper is called per field. Raises as :func:`entry_leaf` does (``TypeError`` or
    ``AttributeError`` for a field of the wrong type)."""
    triples: dict[tuple[str, str, str], bytes] = {}
    head, u64, join = _SEQ_TIME, _U64, b"".join

    def encode(
        seq: int, time_us: int, kind: str, from_account: str, to_account: str, amount: int,
        request_id: str | None, receipt_hash: str | None, prev_hash: bytes,
    ) -> bytes:  # fmt: skip
        key = (kind, from_account, to_account)
        kft = triples.get(key)
        if kft is None:
            kft = _field(kind) + _field(from_account) + _field(to_account)
            if len(triples) >= MAX_CACHED_TRIPLES:
                triples.clear()
            triples[key] = kft
        if len(prev_hash) != HASH_SIZE:
            raise ValueError("prev_hash is 32 bytes")
        return join(
            (
                DOMAIN, head(seq, time_us), kft, u64(amount),
                _field(request_id) if request_id else _NO_STR,
                _field(receipt_hash) if receipt_hash else _NO_STR,
                prev_hash,
            )
        )  # fmt: skip

    return encode


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
