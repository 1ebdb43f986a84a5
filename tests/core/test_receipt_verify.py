"""core/receipt_verify.py: every way a receipt can be wrong is found offline, and named."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.b64url import ed25519_key_problem
from LLM_Mesh.core.gateway_auth import registry_id_for
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.receipt import (
    ReceiptError,
    ReceiptSigner,
    b64url,
    client_id_hash,
    encode_header,
)
from LLM_Mesh.core.receipt_verify import Found, decode_header, find_receipt, parse_keys, verify
from tests.core.key_forms import KEY_FORMS
from tests.core.receipt_verify_fixtures import (
    KEYS,
    NODE_A,
    NODE_B,
    NODES_ID,
    REGISTRY_KEY,
    SIGNER,
    STD_OK,
    TEXT,
    answer,
    make_receipt,
    reason,
    resign,
)

OTHER_REGISTRY = Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37)))


def test_an_honest_receipt_verifies_in_every_form() -> None:
    r = make_receipt()
    assert reason(Found(r)) == "valid"
    assert reason(json.dumps(r)) == "valid"
    assert reason(json.dumps(answer(r))) == "valid"
    assert reason(encode_header(r)) == "valid"
    assert reason("X-Mesh-Receipt: " + encode_header(r) + "\r\n") == "valid"
    receipt = verify(Found(r), KEYS, output=TEXT, request_id="req-1", require_signed=True)
    assert receipt.receipt_hash == r["receipt_hash"]


def test_the_whole_stream_as_sse_verifies_and_its_text_is_checked() -> None:
    r = make_receipt()
    base = {"id": "c", "object": "chat.completion.chunk"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": w}}]}
              for w in ("The answer ", "is 42.")]  # fmt: skip
    final = {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4},
             "mesh": {"request_id": "req-1", "receipt": r}}  # fmt: skip
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in [*chunks, final]) + "data: [DONE]\n\n"
    assert reason(sse) == "valid"
    assert reason(sse.replace("is 42", "is 43")) == "output_sha256"
    assert reason(f"data: {json.dumps(final)}\n\n") == "valid"  # the final chunk alone


def test_a_stream_whose_finish_chunk_carries_the_receipt_verifies_in_every_form() -> None:
    """Without ``include_usage`` the gateway's last chunk is the one with
    ``finish_reason`` (and ``usage``, ``mesh``; found 2026-12-05): alone, as its ``data:``
    line or its JSON, its empty text was checked as the answer's (``output_sha256``)."""
    r = make_receipt()
    base = {"id": "c", "object": "chat.completion.chunk"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": w}}]}
              for w in ("The answer ", "is 42.")]  # fmt: skip
    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 7, "completion_tokens": 4},
             "mesh": {"request_id": "req-1", "receipt": r}}  # fmt: skip
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in [*chunks, final]) + "data: [DONE]\n\n"
    assert reason(sse) == "valid"
    assert reason(sse.replace("is 42", "is 43")) == "output_sha256"
    assert reason(f"data: {json.dumps(final)}\n\n") == "valid"
    assert reason(json.dumps(final)) == "valid"
    text = [
        {
            "id": "c",
            "object": "text_completion",
            "choices": [{"index": 0, "text": "The answer is 42.", "finish_reason": None}],
        }
    ]
    done = {**final, "object": "text_completion",
            "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}  # fmt: skip
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in [*text, done])
    assert reason(sse) == "valid" and reason(f"data: {json.dumps(done)}\n\n") == "valid"
    assert reason(sse.replace("is 42", "is 43")) == "output_sha256"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("completion_tokens",), 5, "gateway_signature"),  # altered token counts
        (("prompt_tokens",), 1, "gateway_signature"),
        (("parts", 0, "completion_tokens"), 3, "gateway_signature"),
        (("output_sha256",), output_sha256("other"), "gateway_signature"),  # altered output hash
        (("parts", 0, "output_sha256"), output_sha256("other"), "gateway_signature"),
        (("request_id",), "req-2", "gateway_signature"),  # moved to another request
        (("parts", 0, "status"), "broken", "gateway_signature"),
        (("time_ms",), 1, "gateway_signature"),
        (("receipt_hash",), "00" * 32, "receipt_hash"),
        (("registry_id",), "registry-nobody", "unknown_registry"),
        (("v",), 5, "version"),
        (("v",), 3, "gateway_signature"),  # a version-4 receipt read as 3: another domain
        (("v",), True, "version"),
        (("v",), 2, "malformed"),  # a version-4 receipt read as version 2 (``settled``)
        (("v",), 1, "malformed"),  # ... as version 1 (client_id_hash)
        (("settled",), True, "malformed"),  # settled, with no payer nor amounts
        (("settled",), 0, "malformed"),
        (("client_id_hash",), client_id_hash("bob-session-7"), "gateway_signature"),
        (("client_id_hash",), "AB" * 32, "malformed"),
        (("client_id_hash",), "zz" * 32, "malformed"),
        (("client_id_hash",), None, "malformed"),
        (("parts", 0, "status"), "paid", "malformed"),
        (("completion_tokens",), -1, "malformed"),
        (("completion_tokens",), "4", "malformed"),
        (("output_sha256",), "AB" * 32, "malformed"),
        (("parts",), [], "malformed"),
    ],
)
def test_every_altered_field_is_caught_and_named(
    path: tuple[Any, ...], value: Any, expected: str
) -> None:
    r = copy.deepcopy(make_receipt())
    target: Any = r
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert reason(Found(r)) == expected


