"""The gateway's request log line: one per request, with its id, node, model, status,
attempts and timings, as text or JSON lines; never the prompt, the answer, or a string a
node chose (a node that echoes the prompt in its error is the attack tried here)."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.receipt import client_ledger_id
from LLM_Mesh.logs import TEXT_FORMAT, JsonFormatter
from LLM_Mesh.registry.telemetry import REQUEST_LOGGER
from tests.registry.helpers import FakeNodes, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
FIELDS = {"request_id", "path", "model", "stream", "node", "status", "outcome", "attempts",
          "latency_ms"}  # fmt: skip


class EchoingNodes(FakeNodes):
    """Nodes whose answers and errors carry the prompt back (a node may say anything)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        node = self.nodes.get(f"{request.url.host}:{request.url.port}")
        if node is not None and node.behavior == "echo400" and request.url.path != "/mesh/health":
            body = json.loads(request.content)
            text = body["messages"][0]["content"]
            node.calls.append({"path": request.url.path, "body": body})
            err = {"message": text, "type": "invalid_request_error", "code": text}
            return httpx.Response(400, json={"error": err})
        return super().handler(request)


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == REQUEST_LOGGER]


def everything(caplog: pytest.LogCaptureFixture) -> str:
    """Every record of every logger, in both formats."""
    text, js = logging.Formatter(TEXT_FORMAT), JsonFormatter()
    return "\n".join(text.format(r) + "\n" + js.format(r) for r in caplog.records)


