"""Checking a receipt offline: the registry's countersignature, every node's signature.

Pure (the CLI ``llm-mesh receipt verify`` reads the input and the keys; this decides).
What it accepts (:func:`find_receipt`): a receipt (``mesh.receipt``), a whole answer
(JSON with ``mesh.receipt``), a stream's final chunk (the last with ``mesh``: its
``"choices": []`` chunk, or without ``include_usage`` its ``finish_reason`` chunk; alone,
its text is not checked; a completions stream's chunk as its ``data:`` line: as bare JSON
it has a whole answer's shape and is read as one, and a text that does not hash says
so), a whole stream as its SSE text
(``data:`` lines), or the ``X-Mesh-Receipt`` header's value (base64url of the receipt's
JSON; ``X-Mesh-Receipt: `` before it is allowed).

What it checks (:func:`verify`), each failure a :class:`~LLM_Mesh.core.receipt.ReceiptError`
naming its reason:

``malformed``        the input holds no receipt, or a field has the wrong type or size
``version``          a receipt version this verifier does not know
``unknown_registry`` no given registry key has the receipt's ``registry_id``
``gateway_signature`` the registry key's signature does not verify (any field altered)
``receipt_hash``     the receipt's stated ``receipt_hash`` is not its bytes' hash
``node_key``         a signed part's key does not derive its ``node_id``
``node_signature``   a signed part's node signature does not verify, or a ``cut`` part's
                     signature of its prompt count (the count its node signed as its
                     stream opened: ``core/prompt_count.py``, since 2026-12-06)
``totals``           the parts do not add up to the request's completion tokens (or,
                     for one part, its prompt tokens and output hash)
``request_id``       the answer around the receipt names another request (a receipt
                     moved from another answer), or ``--request-id`` does. A version-2
                     receipt names its request by its ``request_id`` (the gateway-made id
                     the nodes got) and, when the client chose its own id, by that id's
                     hash (``client_id_hash``, in the registry's signature): the answer's
                     ``mesh.receipt_request_id`` must be the first, its ``mesh.request_id``
                     and ``--request-id`` either. A version-1 receipt signs no client id:
                     the client's id is checked only through the answer's mapping
``usage``            the answer's ``usage`` differs from the receipt's counts
``output_sha256``    the answer's text (or ``--output``) does not hash to the receipt's
``unsigned_part``    (only when required) a part the node did not sign
``amounts``          (version 3 or 4, settled) the parts' amounts do not add up to the
                     cost, a part's fee is not ⌈amount × fee_bps / 10000⌉ (version 3:
                     ⌊…⌋), or a part nobody pays (``invalid``) has an amount
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.answer_text import answer_text, chunk_text, output_sha256
from LLM_Mesh.core.b64url import ed25519_key, ed25519_key_problem
from LLM_Mesh.core.ed25519 import PublicKey
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import node_id_for
from LLM_Mesh.core.pricing import network_fee, network_fee_down
from LLM_Mesh.core.printable import log_text
from LLM_Mesh.core.receipt import (
    HDR_RECEIPT,
    MAX_PARTS,
    PAYERS,
    VERSION,
    VERSIONS,
    Money,
    Part,
    PartStatus,
    Receipt,
    ReceiptError,
    node_prompt_bytes,
    node_receipt_bytes,
    unb64url,
)
from LLM_Mesh.core.receipt_old import OldReceipt

__all__ = [
    "MAX_INPUT",
    "Found",
    "decode_header",
    "find_receipt",
    "parse_keys",
    "parse_receipt",
    "saved_form",
    "verify",
]

# what ``saved_form`` keeps of an answer's ``mesh``: the receipt and the ids that map it
_SAVED = ("receipt", "request_id", "receipt_request_id", "ledger_request_id", "simulated")

MAX_INPUT = 64 * 1024 * 1024  # the most of an input looked at: a saved answer, a receipt


def _malformed(message: str) -> ReceiptError:
    return ReceiptError("malformed", message)


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise _malformed(f"{name} is not a string")
    return value


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _malformed(f"{name} is not a whole number")
    return value


def parse_receipt(obj: Any) -> Receipt:
    """A :class:`~LLM_Mesh.core.receipt.Receipt` from its wire form (not yet verified)."""
    if not isinstance(obj, dict):
        raise _malformed("a receipt is a JSON object")
    version = obj.get("v")
    if version not in VERSIONS or isinstance(version, bool):
        raise ReceiptError("version", f"receipt version {version!r} (this verifier: 1 to 4)")
    client = _text(obj, "client_id_hash") if version >= 2 else ""
    if version == 1 and "client_id_hash" in obj:
        raise _malformed("a version-1 receipt has no client_id_hash")
    money = _money(obj, version)
    raw_parts = obj.get("parts")
    if not isinstance(raw_parts, list) or not 1 <= len(raw_parts) <= MAX_PARTS:
        raise _malformed(f"parts is not a list of 1 to {MAX_PARTS} parts")
    parts: list[Part] = []
    for raw in raw_parts:
        if not isinstance(raw, dict):
            raise _malformed("a part is not an object")
        try:
            status = PartStatus(raw.get("status"))
        except ValueError:
            raise _malformed(f"unknown part status {raw.get('status')!r}") from None
        reason = raw.get("reason", "")
        if not isinstance(reason, str):
            raise _malformed("reason is not a string")
        if money is None and ("amount" in raw or "fee" in raw):  # not signed: not believed
            raise _malformed("a part of a receipt that signs no amounts has an amount")
        amount = None if money is None else _count(raw, "amount")
        fee = None if money is None else _count(raw, "fee")
        parts.append(Part(
            _text(raw, "node_id"), _text(raw, "node_key"), status, _count(raw, "prompt_tokens"),
            _count(raw, "completion_tokens"), _text(raw, "output_sha256"),
            _text(raw, "node_signature"), reason, amount, fee,
        ))  # fmt: skip
    made = Receipt if version == VERSION else OldReceipt  # (an old one: verified, never signed)
    receipt = made(
        _text(obj, "registry_id"), _text(obj, "request_id"), _text(obj, "model"),
        _count(obj, "time_ms"), _count(obj, "prompt_tokens"), _count(obj, "completion_tokens"),
        _text(obj, "output_sha256"), tuple(parts), client, money,
        signature=_text(obj, "signature"), version=version,
    )  # fmt: skip
    try:
        receipt.signed_bytes()
    except ValueError as exc:
        raise _malformed(str(exc)) from None
    return receipt


_MONEY = ("payer", "fee_bps", "cost")


def _money(obj: dict[str, Any], version: int) -> Money | None:
    """A version-3 or -4 receipt's :class:`~LLM_Mesh.core.receipt.Money` (``None``:
    ``settled`` false); older versions sign none, so one that states amounts is refused."""
    if version < 3:
        if "settled" in obj or any(name in obj for name in _MONEY):
            raise _malformed(f"a version-{version} receipt signs no amounts")
        return None
    settled = obj.get("settled")
    if not isinstance(settled, bool):
        raise _malformed("settled is not true or false")
    if not settled:
        if any(name in obj for name in _MONEY):
            raise _malformed("a receipt not settled has no payer, fee_bps or cost")
        return None
    payer = _text(obj, "payer")
    if payer not in PAYERS:
        raise _malformed(f"payer is not one of {', '.join(PAYERS)}")
    return Money(payer, _count(obj, "fee_bps"), _count(obj, "cost"))


def _check_amounts(receipt: Receipt) -> None:
    """A settled receipt's amounts agree with each other (``amounts``): each part's fee
    is ``fee_bps`` of its amount, rounded up (version 4), or down (version 3, made before
    2026-12-06: ``pricing.network_fee_down``)."""
    money = receipt.money
    if money is None:
        return
    fee_of = network_fee_down if receipt.version == 3 else network_fee
    for i, p in enumerate(receipt.parts):
        amount, fee = p.amount or 0, p.fee or 0
        if fee != fee_of(amount, money.fee_bps):
            raise ReceiptError(
                "amounts", f"part {i}: fee {fee} is not {money.fee_bps} bps of amount {amount}"
            )
        if amount and not p.payable:
            raise ReceiptError("amounts", f"part {i} is {p.status.value} and charged {amount}")
    total = sum(p.amount or 0 for p in receipt.parts)
    if total != money.cost:
        raise ReceiptError("amounts", f"the parts' amounts add up to {total}, not {money.cost}")


def decode_header(value: str) -> Any:
    """The receipt JSON of an ``X-Mesh-Receipt`` value (``ReceiptError`` when garbled)."""
    try:
        return json.loads(unb64url(value.strip()))
    except RecursionError:
        raise _malformed(f"the {HDR_RECEIPT} value is JSON nested too deep to read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed(f"the {HDR_RECEIPT} value is not base64url JSON ({exc})") from None


@dataclass
class Found:
    """A receipt and what the input around it says (``None``: the input did not say)."""

    receipt: Any
    request_id: str | None = None  # mesh.request_id: the client's id when it chose one
    usage: tuple[int, int] | None = None
    output: str | None = None  # the answer's whole text, when the input holds it
    receipt_request_id: str | None = None  # mesh.receipt_request_id: the id the nodes got
    simulated: bool = False  # mesh.simulated: the answer's word (the receipt signs no engine)
    # mesh.ledger_request_id: the ledger's id of the request when the client named it
    ledger_request_id: str | None = None
    # a bare completions object: a whole answer, or a stream's final chunk saved alone (the
    # same shape); its text's mismatch says how to give a chunk instead
    maybe_chunk: bool = False


def _usage(obj: dict[str, Any]) -> tuple[int, int] | None:
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (pt, ct) if isinstance(pt, int) and isinstance(ct, int) else None


def _from_object(obj: Any, output: str | None = None, *, chunk: bool = False) -> Found:
    if not isinstance(obj, dict):
        raise _malformed("the input is not a JSON object")
    if "parts" in obj and "signature" in obj and "mesh" not in obj and "choices" not in obj:
        return Found(obj)  # a bare receipt (an answer's body may hold such fields: a node's)
    mesh = obj.get("mesh")
    if not isinstance(mesh, dict) or "receipt" not in mesh:
        raise _malformed(_no_receipt(obj, "the input holds no receipt (no mesh.receipt)"))
    rid, nid = mesh.get("request_id"), mesh.get("receipt_request_id")
    lid = mesh.get("ledger_request_id")
    maybe_chunk = False
    if output is None and not chunk and obj.get("choices") and not _is_chunk(obj):
        output = answer_text(obj)
        maybe_chunk = obj.get("object") == "text_completion"
    return Found(
        mesh["receipt"], rid if isinstance(rid, str) else None, _usage(obj), output,
        nid if isinstance(nid, str) else None, mesh.get("simulated") is True,
        lid if isinstance(lid, str) else None, maybe_chunk,
    )  # fmt: skip


def _no_receipt(obj: dict[str, Any], why: str) -> str:
    """``why``, or, for an error the gateway answered (OpenAI's ``{"error": {...}}``), that
    error: a refused or failed request carries no receipt, and saying only "holds no
    receipt" read as a receipt missing from an answer (found 2026-12-06, newuser38: a 429
    ``overloaded`` saved by the README's ``curl ... > answer.json``)."""
    error = obj.get("error")
    if not isinstance(error, dict):
        return why
    code, message = error.get("code"), error.get("message")
    said = ": ".join(log_text(v, 300) for v in (code, message) if isinstance(v, str) and v)
    return (
        f"the input is an error the gateway answered ({said or 'no message'}), not an "
        "answer: an error carries no receipt (an answer does: check one)"
    )


def _is_chunk(obj: dict[str, Any]) -> bool:
    """A chat stream's chunk (its choice has ``delta``): its text is not the answer's (a
    completions stream's chunk cannot be told from a whole answer: give its ``data:`` line)."""
    first = obj["choices"][0] if isinstance(obj["choices"], list) else None
    return isinstance(first, dict) and "delta" in first


def _from_sse(lines: Iterable[str]) -> Found:
    # the text of every chunk that has choices; the final chunk (the last with mesh.receipt)
    # has choices too unless the client asked include_usage (it carries the answer's end)
    parts: list[str] = []
    final: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None  # the stream's error event, if it sent one
    for line in lines:
        payload = line[5:].strip() if line.startswith("data:") else ""
        if not payload.startswith("{"):
            continue
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):  # (too deep: found 2026-12-04)
            raise _malformed("a data: line of the stream is not JSON") from None
        if not isinstance(obj, dict):
            continue
        if obj.get("choices"):
            parts.append(chunk_text(obj))
        if isinstance(obj.get("mesh"), dict) and "receipt" in obj["mesh"]:
            final = obj
        elif isinstance(obj.get("error"), dict):
            failed = obj
    if final is None:
        why = "the stream holds no final chunk with mesh.receipt"
        raise _malformed(why if failed is None else _no_receipt(failed, why))
    # only the final chunk given: the text is not known (not "")
    alone = len(parts) == (1 if final.get("choices") else 0)
    return _from_object(final, None if alone else "".join(parts), chunk=True)


