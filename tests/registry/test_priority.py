"""What the gateway tells a node of a request's class (``mesh_priority`` in the body it signs:
core/priority.py): keyed for a request with an API key, nothing for an anonymous one (its
bytes go on as sent), and never what a client claims. Through the real registry app and a
recording fake node (``tests/registry/helpers.py``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from LLM_Mesh.core.gateway_auth import HDR_BODY_SHA256
from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD
from tests.registry.helpers import running
from tests.registry.test_access import CHAT, bearer, chat, new_key

COMPLETIONS = "/v1/completions"


def _body(path: str, stream: bool) -> dict[str, object]:
    if path == CHAT:
        return chat("hi", max_tokens=4, stream=stream)
    return {"model": "gemma-3-270m", "prompt": "hi", "max_tokens": 4, "stream": stream}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_a_keyed_request_reaches_its_node_as_keyed_in_the_signed_body(
    tmp_path: Path, path: str, stream: bool
) -> None:
    async with running(tmp_path) as h:
        node = await h.register("n1")
        key, _ = await new_key(h)
        sent = _body(path, stream)
        r = await h.client.post(path, json=sent, headers=bearer(key))
        assert r.status_code == 200, r.text
        call = node.calls[-1]
        assert call["body"][PRIORITY_FIELD] == KEYED
        assert {k: v for k, v in call["body"].items() if k != PRIORITY_FIELD} == {
            **sent,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
        # inside what the gateway authenticates: the body's SHA-256 it signed
        assert call["headers"][HDR_BODY_SHA256.lower()] == hashlib.sha256(call["raw"]).hexdigest()


async def test_a_keyed_requests_bytes_are_the_clients_with_the_class_first(
    tmp_path: Path,
) -> None:
    raw = json.dumps(_body(COMPLETIONS, False), indent=1).encode()
    async with running(tmp_path) as h:
        node = await h.register("n1")
        key, _ = await new_key(h)
        r = await h.client.post(
            COMPLETIONS, content=raw, headers={**bearer(key), "content-type": "application/json"}
        )
        assert r.status_code == 200, r.text
        assert raw.startswith(b'{\n "model"')
        assert node.calls[-1]["raw"] == b'{\n "mesh_priority":"keyed",' + raw[3:]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_anonymous_request_carries_no_class(tmp_path: Path, stream: bool) -> None:
    async with running(tmp_path) as h:
        node = await h.register("n1")
        r = await h.client.post(CHAT, json=_body(CHAT, stream))
        assert r.status_code == 200, r.text
        assert PRIORITY_FIELD not in node.calls[-1]["body"]


@pytest.mark.parametrize("value", [KEYED, "anonymous", None, 1])
async def test_a_client_claiming_the_class_in_its_body_is_refused(
    tmp_path: Path, value: object
) -> None:
    async with running(tmp_path) as h:
        node = await h.register("n1")
        r = await h.client.post(CHAT, json={**_body(CHAT, False), PRIORITY_FIELD: value})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == PRIORITY_FIELD
        assert node.calls == []


async def test_a_client_claiming_the_class_in_a_header_gets_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("n1")
        claims = {"X-Mesh-Priority": KEYED, PRIORITY_FIELD: KEYED, "Priority": "u=0"}
        r = await h.client.post(CHAT, json=_body(CHAT, False), headers=claims)
        assert r.status_code == 200, r.text
        call = node.calls[-1]
        assert PRIORITY_FIELD not in call["body"]
        assert KEYED not in json.dumps(dict(call["headers"]))


async def test_the_mix_of_classes_is_counted_per_model(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("n1")
        key, _ = await new_key(h)
        for headers in (bearer(key), {}, {}, {}):
            r = await h.client.post(CHAT, json=_body(CHAT, False), headers=headers)
            assert r.status_code == 200, r.text
        assert h.app.state.runtime.traffic.keyed_share("gemma-3-270m") == 0.25


async def test_anonymous_requests_naming_themselves_are_counted_per_model(
    tmp_path: Path,
) -> None:
    """The share of a model's anonymous requests that carry their client's own id (what a
    probe's id is drawn from, core/priority_mix.py); a keyed request's id is not counted."""
    async with running(tmp_path) as h:
        await h.register("n1")
        key, _ = await new_key(h)
        sent = (
            {**bearer(key), "X-Request-Id": "k-1"},
            {"X-Request-Id": "a-1"},
            {"Idempotency-Key": "a-2"},
            {},
            {},
        )
        for headers in sent:
            r = await h.client.post(CHAT, json=_body(CHAT, False), headers=headers)
            assert r.status_code == 200, r.text
        assert h.app.state.runtime.traffic.named_share("gemma-3-270m") == 0.5
