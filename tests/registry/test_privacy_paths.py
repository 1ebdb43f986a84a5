"""docs/security.md, "Privacy": no prompt, no output is kept, on the error paths too.

A marker, new per run, in every prompt, and nodes that put it in their answers in every
hostile way (an error body quoting the prompt, a refusal's message, code and param, a body
that is not JSON, an answer of the wrong shape, a stream chunk that is not JSON, an error
event, a stream cut off after the marker), plus clients' malformed JSON and validation
errors. Every log record at DEBUG (message, arguments, traceback), every cell of every
table of the SQLite store, and every file under the registry's home: no marker. Through the
real registry app and a fake node behind a MockTransport (``tests/registry/helpers.py``).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNodes, chat_answer, running, sse_chunks
from tests.registry.test_midstream import Dies

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


class Echoing(FakeNodes):
    """Nodes that put the request's prompt (the marker) into whatever they answer."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        node = self.nodes.get(f"{request.url.host}:{request.url.port}")
        if node is None or request.url.path == "/mesh/health":
            return super().handler(request)
        body = json.loads(request.content)
        node.calls.append({"path": request.url.path, "body": body})
        said = " ".join(str(m.get("content")) for m in body.get("messages", []))
        sse = {"content-type": "text/event-stream"}
        how = node.behavior
        if how == "echo500":
            err = {"error": {"message": f"engine failed on: {said}", "type": "api_error"}}
            return httpx.Response(500, json=err)
        if how == "echo400":
            err = {"error": {"message": f"bad: {said}", "type": "invalid_request_error",
                             "param": said, "code": said[:40]}}  # fmt: skip
            return httpx.Response(400, json=err)
        if how == "text500":
            return httpx.Response(500, content=f"Traceback: prompt={said}".encode())
        if how == "notjson":
            return httpx.Response(200, content=f"<html>{said}</html>".encode())
        if how == "badshape":
            answer = chat_answer(MODEL, node.node_id, said)
            answer["usage"] = {"prompt_tokens": said, "completion_tokens": [said]}
            return httpx.Response(200, json=answer)
        if how == "answer":
            return httpx.Response(200, json=chat_answer(MODEL, node.node_id, f"Re: {said}"))
        chunks = sse_chunks(MODEL, node.node_id, ["Re:", f" {said}", " end"])
        if how == "stream_notjson":
            bad = f"data: {{not json {said}\n\n".encode()
            return httpx.Response(200, headers=sse, content=b"".join([*chunks[:2], bad]))
        if how == "stream_error":
            ev = b"data: " + json.dumps({"error": {"message": f"oops {said}"}}).encode() + b"\n\n"
            return httpx.Response(200, headers=sse, content=b"".join([*chunks[:3], ev]))
        if how == "stream_cut":
            return httpx.Response(200, headers=sse, stream=Dies(chunks[:3]))
        if how == "stream":
            return httpx.Response(200, headers=sse, content=b"".join(chunks))
        return super().handler(request)


BEHAVIORS = [
    "echo500", "echo400", "text500", "notjson", "badshape", "answer",
    "stream_notjson", "stream_error", "stream_cut", "stream",
]  # fmt: skip


def _record_text(rec: logging.LogRecord) -> str:
    text = f"{rec.name} {rec.getMessage()} {rec.args!r}"
    if rec.exc_info:
        text += logging.Formatter().formatException(rec.exc_info)
    if rec.exc_text:
        text += rec.exc_text
    return text


async def _db_sightings(url: str, marker: str) -> tuple[list[str], int]:
    engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://", 1))
    found: list[str] = []
    requests = 0
    try:
        async with engine.connect() as conn:
            meta = MetaData()
            await conn.run_sync(meta.reflect)
            for table in meta.sorted_tables:
                result = await conn.execute(select(table))
                rows = result.all()
                requests += len(rows) if table.name == "requests" else 0
                for row in rows:
                    for column, value in zip(result.keys(), row, strict=True):
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        if marker.encode() in raw:
                            found.append(f"{table.name}.{column}")
    finally:
        await engine.dispose()
    return found, requests