def saved_form(mesh: Any) -> dict[str, Any] | None:
    """What ``llm-mesh ask --save`` writes of an answer whose ``mesh`` is given (a whole
    answer's or a stream's final chunk's): ``{"mesh": {...}}`` with only its receipt and
    the ids mapping it to the request (no prompt, no answer text: :func:`find_receipt`
    reads it as an answer whose text is not known); None if it carries no receipt."""
    if not isinstance(mesh, dict) or not isinstance(mesh.get("receipt"), dict):
        return None
    return {"mesh": {k: mesh[k] for k in _SAVED if k in mesh}}


def find_receipt(text: str) -> Found:
    """The receipt in ``text`` (see the module docstring for what is accepted)."""
    if len(text) > MAX_INPUT:
        raise _malformed("the input is larger than 64 MiB")
    body = text.strip()
    if body.lower().startswith(HDR_RECEIPT.lower() + ":"):
        body = body[len(HDR_RECEIPT) + 1 :].strip()
    if body.startswith("data:") or "\ndata:" in body[:4096]:
        return _from_sse(body.splitlines())
    if body.startswith("{"):
        try:
            return _from_object(json.loads(body))
        except RecursionError:  # found 2026-12-04: a traceback, not "malformed"
            raise _malformed("the input is JSON nested too deep to read") from None
        except ValueError as exc:
            if isinstance(exc, ReceiptError):
                raise
            raise _malformed(f"the input is not JSON ({exc})") from None
    return Found(decode_header(body))


