"""registry/relay.py's ``json_answer``: the body is ``strict_json.dumps`` of the answer and
its ``X-Mesh-Receipt`` header ``encode_header`` of the receipt, in every case (the receipt
encoded once for both was tried on 2026-12-05 for ~4 µs and taken out again at review:
more mechanism than the saving)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.receipt import HDR_RECEIPT, encode_header
from LLM_Mesh.registry import relay
from LLM_Mesh.registry.errors import json_response


def _answer(model: str = "mistral-7b", content: str = "hello") -> dict[str, Any]:
    receipt = {
        "v": 3, "registry_id": "registry-x", "request_id": "req-1", "client_id_hash": "",
        "model": model, "time_ms": 1764900000123, "prompt_tokens": 12,
        "completion_tokens": 40, "output_sha256": "ab" * 32, "settled": True,
        "payer": "user", "fee_bps": 500, "cost": 9,
        "parts": [{"node_id": "node-a", "node_key": "k", "status": "signed", "amount": 9,
                   "fee": 0, "node_signature": "s-_"}],
        "receipt_hash": "cd" * 32, "signature": "sig",
    }  # fmt: skip
    return {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
        "mesh": {"node_id": "node-a", "latency_ms": 1.5, "receipt": receipt, "cost": 9},
    }


CASES = {  # name: the answer
    "ascii": _answer(),
    "controls and quotes": _answer(model='m"\\\n\t\x01', content="\x7f é \U0001f600"),
    "a non-ASCII model (escaped in the header only)": _answer(model="modèle-€"),
    "DEL in the receipt (escaped in the header only)": _answer(model="m\x7f"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_answer_and_its_header_are_the_bytes_of_encoding_the_receipt_twice(
    name: str,
) -> None:
    data = CASES[name]
    before = copy.deepcopy(data)
    receipt = data["mesh"]["receipt"]
    job: Any = SimpleNamespace(model="mistral-7b", request_id="req-1")
    got = relay.json_answer(job, "node-a", data, receipt)
    headers = relay.mesh_headers("node-a", job)  # as json_answer made them before
    headers[HDR_RECEIPT] = encode_header(before["mesh"]["receipt"])
    expected = json_response(before, 200, headers)
    assert got.body == expected.body == strict_json.dumps(before)
    assert got.raw_headers == expected.raw_headers
    assert got.status_code == 200
    assert data == before and data["mesh"]["receipt"] is receipt  # the answer left as it was


def test_a_receipt_that_is_not_the_answers_is_encoded_as_given() -> None:
    data = _answer()
    other = {"v": 3, "note": "another"}
    job: Any = SimpleNamespace(model="mistral-7b", request_id="req-1")
    got = relay.json_answer(job, "node-a", data, other)
    assert got.body == strict_json.dumps(data)
    assert got.headers[HDR_RECEIPT] == encode_header(other)


def test_without_a_receipt_the_headers_are_the_mesh_headers_as_before() -> None:
    """No receipt (none signed): the node, model and request id headers, then the body's,
    each as ``json_response`` makes them from ``mesh_headers``."""
    data = _answer()
    job: Any = SimpleNamespace(model="modèle", request_id="req-é")
    got = relay.json_answer(job, "node-a", data)
    expected = json_response(data, 200, relay.mesh_headers("node-a", job))
    assert got.body == expected.body
    assert got.raw_headers == expected.raw_headers
    assert [k for k, _ in got.raw_headers][:3] == [
        b"x-mesh-node", b"x-mesh-model", b"x-mesh-request-id",
    ]  # fmt: skip


def test_a_header_value_latin_1_cannot_hold_is_refused_as_before() -> None:
    job: Any = SimpleNamespace(model="model-€", request_id="req-1")
    with pytest.raises(UnicodeEncodeError):
        json_response({}, 200, relay.mesh_headers("node-a", job))
    with pytest.raises(UnicodeEncodeError):
        relay.json_answer(job, "node-a", _answer())
