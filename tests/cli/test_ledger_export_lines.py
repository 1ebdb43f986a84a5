"""``llm-mesh ledger verify`` reading the registry's NDJSON export
(``cli/ledger_http.HttpSource``): a line nested too deep, ``NaN``/``Infinity`` (which
Python's ``json`` reads by default) and a number past a float's range are refused with an
error naming the line, never a ``RecursionError`` traceback nor taken as a number.

Found 2026-12-04: 100,000 ``[`` on a line ended ``verify`` in a ``RecursionError``
traceback; ``[1, NaN, ...]`` was read as a row."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.ledger_commands import audit
from LLM_Mesh.cli.ledger_http import HttpSource, _ndjson_rows
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import MeshError
from tests.cli.test_ledger_verify_bounds import KEYS

ROW = json.dumps([0, 1, "mint", "a", "b", 5, None, None, "00", "11"]).encode()


def _export(body: bytes) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/ledger/keys":
            return httpx.Response(200, json=KEYS)
        if path == "/v1/ledger/export":
            return httpx.Response(200, content=body)
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    return httpx.MockTransport(answer)


BAD: dict[str, tuple[bytes, str]] = {
    "deep": (b"[" * 100_000, "line 3: it is nested too deep"),
    "deep object": (b'{"a": ' + b"[" * 100_000, "line 3: it is nested too deep"),
    "NaN": (ROW.replace(b"5", b"NaN"), "line 3: NaN is not JSON"),
    "Infinity": (ROW.replace(b"5", b"Infinity"), "line 3: Infinity is not JSON"),
    "-Infinity": (ROW.replace(b"5", b"-Infinity"), "line 3: -Infinity is not JSON"),
    "1e400": (ROW.replace(b"5", b"1e400"), "line 3: 1e400 is past a float's range"),
    "not JSON": (b"[1, 2", "line 3: "),
    "not an array": (b'{"seq": 0}', "line 3 is not a JSON array"),
}


@pytest.mark.parametrize("kind", list(BAD))
async def test_a_bad_export_line_is_an_error_naming_its_line(kind: str) -> None:
    line, words = BAD[kind]
    body = ROW + b"\n" + ROW + b"\n" + line + b"\n" + ROW + b"\n"
    async with httpx.AsyncClient(transport=_export(body), base_url="http://reg") as client:
        with pytest.raises(MeshError) as info:
            await audit(HttpSource(client))
    assert words in str(info.value)


def test_the_line_number_counts_the_lines_before() -> None:
    assert _ndjson_rows(ROW + b"\n" + ROW + b"\n", 7) == [json.loads(ROW)] * 2
    with pytest.raises(MeshError, match="line 8: NaN is not JSON"):
        _ndjson_rows(ROW + b"\n" + b"[NaN]\n", 7)


def test_ledger_verify_says_it_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The command: exit 1 and the error, not a traceback."""
    import LLM_Mesh.cli.ledger_commands as lc

    transport = _export(ROW + b"\n" + b"[" * 100_000 + b"\n")
    real = httpx.AsyncClient

    def client(*args: Any, **kw: Any) -> httpx.AsyncClient:
        kw["transport"] = transport
        return real(*args, **kw)

    async def first(urls: Any, verify: Any) -> str:
        return "http://reg"

    monkeypatch.setattr(lc.httpx, "AsyncClient", client)
    monkeypatch.setattr(lc, "first_answering", first)
    got = CliRunner().invoke(
        app, ["ledger", "verify", "--registry", "http://reg", "--home", str(tmp_path)]
    )
    assert got.exit_code == 1, got.output
    assert "Traceback" not in got.output and isinstance(got.exception, SystemExit)
    assert "line 2: it is nested too deep" in " ".join(got.output.split())