def parse_keys(texts: Iterable[str]) -> dict[str, bytes]:
    """Registry keys (raw bytes) by registry id, each in the one spelling every key option
    takes (:func:`~LLM_Mesh.core.b64url.ed25519_key`: base64 or base64url of the 32 raw
    bytes). Whether one is a key the receipt rule takes is :func:`verify`'s to say, for
    the receipt it would check (``gateway_signature``)."""
    out: dict[str, bytes] = {}
    for text in texts:
        raw = ed25519_key(text)
        if raw is None:  # found 2026-12-04: receipts took spellings `ledger verify` refuses
            raise ValueError(ed25519_key_problem(text))
        out[registry_id_for(raw)] = raw
    return out


def _verify_part(receipt: Receipt, i: int, part: Part) -> None:
    try:
        raw = unb64url(part.node_key)
        key = PublicKey(raw)  # the gateway's rule (core/ed25519.py), for the same answer
    except ValueError as exc:
        raise ReceiptError(
            "node_key", f"part {i}: node_key is not an Ed25519 key ({exc})"
        ) from None
    if node_id_for(raw) != part.node_id:
        raise ReceiptError(
            "node_key", f"part {i}: the key's node id is {node_id_for(raw)}, not {part.node_id}"
        )
    if part.status is PartStatus.CUT:  # its prompt count, signed as its stream opened
        data = node_prompt_bytes(receipt.registry_id, part.node_id, receipt.request_id,
                                 receipt.model, part.prompt_tokens)  # fmt: skip
    else:
        data = node_receipt_bytes(receipt.registry_id, part.node_id, receipt.request_id,
                                  receipt.model, part.prompt_tokens, part.completion_tokens,
                                  part.output_sha256)  # fmt: skip
    try:
        valid = key.verify(unb64url(part.node_signature), data)
    except ValueError:
        valid = False
    if not valid:
        raise ReceiptError(
            "node_signature", f"part {i}: the signature of node {part.node_id} does not verify"
        ) from None


