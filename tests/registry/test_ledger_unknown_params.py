"""The ledger's reads refuse a query parameter they do not take (found 2026-12-07, money42:
``GET /v1/ledger?acount=...``, a filter mistyped or one the route never had, answered the
whole ledger as if it were the filtered list). 400 ``unsupported_parameter`` in the API's
error shape, ``param`` the unknown name, the message every accepted one; the OpenAPI
document says so of exactly those operations (``registry/strict_query.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.core.query_names import NAME_SHOWN, SHOWN, unknown_names, unknown_query_message
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.openapi import build_openapi
from LLM_Mesh.registry.strict_query import MARK, QUERY_400
from tests.registry.helpers import Harness, running

# each ledger read, with parameters it does take (so only the unknown one is wrong)
READS = {
    "/v1/ledger": {"after": -1, "limit": 5, "request_id": "req-1"},
    "/v1/ledger/export": {"after": -1, "limit": 5},
    "/v1/ledger/checkpoints": {"after": -1, "limit": 5},
    "/v1/ledger/checkpoints/latest": {},
    "/v1/ledger/proof/inclusion": {"index": 0, "tree_size": 3},
    "/v1/ledger/proof/consistency": {"first": 1, "second": 3},
    "/v1/ledger/keys": {},
}


async def _fill(h: Harness) -> None:
    assert h.runtime.ledger is not None and h.runtime.checkpointer is not None
    await h.runtime.ledger.append([Transfer("grant", MINT, POOL, 10)])
    await h.runtime.ledger.append([Transfer("settle", POOL, MINT, 1, f"req-{i}") for i in range(2)])
    await h.runtime.checkpointer.checkpoint()


async def test_a_mistyped_filter_is_refused_not_ignored(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await _fill(h)
        r = await h.client.get("/v1/ledger", params={"acount": "user:abc"})
        assert r.status_code == 400, r.text  # before the fix: 200 and every entry
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "unsupported_parameter"
        assert err["param"] == "acount"
        assert "'acount'" in err["message"]
        assert "GET /v1/ledger accepts only after, limit, request_id" in err["message"]
        assert "X-Request-Id" in r.headers  # every error answer names one
        # with the ones it takes beside it, and a repeat: still refused, named once
        mixed = "/v1/ledger?limit=2&afer=3&afer=4&request_id=req-1"
        err = (await h.client.get(mixed)).json()["error"]
        assert err["param"] == "afer" and err["message"].count("afer") == 1, err


@pytest.mark.parametrize("path", sorted(READS))
async def test_every_ledger_read_refuses_a_parameter_it_does_not_take(
    tmp_path: Path, path: str
) -> None:
    async with running(tmp_path) as h:
        await _fill(h)
        good = await h.client.get(path, params=READS[path])
        assert good.status_code == 200, (path, good.text)
        bad = await h.client.get(path, params={**READS[path], "bogus": "1"})
        assert bad.status_code == 400, (path, bad.text)
        err = bad.json()["error"]
        assert err["code"] == "unsupported_parameter" and err["param"] == "bogus", err
        takes = sorted(READS[path])
        said = "accepts only " + ", ".join(takes) if takes else "takes no query parameter"
        assert f"GET {path} {said}" in err["message"], err["message"]


async def test_a_hostile_query_is_said_bounded(tmp_path: Path) -> None:
    """Many unknown names, long ones, control characters: the message names a few, each
    cut and escaped (the names are the client's, and go back in the answer and the log)."""
    async with running(tmp_path) as h:
        query = "&".join(f"x{i}{'y' * 500}=1" for i in range(50)) + "&ev%0Ail=1"
        r = await h.client.get("/v1/ledger?" + query)
        assert r.status_code == 400
        msg = r.json()["error"]["message"]
        assert "and 46 more" in msg and len(msg) < 600, msg
        assert "\n" not in msg


def test_names_and_message_pure() -> None:
    assert unknown_names(["a", "b", "a", "c", "b"], ["a"]) == ["b", "c"]
    assert unknown_names(["after", "limit"], ["after", "limit", "x"]) == []
    names = [f"n{i}" for i in range(SHOWN + 3)]
    msg = unknown_query_message(names, ["b", "a"], "GET /x")
    assert msg.startswith("unknown query parameters 'n0', 'n1'") and "and 3 more" in msg
    assert "GET /x accepts only a, b" in msg
    one = unknown_query_message(["z" * 100 + "\x00"], [], "GET /y")
    assert one.startswith("unknown query parameter 'zzz") and "\x00" not in one
    assert len("z" * NAME_SHOWN) < 100 and "z" * (NAME_SHOWN + 1) not in one
    assert "GET /y takes no query parameter" in one


def test_the_document_says_it_of_the_ledger_reads() -> None:
    """The mark and its 400 on each ledger read (the ones the tests above refuse): the
    document is true of what the app answers (schemathesis fuzzes it, ``test_openapi.py``;
    since query42 every GET but ``/healthz`` is marked: ``test_query_strict_routes.py``)."""
    doc = build_openapi(
        create_registry_app(Settings(home=Path("/nonexistent")), store=MemoryStore())
    )
    marked = {path for path, ops in doc["paths"].items() for op in ops.values() if op.get(MARK)}
    assert set(READS) <= marked
    for path in READS:
        op = doc["paths"][path]["get"]
        assert {p["name"] for p in op.get("parameters", [])} == set(READS[path])
        bad = op["responses"]["400"]
        assert QUERY_400 in bad["description"]
        assert bad["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
