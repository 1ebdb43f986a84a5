"""Who may register, heartbeat and deregister a node: the registry's side of node identity.

:class:`SignedNodeAuth` (the default of every registry) checks the rules of
:mod:`LLM_Mesh.core.identity` against the store:

registration (``POST /mesh/nodes``)
    the key in ``X-Mesh-Public-Key`` one the receipt rule takes (401: a point of
    Ed25519's prime-order subgroup, canonically encoded, :mod:`LLM_Mesh.core.ed25519`; so
    every registered node's receipts verify at the gateway and offline alike), signature
    by that key (401), timestamp within ±120 s (401),
    the node id is that key's id (403) and the body's ``node_id`` is it too (403, in
    ``api.py``), a known, unrevoked operator token in ``X-Mesh-Operator-Token`` (401/403),
    then, in one store step, the key is recorded (first time) and the sequence number
    taken if it is greater than the last one seen (401 replay) and the key not revoked (403).
heartbeat / state change / deregistration
    the signer's key from the store (unknown node acting on itself: 404 ``unknown_node``,
    so it registers again), signature (401), timestamp (401), signer == the node acted
    on (403), then the sequence number in one store step (401 replay, 403 revoked).

A 403 ``revoked`` (a revoked node key or operator) is found only after the message's
signature verified, and carries the registry key's signature of the refusal, bound to that
message (:func:`revocation_signed`, ``core/revocation_proof.py``): a node honours no other;
after a rotation of the key, with the chain of rotation statements a registration answer
carries (``key_rotations``, ``key_rotation``), so a node that pinned an earlier key follows.
A registration's 401 for an operator token the registry does not know (or none), which
stops the node for good, is signed the same way in its own domain (:func:`token_refusal_signed`).

Nothing is changed before every check has passed. Public keys are cached per node id
(an id is derived from its key, so the pair never changes); revocation and sequence
numbers are always read from the store, so a registry learns of a revocation made by
another process (the admin CLI, another replica) at the node's next message.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.ed25519 import key_problem
from LLM_Mesh.core.identity import (
    HDR_BEAT_TOKEN,
    HDR_OPERATOR_TOKEN,
    HDR_PUBLIC_KEY,
    MAX_CLOCK_SKEW_S,
    MessageKind,
    decode_public_key,
    hash_secret,
    node_id_for,
    parse_signed,
    verify_signed,
)
from LLM_Mesh.core.revocation_proof import RevocationSigner, revoked_request
from LLM_Mesh.errors import (
    BadSignature,
    Forbidden,
    InvalidCredential,
    MeshError,
    NodeIdMismatch,
    OperatorTokenRefused,
    ReplayedMessage,
    Revoked,
    StaleMessage,
    UnknownNode,
)
from LLM_Mesh.registry.admin import UNKNOWN_NODE_IDS, CredentialTries
from LLM_Mesh.registry.ports import NodeKeyRecord, SeqResult, Store

#: a registration refused for its signature (after an Ed25519 verify, or for headers that
#: could not be one): counted per address in ``admin.WRONG_NODE_SIGNATURES`` (``api.py``)
SIGNATURE_REFUSALS = (BadSignature, StaleMessage, ReplayedMessage, NodeIdMismatch)

# called with a message's signer and sequence number as its signature holds (valid_rates.py)
SignedHook = Callable[[str, int], None]


@dataclass(frozen=True)
class VerifiedRegistration:
    """A registration whose signature checked out (``node_id`` None: no identity checked)."""

    node_id: str | None
    public_key: str | None
    seq: int
    operator_token: str | None


@dataclass(frozen=True)
class Grant:
    """What an admitted registration agreed: the operator, the sequence number taken."""

    operator: str | None
    seq: int


class NodeAuthenticator(Protocol):
    def check_registration(
        self, headers: Mapping[str, str], body: bytes
    ) -> VerifiedRegistration: ...

    async def admit_registration(
        self, reg: VerifiedRegistration, check: Callable[[], Awaitable[None]] | None = None
    ) -> Grant: ...

    async def check_message(
        self, kind: MessageKind, target: str, headers: Mapping[str, str], body: bytes,
        tries: CredentialTries | None = None, signed: SignedHook | None = None,
    ) -> None: ...  # fmt: skip

    def known_signer(self, headers: Mapping[str, str]) -> str | None:
        """The node id of a registration's signer whose key this process already holds
        (``api.register_node`` lets a node registering again past its address's counts);
        ``None`` for anything else, and always from one that checks no signatures."""
        ...


def revocation_signed(
    signer: RevocationSigner | None, kind: MessageKind, headers: Mapping[str, str], exc: Revoked
) -> Revoked:
    """``exc``, refusing the node's message of ``kind`` sent with ``headers`` (its signature
    verified before any revocation is found), with the registry's signature of the refusal
    in its ``revocation`` field (and the chain of rotations that lead to its key,
    :meth:`RevocationSigner.fields`); as it was without a ``signer`` (the lifespan has not run)
    or a node's signed headers (tests' plain ids). Raised by the routes as
    ``except Revoked as exc: raise revocation_signed(...) from None``: a ``try`` costs a
    heartbeat about 0.01-0.03 µs, a ``contextlib.contextmanager`` 1.7-2.0 µs (measured
    2026-12-05, ``timeit`` of an empty call, 3 × 5 × 200,000, the shared box at load 6)."""
    request = revoked_request(kind, headers) if signer is not None else None
    if signer is None or request is None or "revocation" in exc.extra:
        return exc
    fields = signer.fields(request, exc.message)  # its chain of rotations too, if any
    return Revoked(exc.message, param=exc.param, **exc.extra, **fields)


def token_refusal_signed(
    signer: RevocationSigner | None, headers: Mapping[str, str], exc: OperatorTokenRefused
) -> OperatorTokenRefused:
    """``exc`` (a registration's operator token unknown, or none), with the registry's
    signature of the refusal over that registration (sent with ``headers``, its signature
    verified first) in its ``token_refusal`` field (``core/revocation_proof.py``, found
    2026-12-05, signed401: an unsigned one, forged by whoever answers at the registry's URL,
    would stop for good a node that knows the registry's key); as :func:`revocation_signed`."""
    request = revoked_request(MessageKind.REGISTER, headers) if signer is not None else None
    if signer is None or request is None or "token_refusal" in exc.extra:
        return exc
    fields = signer.fields(request, exc.message, token=True)
    return OperatorTokenRefused(exc.message, param=exc.param, **exc.extra, **fields)


def _other_operator(node_id: str) -> Forbidden:
    return Forbidden(
        f"node key {node_id} is registered to another operator: a key stays with the "
        "operator that first registered it. To move a node, the registry's admin revokes this "
        "key (`llm-mesh registry nodes revoke NODE_ID`) and the node makes a new one "
        "(`llm-mesh node keys init` in a new home) under the new operator's token",
        reason="node_key_other_operator",
    )


def _seq_error(result: SeqResult, node_id: str) -> MeshError:
    if result is SeqResult.STALE:
        return ReplayedMessage(
            f"replayed or out-of-order message from {node_id}: its sequence number is not "
            "greater than the last one seen"
        )
    if result is SeqResult.REVOKED:
        return Revoked(f"node {node_id} is revoked")
    if result is SeqResult.KEY_MISMATCH:
        return NodeIdMismatch(f"node id {node_id} belongs to another key")
    if result is SeqResult.OTHER_OPERATOR:
        return _other_operator(node_id)
    return UnknownNode(f"node {node_id!r} is not registered; register again", param="node_id")


def check_signed_token(signed: str | None, token: str | None) -> None:
    """401 unless the operator token sent is the one the node signed for (``signed``: its
    SHA-256 in the signed body, ``operator_token_sha256``): a registration relayed with
    another operator's token claims nothing (docs/security.md, attack32b). None: an older
    node."""
    if signed is None:
        return
    if token is None or not hmac.compare_digest(hash_secret(token), signed):
        raise InvalidCredential(
            "the operator token is not the one this registration was signed with "
            "(operator_token_sha256): it was replaced on the way"
        )


class SignedNodeAuth:
    """Every node message signed, every registration with an operator token."""

    def __init__(
        self,
        store: Store,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_CLOCK_SKEW_S,
    ) -> None:
        self.store = store
        self.wall_clock = wall_clock
        self.max_skew_s = max_skew_s
        self._keys: dict[str, Ed25519PublicKey] = {}

    def check_registration(self, headers: Mapping[str, str], body: bytes) -> VerifiedRegistration:
        msg = parse_signed(headers)
        if msg.public_key is None:
            raise BadSignature(f"a registration carries the node's public key in {HDR_PUBLIC_KEY}")
        key = decode_public_key(msg.public_key)
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        problem = key_problem(raw)  # found 2026-12-05: a small-order key registered
        if problem is not None:
            raise BadSignature(f"{HDR_PUBLIC_KEY} is no node key: {problem}")
        verify_signed(
            msg, key, MessageKind.REGISTER, msg.signer, body, self.wall_clock(), self.max_skew_s
        )
        own_id = node_id_for(raw)
        if msg.signer != own_id:
            raise NodeIdMismatch(
                f"node id {msg.signer!r} is not the id of this key ({own_id}): "
                "a node's id is derived from its public key"
            )
        return VerifiedRegistration(
            node_id=own_id,
            public_key=msg.public_key,
            seq=msg.seq,
            operator_token=(headers.get(HDR_OPERATOR_TOKEN) or "").strip() or None,
        )

    def known_signer(self, headers: Mapping[str, str]) -> str | None:
        """The node id of a registration's signer when this process already holds that id's
        key (loaded from the store at start, read for a message, or claimed here) and the
        registration carries that very key: a node registering again (``api.register_node``
        lets it past its address's counts, ``admin.CredentialTries.before_reregister``).
        Nothing verified, nothing read: ``None`` for anything else."""
        try:
            msg = parse_signed(headers)
            held = self._keys.get(msg.signer)
            if held is None or msg.public_key is None:
                return None
            sent = decode_public_key(msg.public_key)
        except (MeshError, ValueError):
            return None
        raw = PublicFormat.Raw
        if sent.public_bytes(Encoding.Raw, raw) != held.public_bytes(Encoding.Raw, raw):
            return None
        return msg.signer

    async def admit_registration(
        self, reg: VerifiedRegistration, check: Callable[[], Awaitable[None]] | None = None
    ) -> Grant:
        """The operator token checked, then ``check`` (what else must pass: the node's
        address), then the node's key claimed for the operator: a registration refused
        anywhere before the claim changes nothing (docs/security.md)."""
        if reg.node_id is None or reg.public_key is None:
            raise BadSignature("registration is not signed")
        if reg.operator_token is None:
            raise OperatorTokenRefused(
                "registering needs an operator token (--operator-token, operator_token in "
                "node.toml, or LLM_MESH_OPERATOR_TOKEN); the registry's admin makes one with "
                "`llm-mesh registry operators add NAME`"
            )
        operator = await self.store.operator_by_token(hash_secret(reg.operator_token))
        if operator is None:  # found 2026-12-05 (newuser32): the bare words, at every try
            raise OperatorTokenRefused(
                "unknown operator token: not one this registry made (a typo, or another "
                "registry's or home's); its admin makes one with "
                "`llm-mesh registry operators add NAME`"
            )
        if operator.revoked_at is not None:
            raise Revoked(f"operator {operator.name} is revoked")
        await self._not_starting_over(reg.node_id, operator.name)
        if check is not None:
            await check()
        result = await self.store.claim_node_key(
            reg.node_id, reg.public_key, operator.name, reg.seq, datetime.now(timezone.utc)
        )
        if result is not SeqResult.OK:
            raise _seq_error(result, reg.node_id)
        self._keys[reg.node_id] = decode_public_key(reg.public_key)
        return Grant(operator=operator.name, seq=reg.seq)

    async def _not_starting_over(self, node_id: str, operator: str) -> None:
        """403 for a key new to the registry while one of the operator's nodes is
        quarantined: quarantines and held earnings are per node id, and a fresh key is a
        fresh id (docs/security.md, "Quality control"). Known keys re-register as before,
        under their own operator only: a key another operator's token presents is refused
        (else a quarantined node re-registered under a second operator would free the first
        of its hold, and its held balance would be released to the second); the store's
        claim checks it again, atomically."""
        known = await self.store.get_node_key(node_id)
        if known is not None:
            if known.operator != operator and known.revoked_at is None:
                raise _other_operator(node_id)  # not naming the owner
            return
        quarantined = await self.store.quarantined_nodes_of(operator)
        if quarantined:
            raise Forbidden(
                f"operator {operator} has a node under quarantine ({quarantined[0]}, failed a "
                "canary probe): it registers no new node key until the registry's admin clears "
                "it (`llm-mesh registry nodes clear`), or revokes the operator",
                reason="operator_quarantined",
            )

    async def load_keys(self, node_ids: Iterable[str], chunk: int = 5000) -> int:
        """Read the keys of ``node_ids`` into memory now, in a few queries (at start-up,
        for the nodes the store knows: else each one's first heartbeat waits on a look-up).
        A store without ``get_node_keys`` is left to those look-ups. Answers how many."""
        get = getattr(self.store, "get_node_keys", None)
        if not callable(get):
            return 0
        ids = [i for i in node_ids if i not in self._keys]
        for start in range(0, len(ids), chunk):
            found: Mapping[str, NodeKeyRecord] = await get(ids[start : start + chunk])
            for node_id, rec in found.items():
                self._keys.setdefault(node_id, decode_public_key(rec.public_key))
        return len(ids)

    def forget(self, node_id: str) -> None:
        """Drop the key kept of ``node_id`` (gone for long: ``node_forget.py``); the store
        still holds it, and its next message reads it from there."""
        self._keys.pop(node_id, None)

    async def _key(self, node_id: str) -> Ed25519PublicKey | None:
        key = self._keys.get(node_id)
        if key is None:
            rec = await self.store.get_node_key(node_id)
            if rec is None:
                return None
            key = self._keys[node_id] = decode_public_key(rec.public_key)
        return key

    async def check_message(
        self, kind: MessageKind, target: str, headers: Mapping[str, str], body: bytes,
        tries: CredentialTries | None = None, signed: SignedHook | None = None,
    ) -> None:  # fmt: skip
        """Raise unless ``headers`` sign ``body`` as a ``kind`` of ``target``. A signer whose
        key is not in memory is looked up in the store, before any signature is checked: with
        ``tries`` (the routes) at most ``admin.UNKNOWN_NODE_IDS_PER_MIN`` unknown ones a minute
        from an address, then 429 before the read (found 2026-12-06, attack35b: made-up ids
        read the store per request, without end); a known key is neither read nor counted.
        A signature that does not hold (or is stale, replayed, for another id) is counted
        with ``tries`` too, and past the counts nothing is verified but what comes from the
        node's own address (``CredentialTries.before_verify``, trust37) or carries its beat
        token (``X-Mesh-Beat-Token``, ``registry/beat_tokens.py``). ``signed`` is called
        with the signer and the sequence number as soon as the signature holds, with no
        await since the verify, before the sequence number is checked (the route's count of
        valid messages, ``registry/valid_rates.py``)."""
        msg = parse_signed(headers)
        if msg.signer in self._keys or tries is None:
            key = await self._key(msg.signer)
        else:
            scope = tries.before("node-id", UNKNOWN_NODE_IDS, "unknown node ids")
            key = await self._key(msg.signer)
            if key is None:
                tries.wrong(scope, UNKNOWN_NODE_IDS)
        if key is None:
            if msg.signer == target:
                raise UnknownNode(
                    f"node {target!r} is not registered; register again", param="node_id"
                )
            raise BadSignature(f"unknown signer {msg.signer!r}")
        if tries is None:
            verify_signed(msg, key, kind, target, body, self.wall_clock(), self.max_skew_s)
            if signed is not None:
                signed(msg.signer, msg.seq)
            result = await self.store.advance_node_seq(msg.signer, msg.seq)
            if result is not SeqResult.OK:
                raise _seq_error(result, msg.signer)
            return
        # a known id's forged signatures: bounded per address and in all, its own address
        # still verified (found 2026-12-06, trust36; closed 2026-12-06, trust37)
        token = headers.get(HDR_BEAT_TOKEN)  # past the counts: the node's own (beattoken38)
        counted = tries.before_verify(msg.signer, token)
        try:
            verify_signed(msg, key, kind, target, body, self.wall_clock(), self.max_skew_s)
            if signed is not None:
                signed(msg.signer, msg.seq)
            result = await self.store.advance_node_seq(msg.signer, msg.seq)
            if result is not SeqResult.OK:
                raise _seq_error(result, msg.signer)
        except SIGNATURE_REFUSALS:
            tries.failed_verify(counted)
            raise
        tries.verified(msg.signer, token)