def _not_for(receipt: Receipt, who: str, named: str) -> ReceiptError:
    rid = receipt.request_id
    if receipt.version == 1:
        return ReceiptError("request_id", f"{who} {named!r}, the receipt {rid!r}")
    if receipt.client_id_hash:
        why = (f"the client's own id the registry countersigned for it is another "
               f"(its client_id_hash is not the hash of {named!r})")  # fmt: skip
    else:
        why = "whose id the gateway made (the registry countersigned no client's own id)"
    return ReceiptError("request_id", f"{who} {named!r}: the receipt is for request {rid!r}, {why}")


def _check_request(receipt: Receipt, found: Found, request_id: str | None) -> None:
    """The ``request_id`` checks (see the module docstring)."""
    if receipt.version >= 2:  # the client's id, if any, is signed: no answer's word needed
        mapped = found.receipt_request_id
        if mapped is not None and mapped != receipt.request_id:
            raise ReceiptError(
                "request_id",
                f"the answer says receipt_request_id {mapped!r}, the receipt {receipt.request_id!r}",
            )
        if found.request_id is not None and not receipt.names(found.request_id):
            raise _not_for(receipt, "the answer says request_id", found.request_id)
        if request_id is not None and not receipt.names(request_id):
            raise _not_for(receipt, "the request_id asked for is", request_id)
        return
    # version 1: the answer's id for the receipt; ``request_id`` may name it or the client's
    # own id the answer maps to it (that mapping is the answer's word: nothing signs it)
    answers = found.receipt_request_id or found.request_id
    if request_id is not None and request_id == found.request_id:
        request_id = answers
    # the answer's word first (a moved mapping is the answer's fault), then the id asked for
    for who, want in (
        ("the answer says request_id", answers),
        ("the request_id asked for is", request_id),
    ):
        if want is not None and want != receipt.request_id:
            raise _not_for(receipt, who, want)


