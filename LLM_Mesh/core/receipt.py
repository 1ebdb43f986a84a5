"""Signed receipts: the node signs what it generated, the gateway countersigns what it relayed.

Pure rules (no I/O; the clock is passed in). The design and the attacks are in
docs/ARCHITECTURE.md ("Receipts") and docs/security.md ("Receipts").

**Node receipt.** A node signs, with its node key, for every answer it gives::

    b"llm-mesh/v1/node-receipt\\0" registry_id node_id request_id model
      u64(prompt_tokens) u64(completion_tokens) sha256(output)[32 bytes]

(strings are ``u16 length + UTF-8``, integers big-endian; ``registry_id`` is the gateway
whose signed request it answered, ``""`` for a standalone node; the output is the answer's
text, :mod:`~LLM_Mesh.core.answer_text`). It travels as the node's ``mesh.receipt``:
``{"v", "node_id", "node_key", "registry_id", "request_id", "model", "prompt_tokens",
"completion_tokens", "output_sha256", "signature"}`` (key and signature base64url).

**Receipt** (version 4). The gateway checks each node's part
(:func:`~LLM_Mesh.core.receipt_check.check_part`: the node's signature over the gateway's
*own* numbers, so one Ed25519 verify checks every field) and signs, with the registry key,
the whole request, the client's id when it chose one (as a hash), what it was charged, and
every part::

    b"llm-mesh/v1/receipt-v4\\0" registry_id request_id client_id_hash model u64(time_ms)
      u64(prompt_tokens) u64(completion_tokens) sha256(output)[32]
      u8(settled) [payer u64(fee_bps) u64(cost)] u16(parts)
      per part: node_id node_key status reason u64(prompt_tokens)
                u64(completion_tokens) sha256(part output)[32] node_signature
                [u64(amount) u64(fee)]

The bracketed fields are there only when ``settled`` is 1 (:class:`Money`: the request was
settled, in whole micro-NetworkTokens): ``payer`` is the paying account's kind as the
public ledger names it (``user`` or ``pool``, never the account), ``cost`` the request's
total (``mesh.cost``), and each part's ``amount`` (fee included) and ``fee`` are the values
the ledger's ``settle`` (``amount - fee``) and ``fee`` entries of that request carry (0 for
a part nobody pays). With settlement off ``settled`` is 0 and no amount is signed.
Each part's ``fee`` is ``pricing.network_fee`` of its ``amount``: rounded up.
**Version 3** (receipts made before 2026-12-06, ``money34``) is the same layout under
``b"llm-mesh/v1/receipt-v3\\0"``, its fees rounded down (``pricing.network_fee_down``);
it still verifies, by that rule. **Version 2** (receipts made before 2026-12-05) is the
layout without the money, under ``b"llm-mesh/v1/receipt-v2\\0"``; it still verifies.
The gateway signs only version 4 (:meth:`ReceiptSigner.countersign` takes no version:
found 2026-12-07, money42, it signed version 2 for a charge whose parts it could not
price, and charged it); older versions are verified only, for receipts already made, and
laid out only by :mod:`~LLM_Mesh.core.receipt_old`, which the registry and the node never
import (an import-linter contract; found 2026-12-07, money43: ``receipt_bytes(version=2)``
let a registry's own code lay out, and sign, a receipt with no amounts).

``client_id_hash`` is ``u16 length`` + 0 bytes when the gateway made the request id, else +
the 32 bytes of :func:`client_id_hash` of the client's ``Idempotency-Key`` /
``X-Request-Id`` (the nodes got, and signed, the gateway-made ``request_id``, never the
client's id; this hash is the gateway's word, in its countersignature only). It is the
same domain-separated SHA-256 whose first 24 hex digits the public ledger's ``c-`` id is
(:func:`client_ledger_id`): the receipt tells nobody more about the client's id
than the ledger entry it is linked to (by ``receipt_hash``) already does; unsalted for that
reason (a salt here would hide nothing the ledger shows). **Version 1** (receipts made
before it) is version 2's layout under ``b"llm-mesh/v1/receipt\\0"`` without
``client_id_hash``; it still verifies, and links no client id.

A part's ``status`` is ``signed`` (the node's receipt verified), ``broken`` (the node
broke off its stream before its final chunk: it could not sign; the gateway's count),
``cut`` (the client left before the node's final chunk; the gateway's count), ``missing``
(it finished without a receipt) or ``invalid`` (its receipt did not verify; ``reason``
says which field). ``receipt_hash`` = hex SHA-256 of those bytes: what the
ledger entry of the request commits to. Domains: every signed message of the mesh starts
with ``llm-mesh/v1/<kind>`` and a separator (:class:`~LLM_Mesh.core.identity.MessageKind`),
so no signature of one kind is valid as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from operator import attrgetter
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.ed25519 import Signer
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import (
    DOMAIN,
    MessageKind,
    encode_public_key,
    node_id_for,
)
from LLM_Mesh.core.pricing import MAX_FEE_BPS

__all__ = [
    "HDR_RECEIPT",
    "PAYABLE",
    "PAYERS",
    "VERSION",
    "Money",
    "NodeReceiptSigner",
    "Part",
    "PartStatus",
    "Receipt",
    "ReceiptBody",
    "ReceiptError",
    "ReceiptSigner",
    "client_id_hash",
    "client_ledger_id",
    "encode_header",
    "node_prompt_bytes",
    "node_receipt_bytes",
    "receipt_bytes",
]

VERSION = 4  # the receipt layout the gateway signs; a node's own receipt is version 1
VERSIONS = (1, 2, 3, 4)  # what a verifier reads
MONEY_VERSIONS = (3, 4)  # the versions that sign amounts (4: each part's fee rounded up)
NODE_VERSION = 1
HDR_RECEIPT = "X-Mesh-Receipt"
NODE_DOMAIN = DOMAIN + MessageKind.NODE_RECEIPT.value.encode("ascii") + b"\x00"
PROMPT_DOMAIN = DOMAIN + MessageKind.NODE_PROMPT_COUNT.value.encode("ascii") + b"\x00"
# the only receipt domain signed; versions 1 to 3's are core/receipt_old's (verified only)
RECEIPT_V4_DOMAIN = DOMAIN + MessageKind.RECEIPT_V4.value.encode("ascii") + b"\x00"
# the payer's account kind as the public ledger names it (``user:<pseudonym>``, ``pool``)
PAYERS = ("user", "pool")
# a client's own request id, hashed: the public ledger's ``c-`` id is its first 24 hex digits
CLIENT_ID_DOMAIN = b"llm-mesh/ledger-request/v1\x00"
MAX_FIELD = 512  # bytes of an id, a model name, a key or a signature
MAX_PARTS = 64
_MAX_INT = 2**63 - 1


class PartStatus(str, Enum):
    SIGNED = "signed"  # the node's receipt verified
    BROKEN = "broken"  # the node broke its stream off before its final chunk: it never signed
    CUT = "cut"  # the client left (the gateway closed the stream) before the node's final chunk
    MISSING = "missing"  # the node finished without a receipt
    INVALID = "invalid"  # the node's receipt did not verify (``reason``: the field)


# parts a node is paid for: its signature checked, or no signature to check (it broke off,
# was cut off, or finished without a receipt: the gateway's own count of what it relayed,
# as for any unsigned part; the receipt says so). A receipt that does not verify is
# evidence against the node: that part is not paid.
PAYABLE = frozenset({PartStatus.SIGNED, PartStatus.BROKEN, PartStatus.CUT, PartStatus.MISSING})


class ReceiptError(ValueError):
    """A receipt that does not check out; ``reason`` names what (``malformed``,
    ``gateway_signature``, ``node_signature``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_URL_ALPHABET = bytes.maketrans(b"-_", b"+/")  # made once (``b64decode`` makes it a call)


def unb64url(text: str) -> bytes:
    """base64url (padding optional); ``ValueError`` when it is not. What
    ``base64.b64decode(padded, altchars=b"-_", validate=True)`` does, its messages
    included, with the translation table made once."""
    try:
        data = (text + "=" * (-len(text) % 4)).encode("ascii")
    except UnicodeEncodeError:
        msg = "string argument should contain only ASCII characters"
        raise ValueError(f"not base64url ({msg})") from None
    try:
        return binascii.a2b_base64(data.translate(_URL_ALPHABET), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64url ({exc})") from None


# a field's u16 length prefix for every length a field may have (no ``struct`` call a field)
_LENGTHS = tuple(n.to_bytes(2, "big") for n in range(MAX_FIELD + 1))
_U64 = struct.Struct(">Q").pack


def _str(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > MAX_FIELD:
        raise ValueError(f"a receipt field is at most {MAX_FIELD} bytes")
    return _LENGTHS[len(data)] + data


# the encoded fields that recur receipt after receipt (the registry id, a model, a node's id
# and key, a status, a reason): each encoded once, then looked up; bounded (emptied when
# full). A request's id and a signature, new each time, go through ``_str`` alone.
_KEPT: dict[str, bytes] = {}
_MAX_KEPT = 4096


def _kept(value: str) -> bytes:
    """``_str(value)``, remembered (for a field that recurs)."""
    data = _KEPT.get(value)
    if data is None:
        data = _str(value)  # a field too long raises here, and is never kept
        if len(_KEPT) >= _MAX_KEPT:
            _KEPT.clear()
        _KEPT[value] = data
    return data


def _u64(value: int) -> bytes:
    if not 0 <= value <= _MAX_INT:
        raise ValueError("a receipt count is a whole number in [0, 2^63)")
    return _U64(value)


_STATUS = {status: _str(status.value) for status in PartStatus}  # each status's signed bytes

_U64X2 = struct.Struct(">QQ").pack


def _counts(prompt_tokens: int, completion_tokens: int) -> bytes:
    """``_u64(prompt_tokens) + _u64(completion_tokens)`` in one pack."""
    if not (0 <= prompt_tokens <= _MAX_INT and 0 <= completion_tokens <= _MAX_INT):
        raise ValueError("a receipt count is a whole number in [0, 2^63)")
    return _U64X2(prompt_tokens, completion_tokens)


def _digest(hex_digest: str) -> bytes:
    if len(hex_digest) != 64 or hex_digest != hex_digest.lower():
        raise ValueError("an output hash is 64 lowercase hex digits")
    return bytes.fromhex(hex_digest)


def client_id_hash(client_id: str) -> str:
    """Hex SHA-256 of :data:`CLIENT_ID_DOMAIN` + the client's id (UTF-8): what a receipt
    signs for an id the client chose, and what the ledger's ``c-`` id is cut from."""
    return hashlib.sha256(CLIENT_ID_DOMAIN + client_id.encode("utf-8")).hexdigest()


def client_ledger_id(client_id: str, hashed: str = "") -> str:
    """What the public ledger, the request log (``requests.request_id``) and the gateway's
    request line say for a request id the client chose: ``c-`` and 24 hex digits of
    :func:`client_id_hash` (``hashed``: already made), never the id itself (clients' ids are
    often their own trace ids, naming their users and records). The same id gives the same
    value on every replica; someone who already knows an id can find its entries (an operator
    given a user's id: ``llm-mesh ledger id ID``), nobody reads an id out of them."""
    return f"c-{(hashed or client_id_hash(client_id))[:24]}"


def _client(hex_digest: str) -> bytes:
    """``client_id_hash`` in the signed bytes: u16 length, then 0 or 32 bytes."""
    if not hex_digest:
        return b"\x00\x00"
    if len(hex_digest) != 64 or hex_digest.strip("0123456789abcdef"):
        raise ValueError("client_id_hash is empty or 64 lowercase hex digits")
    return b"\x00\x20" + bytes.fromhex(hex_digest)


def node_receipt_bytes(
    registry_id: str,
    node_id: str,
    request_id: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    output_sha256: str,
) -> bytes:
    """The canonical bytes a node signs (see the module docstring)."""
    return b"".join((
        NODE_DOMAIN, _kept(registry_id), _kept(node_id), _str(request_id), _kept(model),
        _counts(prompt_tokens, completion_tokens), _digest(output_sha256),
    ))  # fmt: skip


def node_prompt_bytes(
    registry_id: str, node_id: str, request_id: str, model: str, prompt_tokens: int
) -> bytes:
    """The canonical bytes a node signs for its prompt count as its stream opens
    (``core/prompt_count.py``, since 2026-12-06, money36): ``b"llm-mesh/v1/node-prompt-count\\0"
    registry_id node_id request_id model u64(prompt_tokens)``, a domain of its own (no
    count signed early is a receipt of an answer, nor one the other way)."""
    return b"".join((
        PROMPT_DOMAIN, _kept(registry_id), _kept(node_id), _str(request_id), _kept(model),
        _u64(prompt_tokens),
    ))  # fmt: skip


class NodeReceiptSigner:
    """The node's side: signs a receipt for every answer (one Ed25519 signature, by
    libsodium: :mod:`~LLM_Mesh.core.ed25519`)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = Signer(key)
        raw = self._key.public_key
        self.node_key = encode_public_key(raw)
        self.node_id = node_id_for(raw)

    def sign(
        self,
        *,
        registry_id: str,
        request_id: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        output_sha256: str,
    ) -> dict[str, Any]:
        """The node's ``mesh.receipt`` for one answer."""
        data = node_receipt_bytes(registry_id, self.node_id, request_id, model, prompt_tokens,
                                  completion_tokens, output_sha256)  # fmt: skip
        return {
            "v": NODE_VERSION,
            "node_id": self.node_id,
            "node_key": self.node_key,
            "registry_id": registry_id,
            "request_id": request_id,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "output_sha256": output_sha256,
            "signature": b64url(self._key.sign(data)),
        }

    def sign_prompt_count(
        self, *, registry_id: str, request_id: str, model: str, prompt_tokens: int
    ) -> str:
        """The node's signature of its prompt count as its stream opens
        (:func:`node_prompt_bytes`), base64url: one Ed25519 signature by the receipt key."""
        data = node_prompt_bytes(registry_id, self.node_id, request_id, model, prompt_tokens)
        return b64url(self._key.sign(data))


@dataclass(frozen=True, slots=True)
class Part:
    """One node's part of a request, as the gateway countersigns it."""

    node_id: str
    node_key: str  # base64url; "" when the gateway has no key the node proved
    status: PartStatus
    prompt_tokens: int
    completion_tokens: int
    output_sha256: str
    node_signature: str = ""  # base64url; only for a signed part
    reason: str = ""  # why a part is invalid
    # µNT the payer pays for this part, fee included, and the network's fee of it (version
    # 3, settled: what the ledger's entries carry); None: not settled, or an older version
    amount: int | None = None
    fee: int | None = None

    @property
    def payable(self) -> bool:
        return self.status in PAYABLE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node_id": self.node_id,
            "node_key": self.node_key,
            "status": self.status.value,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "output_sha256": self.output_sha256,
            "node_signature": self.node_signature,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.amount is not None:
            out["amount"] = self.amount
            out["fee"] = self.fee
        return out


@dataclass(frozen=True, slots=True)
class Money:
    """What a settled request was charged (versions 3 and 4), in whole µNT: the payer's account
    kind (:data:`PAYERS`), the network fee in basis points each part's fee was cut at, and
    the total (``mesh.cost``: the parts' amounts summed)."""

    payer: str
    fee_bps: int
    cost: int

    def signed(self) -> bytes:
        if self.payer not in PAYERS:
            raise ValueError(f"a receipt's payer is one of {PAYERS}, not {self.payer!r}")
        if not 0 <= self.fee_bps <= MAX_FEE_BPS:
            raise ValueError(f"a receipt's fee_bps is 0 to {MAX_FEE_BPS}")
        return b"\x01" + _str(self.payer) + _u64(self.fee_bps) + _u64(self.cost)


def _part_money(part: Part, money: Money | None) -> bytes:
    """A version-3 or -4 part's amounts in the signed bytes: both when settled, else none."""
    if money is None:
        if part.amount is not None or part.fee is not None:
            raise ValueError("a receipt not settled signs no part's amount")
        return b""
    if part.amount is None or part.fee is None:
        raise ValueError("a settled receipt signs every part's amount and fee")
    return _u64(part.amount) + _u64(part.fee)


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    """What a receipt signs, every version (said once, hygiene44: ``receipt_bytes``,
    ``_layout`` and ``receipt_old.old_receipt_bytes`` each listed these fields before).
    ``client_id_hash``: "" (the gateway made the request id; version 1 signs none) or 64
    lowercase hex digits; ``money``: what a settled request was charged (versions 3 and 4),
    ``None``: not settled. A :class:`Receipt` is one, with its signature and version."""

    registry_id: str
    request_id: str
    model: str
    time_ms: int
    prompt_tokens: int
    completion_tokens: int
    output_sha256: str
    parts: tuple[Part, ...]
    client_id_hash: str = ""
    money: Money | None = None


# a body's fields, in order (ReceiptBody's own list: the fields said once, there)
_signed_fields = attrgetter(*(f.name for f in fields(ReceiptBody)))


def receipt_bytes(body: ReceiptBody) -> bytes:
    """The canonical bytes the gateway signs, version 4 only (see the module docstring).
    There is no ``version`` here (found 2026-12-07, money43), and a :class:`Receipt` of an
    older version is refused (``ValueError``): the layouts of versions 1 to 3, which a
    verifier still reads, are :mod:`~LLM_Mesh.core.receipt_old`'s, a module the registry and
    the node never import (an import-linter contract; ``_layout``, a ruff banned API
    elsewhere), so no code of theirs can lay out, and sign, an old one."""
    version = body.version if isinstance(body, Receipt) else VERSION
    if version != VERSION:
        raise ValueError(f"a version-{version} receipt is laid out only by "
                         "core/receipt_old (verified, never signed)")  # fmt: skip
    return _layout(RECEIPT_V4_DOMAIN, body, VERSION)


def _layout(head: bytes, body: ReceiptBody, version: int) -> bytes:
    """``body``'s bytes as ``version`` lays them out, after its domain ``head`` (the layout
    all versions share; ``core/receipt_old.py`` gives the old domains): version 1 has no
    ``client_id_hash``; versions 3 and 4 have the money fields."""
    return _layout_fields(head, version, *_signed_fields(body))


def _layout_fields(
    head: bytes,
    version: int,
    registry_id: str,
    request_id: str,
    model: str,
    time_ms: int,
    prompt_tokens: int,
    completion_tokens: int,
    output_sha256: str,
    parts: Sequence[Part],
    client_id_hash: str,
    money: Money | None,
) -> bytes:
    """:func:`_layout` of the fields themselves (:class:`ReceiptBody`'s, in its order):
    :meth:`ReceiptSigner.countersign` lays out the receipt it is about to sign without first
    building a :class:`ReceiptBody` of them (money45: one frozen 10-field object a request
    less; the bytes the same, ``tests/core/test_receipt_golden.py``)."""
    if not 1 <= len(parts) <= MAX_PARTS:
        raise ValueError(f"a receipt has 1 to {MAX_PARTS} parts")
    signs_money = version in MONEY_VERSIONS
    if not signs_money and (
        money is not None or any(p.amount is not None or p.fee is not None for p in parts)
    ):
        raise ValueError(f"a version-{version} receipt signs no amount")
    out = [head, _kept(registry_id), _str(request_id)]
    if version >= 2:
        out.append(_client(client_id_hash))
    out += (
        _kept(model), _u64(time_ms), _counts(prompt_tokens, completion_tokens),
        _digest(output_sha256),
    )  # fmt: skip
    if signs_money:
        out.append(b"\x00" if money is None else money.signed())
    out.append(_LENGTHS[len(parts)])  # (at most MAX_PARTS: a u16)
    for p in parts:
        out += (
            _kept(p.node_id), _kept(p.node_key), _STATUS[p.status], _kept(p.reason),
            _counts(p.prompt_tokens, p.completion_tokens), _digest(p.output_sha256),
            _str(p.node_signature),
        )  # fmt: skip
        if signs_money:
            out.append(_part_money(p, money))
    return b"".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt(ReceiptBody):
    """A countersigned receipt: what it signs (:class:`ReceiptBody`, by position), its
    ``signature`` (base64url, the registry key's) and ``version`` (by keyword);
    ``receipt_hash`` = hex SHA-256 of :meth:`signed_bytes`. ``client_id_hash`` "": the
    gateway made the request id (or a version-1 receipt, which signs none)."""

    signature: str
    version: int = VERSION

    def signed_bytes(self) -> bytes:
        """Version 4's bytes (:func:`receipt_bytes`); a receipt of an older version is an
        :class:`~LLM_Mesh.core.receipt_old.OldReceipt` (what the verifier parses it into),
        else ``ValueError``: nothing here lays out an old version (money43)."""
        return receipt_bytes(self)

    def names(self, request_id: str) -> bool:
        """Whether ``request_id`` is this receipt's request: its ``request_id`` (the id its
        nodes got) or, signed in a version-2 receipt, the client's own id (one SHA-256)."""
        if request_id == self.request_id:
            return True
        return bool(self.client_id_hash) and client_id_hash(request_id) == self.client_id_hash

    @property
    def receipt_hash(self) -> str:
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def to_json(self, receipt_hash: str | None = None) -> dict[str, Any]:
        """The wire form (``mesh.receipt``); ``receipt_hash`` is informative (recomputed
        by every verifier), pass it when known to save a hash."""
        out: dict[str, Any] = {
            "v": self.version,
            "registry_id": self.registry_id,
            "request_id": self.request_id,
        }
        if self.version >= 2:
            out["client_id_hash"] = self.client_id_hash
        out |= {
            "model": self.model,
            "time_ms": self.time_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "output_sha256": self.output_sha256,
        }
        if self.version >= 3:
            money = self.money
            out["settled"] = money is not None
            if money is not None:
                out |= {"payer": money.payer, "fee_bps": money.fee_bps, "cost": money.cost}
        return out | {
            "parts": [p.to_json() for p in self.parts],
            "receipt_hash": receipt_hash or self.receipt_hash,
            "signature": self.signature,
        }


class ReceiptSigner:
    """The gateway's side: countersigns with the registry key (``wall_clock``: unix s;
    the signature by libsodium: :mod:`~LLM_Mesh.core.ed25519`)."""

    def __init__(self, key: Ed25519PrivateKey, wall_clock: Callable[[], float]) -> None:
        self._key = Signer(key)
        self.wall_clock = wall_clock
        self.registry_id = registry_id_for(self._key.public_key)

    def countersign(
        self,
        request_id: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        output_sha256: str,
        parts: Sequence[Part],
        client_id_hash: str = "",
        money: Money | None = None,
    ) -> tuple[Receipt, str]:
        """The receipt, always of :data:`VERSION`, and its ``receipt_hash`` (one signature,
        one hash); ``client_id_hash``: :func:`client_id_hash` of the client's own request id
        when it chose one (the parse stage's, made once with the ledger's ``c-`` id), else
        ""; ``money``: what a settled request was charged (the parts then carry their
        ``amount`` and ``fee``), ``None``: nobody was charged (signed as ``settled`` 0).
        No older version is signed (found 2026-12-07, money42: a ``version`` argument let
        the gateway sign version 2, which signs no amounts, for a request it charged all
        the same, and every check of those charges said "nothing to compare"); older
        receipts are only verified (:mod:`~LLM_Mesh.core.receipt_old` lays them out)."""
        time_ms = int(self.wall_clock() * 1000)
        signed = (self.registry_id, request_id, model, time_ms, prompt_tokens,
                  completion_tokens, output_sha256, tuple(parts), client_id_hash, money)  # fmt: skip
        # receipt_bytes' layout of these fields (version 4), with no ReceiptBody built first
        data = _layout_fields(RECEIPT_V4_DOMAIN, VERSION, *signed)
        receipt = Receipt(*signed, signature=b64url(self._key.sign(data)), version=VERSION)
        return receipt, hashlib.sha256(data).hexdigest()


_HEADER_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)  # one, not one a call


def encode_header(receipt_json: dict[str, Any]) -> str:
    """The ``X-Mesh-Receipt`` value: base64url (no padding) of the receipt's compact JSON."""
    data = _HEADER_JSON.encode(receipt_json).encode("ascii")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