def test_a_node_signature_forged_with_another_key_is_caught() -> None:
    # a gateway (or anyone with the registry key) cannot make a node say what it did not:
    # a part re-signed by another node's key under this node's id fails the id check,
    # and a part with the right key but a forged signature fails the signature
    r = make_receipt()
    forged = make_receipt(parts=[(NODE_B, TEXT, 4, False)])
    part = forged["parts"][0]
    part["node_id"] = NODE_A.node_id
    resigned = resign(forged)
    assert reason(Found(resigned)) == "node_key"
    part["node_key"] = NODE_A.node_key
    assert reason(Found(resign(forged))) == "node_signature"
    assert reason(Found(r)) == "valid"


def test_altered_node_counts_resigned_by_the_gateway_fail_the_node_signature() -> None:
    r = make_receipt()
    r["parts"][0]["completion_tokens"] = 9
    r["completion_tokens"] = 9
    assert reason(Found(resign(r))) == "node_signature"


def test_a_countersignature_with_a_wrong_registry_key_is_caught() -> None:
    impostor = ReceiptSigner(OTHER_REGISTRY, lambda: 1.0)
    r = make_receipt(signer=impostor)
    assert reason(Found(r)) == "unknown_registry"  # its id is not a published key's
    r["registry_id"] = SIGNER.registry_id  # claims the real registry, signed by another key
    assert reason(Found(r)) == "gateway_signature"


def test_a_receipt_replayed_for_another_request_is_caught() -> None:
    r = make_receipt()
    assert reason(Found(r), request_id="req-2") == "request_id"
    other_answer = answer(r)
    other_answer["mesh"]["request_id"] = "req-2"  # a receipt pasted into another answer
    assert reason(json.dumps(other_answer)) == "request_id"


def test_an_old_version_1_receipt_still_verifies() -> None:
    """A receipt an earlier gateway made (version 1: no client id signed; made by the code
    before version 2 and kept as it was): it verifies, ``--request-id`` with the client's id
    through the answer's mapping, as before; what it cannot show is the link."""
    old = json.loads((Path(__file__).parent / "receipt_v1_answer.json").read_text())
    assert old["mesh"]["receipt"]["v"] == 1 and "client_id_hash" not in old["mesh"]["receipt"]
    text = json.dumps(old)
    receipt = verify(find_receipt(text), KEYS, request_id="alice-session-42", require_signed=True)
    assert (receipt.version, receipt.client_id_hash) == (1, "")
    assert receipt.to_json() == old["mesh"]["receipt"]  # read and written back unchanged
    assert reason(text, request_id=NODES_ID) == "valid"
    assert reason(Found(old["mesh"]["receipt"])) == "valid"
    # its checks are the old ones: another request id, a moved mapping, an altered field
    assert reason(text, request_id="bob-session-7") == "request_id"
    assert reason(Found(old["mesh"]["receipt"]), request_id="alice-session-42") == "request_id"
    moved = copy.deepcopy(old)
    moved["mesh"]["receipt_request_id"] = "req-" + "cd" * 16
    assert reason(json.dumps(moved)) == "request_id"
    altered = copy.deepcopy(old["mesh"]["receipt"])
    altered["completion_tokens"] = 5
    assert reason(Found(altered)) == "gateway_signature"
    upgraded = copy.deepcopy(old["mesh"]["receipt"])  # relabelled as version 2: not signed so
    upgraded.update(v=2, client_id_hash=client_id_hash("bob-session-7"))
    assert reason(Found(upgraded)) == "gateway_signature"


def test_the_answer_around_the_receipt_must_match_it() -> None:
    r = make_receipt()
    assert reason(json.dumps(answer(r, "The answer is 43."))) == "output_sha256"
    bad_usage = answer(r)
    bad_usage["usage"]["completion_tokens"] = 40
    assert reason(json.dumps(bad_usage)) == "usage"
    assert reason(Found(r), output="The answer is 43.") == "output_sha256"