def _file_sightings(root: Path, marker: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


async def test_no_marker_is_logged_or_stored_on_any_error_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = f"PRIVACY-{secrets.token_hex(12)}"
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    home = tmp_path / "home"
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with running(home, store=SqlStore(url), nodes=Echoing()) as h:  # type: ignore[arg-type]
        for how in BEHAVIORS:
            await h.register(how, behavior=how)
        for i, how in enumerate(BEHAVIORS):
            body: dict[str, Any] = {
                "model": MODEL,
                "messages": [{"role": "system", "content": f"sys {marker}"},
                             {"role": "user", "content": f"tell me {marker}"}],
                "max_tokens": 16,
                "allow_nodes": [how],
                "stream": how.startswith("stream"),
            }  # fmt: skip
            r = await h.client.post(CHAT, json=body, headers={"X-Request-Id": f"p-{i}"})
            seen.append(f"{how}: {r.status_code}")
            if how in ("answer", "stream"):
                assert r.status_code == 200 and marker in r.text  # the answer did hold it
        # the clients' own mistakes
        bad_bodies = [
            b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "' + marker.encode(),
            json.dumps({"model": MODEL, "messages": [{"role": marker, "content": marker}]}).encode(),
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": [marker]}]}).encode(),
            json.dumps({"model": MODEL, "messages": marker}).encode(),
            json.dumps({"model": marker, "messages": [{"role": "user", "content": "x"}]}).encode(),
            json.dumps({"model": MODEL, "prompt": marker, "max_tokens": marker}).encode(),
        ]  # fmt: skip
        for raw in bad_bodies:
            r = await h.client.post(CHAT, content=raw, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, r.text
            if b'"model": "PRIVACY' not in raw:  # (a model not found is named to its client)
                assert marker not in r.text, r.text
        metrics = await h.client.get("/metrics", headers={"Host": "127.0.0.1"})
        assert metrics.status_code == 200 and "llm_mesh_" in metrics.text
        assert marker not in metrics.text  # no label holds it (model, node, code)
        pages = [await h.client.get(p) for p in ("/dashboard", "/mesh/nodes", "/v1/models")]
        assert not [p.url for p in pages if marker in p.text]
    logged = [_record_text(rec) for rec in caplog.records]
    assert any(rec.name.startswith("LLM_Mesh.registry") for rec in caplog.records)
    leaks = [t[:300] for t in logged if marker in t]
    assert not leaks, (seen, leaks)
    found, requests = await _db_sightings(url, marker)
    assert not found, seen
    assert requests == len(BEHAVIORS)  # each request is there, as metadata
    assert not _file_sightings(tmp_path, marker), seen


async def test_an_unexpected_error_quoting_the_prompt_is_logged_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the gateway's own code on a request's path (here: the context check
    raising with the prompt in its words, as ``int()`` or a ``KeyError`` would) is a 500
    whose log line keeps the traceback's frames and the exception's type, not what its
    message quotes (found 2026-12-04: ``log.exception`` wrote the whole message at ERROR)."""
    from LLM_Mesh.registry import parse

    def broken(prompt_text: str, *args: Any) -> None:
        raise ValueError(f"invalid literal for int() with base 10: {prompt_text!r}")

    monkeypatch.setattr(parse, "check_context", broken)
    marker = f"PRIVACY-{secrets.token_hex(12)}"
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path) as h:
        await h.register("n1")
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"x {marker}"}]}
        r = await h.client.post(CHAT, json=body)
        assert r.status_code == 500 and marker not in r.text
    logged = [_record_text(rec) for rec in caplog.records]
    failed = [t for t in logged if "unhandled error" in t]
    assert failed and "ValueError" in failed[0] and "broken" in failed[0]  # the frames, still
    assert not [t[:300] for t in logged if marker in t]