def verify(
    found: Found,
    keys: dict[str, bytes],
    *,
    output: str | None = None,
    request_id: str | None = None,
    require_signed: bool = False,
) -> Receipt:
    """The receipt when every check passes (see the module docstring); else raise."""
    receipt = parse_receipt(found.receipt)
    raw_key = keys.get(receipt.registry_id)
    if raw_key is None:
        raise ReceiptError(
            "unknown_registry",
            f"no registry key given has id {receipt.registry_id} (keys given: {len(keys)})",
        )
    data = receipt.signed_bytes()
    try:  # the rule the gateway's own checks follow (core/ed25519.py)
        valid = PublicKey(raw_key).verify(unb64url(receipt.signature), data)
    except ValueError:  # no key the rule takes, or a signature that is not base64url
        valid = False
    if not valid:
        raise ReceiptError(
            "gateway_signature",
            f"the registry's signature does not verify with the key of {receipt.registry_id}",
        )
    stated = found.receipt.get("receipt_hash") if isinstance(found.receipt, dict) else None
    if stated is not None and stated != hashlib.sha256(data).hexdigest():
        raise ReceiptError("receipt_hash", "receipt_hash is not the hash of the receipt")
    for i, part in enumerate(receipt.parts):
        if part.status is PartStatus.SIGNED or (
            part.status is PartStatus.CUT and part.node_signature
        ):
            _verify_part(receipt, i, part)
        if part.status is not PartStatus.SIGNED and require_signed:
            raise ReceiptError(
                "unsigned_part", f"part {i} (node {part.node_id}) is {part.status.value}"
            )
    parts = receipt.parts
    if sum(p.completion_tokens for p in parts) != receipt.completion_tokens or (
        len(parts) == 1
        and (parts[0].prompt_tokens, parts[0].output_sha256)
        != (receipt.prompt_tokens, receipt.output_sha256)
    ):
        raise ReceiptError("totals", "the parts do not add up to the receipt's totals")
    _check_amounts(receipt)
    _check_request(receipt, found, request_id)
    counts = (receipt.prompt_tokens, receipt.completion_tokens)
    if found.usage is not None and found.usage != counts:
        raise ReceiptError(
            "usage", f"the answer says usage {found.usage!r}, the receipt {counts!r}"
        )
    for text in (found.output, output):
        if text is not None and output_sha256(text) != receipt.output_sha256:
            hint = _CHUNK_HINT if text is found.output and found.maybe_chunk else ""
            raise ReceiptError("output_sha256", "the output does not hash to the receipt's" + hint)
    return receipt


_CHUNK_HINT = (
    " (read as a whole completion; a completions stream's final chunk saved alone has the "
    "same shape: give it as the stream sent it, its 'data: {...}' line (its text then "
    "unchecked), the whole stream, or --output FILE with the answer's text)"
)