def test_truncated_or_garbled_encodings_are_malformed() -> None:
    r = make_receipt()
    header = encode_header(r)
    assert reason(header[: len(header) // 2]) == "malformed"  # truncated header
    assert reason(header[:-1] + ("A" if header[-1] != "A" else "B")) in {
        "malformed", "gateway_signature", "receipt_hash"
    }  # fmt: skip
    assert reason("%%%not base64%%%") == "malformed"
    text = json.dumps(r)
    assert reason(text[:-10]) == "malformed"  # truncated JSON
    assert reason('{"choices": []}') == "malformed"  # no receipt
    assert reason("data: {not json}\n\n") == "malformed"
    assert reason("data: [DONE]\n\n") == "malformed"
    sig = r["signature"]
    r["signature"] = sig[:-8]  # a truncated signature
    assert reason(Found(r)) == "gateway_signature"
    r["signature"] = "!" + sig[1:]
    assert reason(Found(r)) == "gateway_signature"
    with pytest.raises(ReceiptError):
        decode_header("")


def test_a_continued_stream_with_a_broken_part_verifies_and_adds_up() -> None:
    r = make_receipt(
        "The answer is 42.",
        parts=[(NODE_B, "The answer ", 2, True), (NODE_A, "is 42.", 2, False)],
    )
    assert [p["status"] for p in r["parts"]] == ["broken", "signed"]
    assert reason(Found(r)) == "valid"
    assert reason(Found(r), require_signed=True) == "unsigned_part"
    r["parts"][0]["completion_tokens"] = 3  # parts no longer add up (re-signed)
    assert reason(Found(resign(r))) == "totals"


def test_parse_keys_takes_base64_and_base64url_and_refuses_others() -> None:
    raw = public_key_of(REGISTRY_KEY)
    std, url = base64.b64encode(raw).decode(), b64url(raw)
    assert parse_keys([std]).keys() == parse_keys([url]).keys() == KEYS.keys()
    for bad in ["AAAA", "not a key!"]:
        with pytest.raises(ValueError):
            parse_keys([bad])


def test_stream_text_skips_lines_that_are_not_one_json_object() -> None:
    from LLM_Mesh.core.answer_text import stream_text

    ok = 'data: {"choices": [{"delta": {"content": "a"}}]}'
    two = 'data: {"choices": [{"delta": {"content": "b"}}]},{"choices": [{"text": "c"}]}'
    assert stream_text([ok, ok]) == ("aa", 2)
    assert stream_text([ok, "data: {broken", ok, two, "data: [DONE]", ": ping"]) == ("aa", 2)


def test_inputs_without_a_receipt_say_so() -> None:
    def malformed(text: str) -> str:
        with pytest.raises(ReceiptError) as exc:
            find_receipt(text)
        assert exc.value.reason == "malformed"
        return str(exc.value)

    assert malformed('{"id": "x"}') == "the input holds no receipt (no mesh.receipt)"
    assert malformed('{"signature": "x"}') == "the input holds no receipt (no mesh.receipt)"
    assert malformed('{"id": ').startswith("the input is not JSON (")
    assert malformed("data: {nope\n\n") == "a data: line of the stream is not JSON"
    assert malformed("data: [DONE]\n\n") == "the stream holds no final chunk with mesh.receipt"
    assert malformed("%%%").startswith("the X-Mesh-Receipt value is not base64url JSON (")
    with pytest.raises(ReceiptError) as exc:
        find_receipt(" " * (64 * 1024 * 1024 + 1))
    assert str(exc.value) == "the input is larger than 64 MiB"


def test_an_input_of_exactly_64_mib_is_read() -> None:
    text = json.dumps(make_receipt())
    assert reason(text + " " * (64 * 1024 * 1024 - len(text))) == "valid"


def test_an_answer_with_odd_request_id_or_partial_usage_does_not_claim_them() -> None:
    """A non-string ``mesh.request_id`` or a ``usage`` without both counts says nothing."""
    r = make_receipt()
    odd = answer(r)
    odd["mesh"]["request_id"] = 5
    odd["usage"] = {"prompt_tokens": 99}
    found = find_receipt(json.dumps(odd))
    assert (found.request_id, found.usage) == (None, None)
    assert reason(found) == "valid"
    odd["usage"] = {"completion_tokens": 99}
    assert find_receipt(json.dumps(odd)).usage is None


def test_stream_forms_the_verifier_recognises() -> None:
    r = make_receipt()
    final = {"choices": [], "mesh": {"request_id": "req-1", "receipt": r}}
    tight = f"data:{json.dumps(final)}\n\n"  # no space after "data:"
    assert reason(tight) == "valid"
    after_comment = f": keep-alive\n\ndata: {json.dumps(final)}\n\n"
    assert reason(after_comment) == "valid"
    undeclared = f"data: [DONE]\n{json.dumps(final)}\n"  # JSON outside a data: line
    assert reason(undeclared) == "malformed"
    # a stream is recognised by a data: line starting in its first 4 KiB
    late = ": " + "x" * 4089 + f"\ndata: {json.dumps(final)}\n\n"
    assert late.index("\ndata:") == 4091
    assert reason(late) == "malformed"
    assert reason(late[1:]) == "valid"
    assert reason("X-Mesh-Receipt:" + encode_header(r)) == "valid"  # no space after the colon


def test_parsed_keys_verify_receipts_whatever_their_base64_spelling() -> None:
    raw = public_key_of(REGISTRY_KEY)
    url_padded = base64.urlsafe_b64encode(raw).decode()
    assert url_padded.endswith("=")
    for spelling in (url_padded, b64url(raw), base64.b64encode(raw).decode()):
        assert verify(Found(make_receipt()), parse_keys([spelling])).request_id == "req-1"
    odd = bytes([0xFB, 0xFF] * 16)  # base64 with '+' and '/', base64url with '-' and '_'
    std, url = base64.b64encode(odd).decode(), base64.urlsafe_b64encode(odd).decode()
    assert "+" in std and "/" in std and "-" in url and "_" in url
    assert parse_keys([std]).keys() == parse_keys([url]).keys()


def test_a_refused_key_is_quoted_up_to_60_characters() -> None:
    with pytest.raises(ValueError) as exc:
        parse_keys(["A!" * 40])
    assert str(exc.value).startswith(f"{'A!' * 30!r} is not an Ed25519 public key")
    with pytest.raises(ValueError) as exc:
        parse_keys(["QUFB" * 20])
    assert str(exc.value).startswith(f"{'QUFB' * 15!r} is not an Ed25519 public key")
    assert str(exc.value).endswith("80 characters, a key is 43 (and at most one '=')")


@pytest.mark.parametrize(
    ("text", "raw", "why"), [f[1:] for f in KEY_FORMS], ids=[f[0] for f in KEY_FORMS]
)
def test_receipt_keys_take_the_forms_every_key_option_takes_and_say_the_same(
    text: str, raw: bytes | None, why: str
) -> None:
    """The table every key reader shares (``tests/core/key_forms.py``): a key
    ``ed25519_key`` takes verifies receipts; one it refuses is refused with the very
    message ``ledger verify --key`` prints (found 2026-12-04: PEM, hex and a wrong length
    were told in other words, or not at all)."""
    if raw is not None:
        keys = parse_keys([text])
        assert list(keys) == [registry_id_for(raw)]
        return
    with pytest.raises(ValueError) as exc:
        parse_keys([STD_OK, text])
    assert str(exc.value) == ed25519_key_problem(text) and why in str(exc.value)


def test_an_answer_whose_body_also_has_a_receipts_fields_is_read_as_an_answer() -> None:
    """A node's answer body (the gateway passes it on, ``mesh`` aside) carrying another
    request's receipt fields at its top level (``parts``, ``signature``...): the input is
    still an answer, its receipt ``mesh.receipt`` and the answer around it checked (found
    2026-12-04: read as a bare receipt, so the old receipt verified and nothing of the
    answer was checked)."""
    old = make_receipt("old text", request_id="req-old")
    mine = make_receipt(request_id="req-mine")
    body = {**old, **answer(mine)}
    found = find_receipt(json.dumps(body))
    assert found.receipt == mine and found.request_id == "req-mine" and found.output == TEXT
    assert reason(json.dumps(body)) == "valid"
    forged = {**old, **answer(mine, text="old text")}  # the text is the old receipt's
    assert reason(json.dumps(forged)) == "output_sha256"


def test_the_answers_simulated_word_is_read_only_when_true() -> None:
    """``mesh.simulated`` (the answer's word: the receipt signs no engine) is carried only
    when it is ``true`` itself; the receipt request id only when it is a string."""
    body = answer(make_receipt())
    assert find_receipt(json.dumps(body)).simulated is False
    for word, simulated in [(True, True), ("true", False), (1, False), (False, False)]:
        said = copy.deepcopy(body)
        said["mesh"]["simulated"] = word
        assert find_receipt(json.dumps(said)).simulated is simulated, word
    said = copy.deepcopy(body)
    said["mesh"]["receipt_request_id"] = 7
    assert find_receipt(json.dumps(said)).receipt_request_id is None


def test_a_node_signature_that_is_not_base64url_fails_the_node_signature() -> None:
    """Signed again by the registry key: the garbled signature is not taken as valid."""
    r = make_receipt()
    for garbled in ("not base64!", "A"):
        r["parts"][0]["node_signature"] = garbled
        assert reason(Found(resign(r))) == "node_signature", garbled