async def test_one_json_line_per_request_with_its_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with running(tmp_path) as h:
        node = await h.register("n1")
        r = await h.client.post(CHAT, json={"model": MODEL, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"X-Request-Id": "req-log-1"})  # fmt: skip
        assert r.status_code == 200
        r = await h.client.post(CHAT, json={"model": MODEL, "stream": True, "messages": [
            {"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 200
        assert (await h.client.post(CHAT, content=b"[]")).status_code == 400
    got = lines(caplog)
    assert len(got) == 3
    ok, stream, refused = got
    assert ok.keys() >= FIELDS and stream.keys() >= FIELDS
    assert ok["msg"] == "request" and ok["level"] == "INFO" and ok["logger"] == REQUEST_LOGGER
    # the client's own id, hashed as the public ledger has it (never in clear)
    assert ok["request_id"] == client_ledger_id("req-log-1")
    assert ok["node"] == "n1" and ok["model"] == MODEL
    assert ok["status"] == 200 and ok["outcome"] == "ok" and ok["attempts"] == 1
    assert ok["stream"] is False and ok["prompt_tokens"] == 10 and ok["completion_tokens"] == 5
    assert "ttft_ms" in ok and "code" not in ok
    assert stream["stream"] is True and stream["outcome"] == "ok"
    assert stream["request_id"].startswith("req-")
    # the client chose req-log-1: its node got a gateway-made id, which its line names
    sent = [c["headers"]["x-request-id"] for c in node.calls]
    assert ok["node_request_id"] == sent[0] != "req-log-1"
    assert stream["request_id"] == sent[1] and "node_request_id" not in stream
    assert refused["status"] == 400 and refused["outcome"] == "refused"
    assert refused["code"] == "invalid_request" and "model" not in refused


async def test_no_prompt_no_answer_no_node_string_in_any_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    marker = "MARKER-" + secrets.token_hex(8)
    nodes = EchoingNodes()
    async with running(tmp_path, nodes=nodes) as h:
        good = await h.register("good")
        good.words = [marker]  # the streamed answer carries it
        await h.register("echo", behavior="echo400")
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"say {marker}"}]}
        for node, status in (("good", 200), ("echo", 400)):
            for stream in (False, True):
                for _ in range(6):
                    pinned = {**body, "stream": stream, "allow_nodes": [node]}
                    r = await h.client.post(CHAT, json=pinned)
                    assert r.status_code == status, r.text
                    if node == "good" and stream:
                        assert marker in r.text  # the answer carries it
        r = await h.client.post(CHAT, json={**body, "model": marker})  # unknown model: 404
        assert r.status_code == 404
        r = await h.client.post(CHAT, json={**body, "max_tokens": "x"})  # invalid: 400
        assert r.status_code == 400
    records = lines(caplog)
    assert len(records) == 26
    # the node's own code (the marker) is not one of the mesh's: recorded as its status
    assert {x["code"] for x in records if x["status"] == 400 and x.get("node") == "echo"} == {
        "http_400"
    }
    assert marker not in everything(caplog)


async def test_log_requests_off_writes_no_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with running(tmp_path, log_requests=False) as h:
        await h.register("n1")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert (await h.client.post(CHAT, json=body)).status_code == 200
    assert lines(caplog) == []


async def test_the_line_is_logfmt_in_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with running(tmp_path) as h:
        await h.register("n1")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Idempotency-Key": "an id with spaces"}
        assert (await h.client.post(CHAT, json=body, headers=headers)).status_code == 200
    (rec,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    text = rec.getMessage()
    hashed = client_ledger_id("an id with spaces")
    assert text.startswith(f"request request_id={hashed} path=/v1/chat/completions ")
    assert f" model={MODEL} stream=false node=n1 status=200 outcome=ok attempts=1 " in text


async def test_a_non_streams_record_comes_once_its_answer_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record (request log row, metrics, line) of a whole answer is made after the
    answer's bytes are handed to the server, not on the client's wait; still exactly once."""
    from tests.asgi import request_then_wait

    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with running(tmp_path) as h:
        await h.register("n1")
        writer = h.app.state.runtime.writer
        queued = writer.queued
        at_body: list[tuple[int, int]] = []
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif message["type"] == "http.response.body":
                at_body.append((len(lines(caplog)), writer.queued - queued))

        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": CHAT,
            "raw_path": CHAT.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"host", b"mesh")],
            "client": ("127.0.0.1", 5000), "server": ("mesh", 80),
        }  # fmt: skip
        await h.app(scope, request_then_wait(body.encode()), send)
        assert statuses == [200]
        assert at_body == [(0, 0)]  # nothing recorded when the answer left
        got = lines(caplog)
        assert len(got) == 1 and got[0]["outcome"] == "ok" and got[0]["node"] == "n1"
        assert writer.queued - queued == 1


def documented_gateway_line() -> dict[str, str]:
    """The fields of docs/operations.md's example gateway line (text format)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    (example,) = [x for x in doc.splitlines() if "LLM_Mesh.requests.gateway: request " in x]
    return dict(p.split("=", 1) for p in example.split(": request ", 1)[1].split())


async def test_the_documented_line_is_the_one_the_gateway_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/operations.md's example gateway line has the real line's fields, and its
    ``cost`` is what that request costs: whole micro-NetworkTokens (it said ``1.3e-05``)."""
    from LLM_Mesh.core.catalog import get_spec
    from LLM_Mesh.core.pricing import request_cost

    documented = documented_gateway_line()
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with running(tmp_path) as h:
        await h.register("n1")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert (await h.client.post(CHAT, json=body)).status_code == 200
    (rec,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    real = dict(p.split("=", 1) for p in rec.getMessage().split(" ", 1)[1].split())
    assert documented.keys() == real.keys()
    assert real["cost"].isdigit()
    spec = get_spec(documented["model"])
    assert spec is not None
    tokens = int(documented["prompt_tokens"]), int(documented["completion_tokens"])
    assert documented["cost"] == str(request_cost(spec.price, *tokens))


@pytest.mark.parametrize("header", ["X-Request-Id", "Idempotency-Key"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_clients_own_id_is_neither_logged_nor_stored_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, header: str, stream: bool
) -> None:
    """docs/security.md, "Privacy": a client's own request id may name someone. The request
    log's row (``requests.request_id``) and the INFO line keep the public ledger's ``c-`` id
    of it, which an operator given the id finds by hashing it (``llm-mesh ledger id``), and
    a refused or replayed duplicate's line too (found 2026-12-05: kept in clear)."""
    from typer.testing import CliRunner

    from LLM_Mesh.cli.main import app

    caplog.set_level(logging.DEBUG)
    own = "alice-session-42"
    async with running(tmp_path) as h:
        await h.register("n1")
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):  # the second: replayed (or refused 409 for a stream)
            await h.client.post(CHAT, json=body, headers={header: own})
        await h.runtime.writer.flush()
        rows = [r.request_id for r in h.store.requests]
    found = CliRunner().invoke(app, ["ledger", "id", own]).output.strip()
    assert found == client_ledger_id(own) and found.startswith("c-") and len(found) == 26
    assert rows == [found]
    got = lines(caplog)
    assert [g["request_id"] for g in got] == [found, found]
    assert own not in everything(caplog)
