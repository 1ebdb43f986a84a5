"""``llm-mesh receipt verify --ledger``: a receipt held against the real registry's public
ledger (``tests/inprocess_mesh.py``: the real registry, settlement and a sim node, whose
answers are SIMULATED). A registry operator that writes other money for a request than it
countersigned passes ``ledger verify`` (every entry well formed, hashed and signed): only
the receipt's holder can tell, and now the CLI does (found 2026-12-05)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands, receipt_commands, receipt_ledger
from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.ledger_receipts import ReceiptWatch
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.checkpoint import sign_checkpoint
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.core.ledger_entry import NETWORK, POOL, Transfer, make_entry
from LLM_Mesh.core.receipt_verify import find_receipt
from LLM_Mesh.registry.runtime import Runtime
from tests.inprocess_mesh import InProcessMesh

runner = CliRunner()
MODEL = "gemma-3-270m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 12}


@pytest.fixture
def paid(inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """A settled anonymous (pool-paid) answer, its entries written; the CLI's calls go to
    the in-process registry."""
    mesh = inprocess_mesh
    mesh.add_node(MODEL)
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    assert r.json()["mesh"]["receipt"].get("cost"), "the receipt signs no amounts"
    assert mesh.app is not None
    rt: Runtime = mesh.app.state.runtime
    assert rt.settlement is not None and rt.ledger is not None
    mesh.call(rt.settlement.flush())
    assert rt.checkpointer is not None
    mesh.call(rt.checkpointer.checkpoint())  # the entries in a signed checkpoint

    async def get(
        client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
    ) -> httpx.Response:
        with mesh.sync_client() as c:
            return c.request(method, url, params=kw.get("params"))

    monkeypatch.setattr(receipt_ledger, "call", get)
    monkeypatch.setattr("LLM_Mesh.cli.receipt_commands.call", get)
    return mesh, rt, r


def _verify(mesh: InProcessMesh, text: str) -> Any:
    return runner.invoke(
        app, ["receipt", "verify", "-", "--registry", mesh.registry_url, "--ledger"], input=text
    )


def test_an_honest_requests_entries_agree_with_its_receipt(paid: tuple[Any, ...]) -> None:
    mesh, _rt, r = paid
    res = _verify(mesh, r.text)
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert re.search(
        r"the (1 entry|\d+ entries) the registry lists for request \S+ charges? what the receipt signs",
        said,
    )
    assert "not in a signed checkpoint" not in said


def test_a_fee_the_receipt_does_not_sign_fails_while_ledger_verify_passes(
    paid: tuple[Any, ...],
) -> None:
    mesh, rt, r = paid
    mesh_part = r.json()["mesh"]
    lid = mesh_part.get("ledger_request_id") or mesh_part["request_id"]
    rh = mesh_part["receipt"]["receipt_hash"]
    # the operator pays itself 7 µNT more of the pool under the request and its receipt
    mesh.call(rt.ledger.append_one(Transfer("fee", POOL, NETWORK, 7, lid, rh)))
    report = mesh.call(audit(StoreSource(rt.ledger, mesh.settings.ledger_origin)))
    assert report.ok, report.findings  # the structural audit cannot tell
    res = _verify(mesh, r.text)
    assert res.exit_code == 1, res.output
    assert "LEDGER DISAGREES the fees are" in " ".join(res.output.split())


def test_a_page_of_entries_that_is_not_the_log_fails_its_inclusion_proof(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry shows the receipt's holder entries that agree with the receipt, each
    hashing right, but not the ones its log holds (here: the share paid to another
    account): the signed checkpoint's inclusion proofs refuse them."""
    mesh, _rt, r = paid
    honest = receipt_ledger.call

    async def forged(
        client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
    ) -> Any:
        answer = await honest(client, method, url, limit, **kw)
        if not url.endswith("/v1/ledger"):
            return answer
        page = answer.json()
        for i, e in enumerate(page["data"]):
            if e["kind"] == "settle":
                t = Transfer("settle", e["from"], "user:" + "f" * 32, e["amount"],
                             e["request_id"], e["receipt_hash"])  # fmt: skip
                made, _ = make_entry(e["seq"], e["time_us"], t, bytes.fromhex(e["prev_hash"]))
                page["data"][i] = made.to_json()
        return httpx.Response(200, json=page)

    monkeypatch.setattr(receipt_ledger, "call", forged)
    res = _verify(mesh, r.text)
    assert res.exit_code == 1, res.output
    assert "is not in the signed checkpoint of size" in " ".join(res.output.split())


def test_a_hung_first_replica_is_asked_once_not_at_every_step(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new user's try, two gateway URLs, the first a socket that never
    answers): ``receipt verify --ledger`` waited for the hung replica for the keys, again
    for the request's entries, and asked the checkpoint and proofs of it alone: 30 s, then
    ``error: ReadTimeout``, exit 1, though the second replica answered everything."""
    mesh, _rt, r = paid
    honest = receipt_ledger.call
    hung: list[str] = []

    async def replicas(
        client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any
    ) -> Any:
        if url.startswith("http://hung.test"):
            hung.append(url)
            raise httpx.ReadTimeout("no answer within the timeout")
        return await honest(client, method, url, limit, **kw)

    monkeypatch.setattr(receipt_ledger, "call", replicas)
    monkeypatch.setattr("LLM_Mesh.cli.receipt_commands.call", replicas)
    urls = f"http://hung.test,{mesh.registry_url}"
    res = runner.invoke(app, ["receipt", "verify", "-", "--registry", urls, "--ledger"],
                        input=r.text)  # fmt: skip
    assert res.exit_code == 0, res.output
    # (its entries: the share and, since the fee is rounded up (money34), the fee)
    assert re.search(r"charges? what the receipt signs", " ".join(res.output.split()))
    assert len(hung) == 1, hung  # its keys: the replica that answered them is asked after
    hung.clear()  # the key given (none fetched): the entries' replica gives the proofs too
    key = mesh.call(_rt.ledger.keys())[0][0]
    res = runner.invoke(app, ["receipt", "verify", "-", "--ledger", "--key", key],
                        input=r.text, env={"LLM_MESH_REGISTRY_URL": urls})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(hung) == 1, hung


def _answering(pages: list[dict[str, Any]], asked: list[int]) -> Any:
    async def get(client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any) -> Any:
        asked.append(limit)
        return httpx.Response(200, json=pages[min(len(asked), len(pages)) - 1])

    return get


def test_a_hostile_registrys_pages_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same page again for ever, or more entries than a request writes: refused, each
    answer read to ``PAGE_BYTES`` (``bounded_http.call``'s limit)."""
    asked: list[int] = []
    same = {"data": [{"seq": 5}], "has_more": True}
    monkeypatch.setattr(receipt_ledger, "call", _answering([same], asked))
    with pytest.raises(ValueError, match="do not go forward"):
        receipt_ledger.request_entries("http://registry.test", "req-1")
    assert asked == [receipt_ledger.PAGE_BYTES] * 2
    many = [
        {"data": [{"seq": 100 * p + i} for i in range(100)], "has_more": True} for p in range(9)
    ]
    monkeypatch.setattr(receipt_ledger, "call", _answering(many, []))
    with pytest.raises(ValueError, match="more than 400 entries"):
        receipt_ledger.request_entries("http://registry.test", "req-1")
    monkeypatch.setattr(receipt_ledger, "call", _answering([{"data": "x"}], []))
    with pytest.raises(ValueError, match="no list of entries"):
        receipt_ledger.request_entries("http://registry.test", "req-1")


def test_a_client_chosen_ids_request_is_found_by_the_answers_ledger_id(
    paid: tuple[Any, ...],
) -> None:
    """The ledger names such a request by ``mesh.ledger_request_id`` (``c-...``), not the
    receipt's id: found from the whole answer; a bare receipt is told how."""
    import json

    mesh, rt, _ = paid
    with mesh.sync_client() as c:
        r = c.post("/v1/chat/completions", json=BODY, headers={"X-Request-Id": "alice-42"})
    assert r.status_code == 200, r.text
    mesh.call(rt.settlement.flush())
    mesh.call(rt.checkpointer.checkpoint())
    assert r.json()["mesh"]["ledger_request_id"].startswith("c-")
    res = _verify(mesh, r.text)
    assert res.exit_code == 0, res.output
    res = _verify(mesh, json.dumps(r.json()["mesh"]["receipt"]))
    assert res.exit_code == 1
    assert "--ledger-request-id" in " ".join(res.output.split())


def test_ledger_verify_receipt_finds_an_entry_the_request_page_leaves_out(
    paid: tuple[Any, ...],
) -> None:
    """The registry writes a fee under the receipt's hash but another request id: the
    request's page leaves it out (``receipt verify --ledger`` passes); ``ledger verify
    --receipt`` (its audit, over the whole log, with ``ReceiptWatch``) names it."""
    mesh, rt, r = paid
    origin = mesh.settings.ledger_origin

    def whole_log() -> Report:
        keys = [k for k, _ in mesh.call(rt.ledger.keys())]
        held = ReceiptWatch([find_receipt(r.text)], keys)
        report = mesh.call(audit(StoreSource(rt.ledger, origin), watch=held.rows))
        held.judge(report)
        return report

    assert whole_log().ok
    rh = r.json()["mesh"]["receipt"]["receipt_hash"]
    mesh.call(rt.ledger.append_one(Transfer("fee", POOL, NETWORK, 7, "req-elsewhere", rh)))
    assert _verify(mesh, r.text).exit_code == 0  # the page of the request: the gap
    found = [(f.kind, f.message) for f in whole_log().findings]
    assert len(found) == 1 and found[0][0] == "receipt", found
    assert "the fees are" in found[0][1]


def test_ledger_verify_says_each_receipt_it_checked(
    paid: tuple[Any, ...], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new user's try of README's ``llm-mesh ledger verify --receipt
    answer.json``): exit 0 and the log's own verdict, not a word of the receipt given: was
    it checked at all? Now a line names it and its entries."""
    mesh, _rt, r = paid

    @contextlib.asynccontextmanager
    async def source(url: str, *_: Any) -> Any:  # the command's HTTP source, over the mesh
        async with httpx.AsyncClient(transport=mesh.transport(), base_url=url) as c:
            yield HttpSource(c)

    async def first_answering(urls: Any, verify: Any) -> str:
        return str(urls[0])

    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setattr(ledger_commands, "first_answering", first_answering)
    answer = tmp_path / "answer.json"
    answer.write_text(r.text)
    args = ["ledger", "verify", "--registry", mesh.registry_url, "--home", str(tmp_path / "me")]
    res = runner.invoke(app, [*args, "--receipt", str(answer)])
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    rh = r.json()["mesh"]["receipt"]["receipt_hash"]
    assert re.search(
        rf"OK: receipt {rh[:16]}… \(request req-[0-9a-f]+\): the (1 entry of the log that "
        r"names it charges|[2-9]\d* entries of the log that name it charge) what it signs",
        said,
    ), said
    assert "not under a signed checkpoint yet" not in said, said


def test_ledger_verify_takes_receipts_and_names_one_it_cannot_verify(tmp_path: Any) -> None:
    """``--receipt FILE`` through the command: a receipt countersigned by a key this
    ledger does not publish is a finding (exit 1), not skipped."""
    import json

    from LLM_Mesh.config import Settings
    from tests.core.receipt_verify_fixtures import make_receipt

    home = tmp_path / "mesh"
    assert (
        runner.invoke(app, ["registry", "grant", "pool", "10", "--home", str(home)]).exit_code == 0
    )
    db = Settings(home=home).effective_database_url
    answer = tmp_path / "receipt.json"
    answer.write_text(json.dumps(make_receipt(amounts=[100])))
    args = ["ledger", "verify", "--database-url", db, "--home", str(home)]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, [*args, "--receipt", str(answer)])
    assert res.exit_code == 1, res.output
    assert "a --receipt does not verify (unknown_registry" in " ".join(res.output.split())


def test_receipt_verify_ledger_says_it_proves_only_the_entries_listed(
    paid: tuple[Any, ...],
) -> None:
    """The registry takes an extra fee under the receipt's hash, filed under another request
    id: the request's page leaves it out, every listed entry agrees and is in the log.
    ``receipt verify --ledger`` cannot tell (the page is the registry's choice): it says
    the listed entries agree, that their completeness is not proven, and what reads the
    whole log (found 2026-12-05: "the entries of request X charge what the receipt signs",
    as if they were all; ``ledger verify --receipt`` catching it is the test above)."""
    mesh, rt, r = paid
    rh = r.json()["mesh"]["receipt"]["receipt_hash"]
    mesh.call(rt.ledger.append_one(Transfer("fee", POOL, NETWORK, 7, "req-elsewhere", rh)))
    mesh.call(rt.checkpointer.checkpoint())
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert re.search(
        r"the (1 entry|\d+ entries) the registry lists for request \S+ charges? ", said
    )
    assert "not proven: that the registry listed all of the receipt's entries" in said
    assert "`llm-mesh ledger verify --receipt FILE` reads the whole log" in said


def test_entries_not_under_a_checkpoint_yet_are_not_said_proven(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new user's try, an answer seconds old): ``receipt verify
    --ledger`` said "proven: those entries are in the registry's log (inclusion proofs
    against its signed checkpoint)" and, on the next line, that they were not in a signed
    checkpoint yet: no proof had been asked for them. (The registry's checkpointer signs
    on its own clock: here the newest checkpoint is as if taken before them.)"""
    mesh, _rt, r = paid

    def before_them(urls: Any, entries: Any, keys: Any, **kw: Any) -> Any:
        return [], [e["seq"] for e in entries]  # every one newer than the checkpoint

    monkeypatch.setattr("LLM_Mesh.cli.receipt_commands.included", before_them)
    res = _verify(mesh, r.text)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert "not in a signed checkpoint yet" in said
    assert "proven: those entries are in the registry's log" not in said, said
    assert "not proven yet: that they are in the registry's log" in said
    assert receipt_commands._proven(3, 1).startswith("proven: those under its signed checkpoint")
    assert receipt_commands._proven(3, 0).startswith("proven: those entries are in")
    assert "not proven: that the registry listed all of the receipt's entries" in said


def test_a_registry_answering_each_proof_just_in_time_is_bounded_in_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found 2026-12-05 (hostile29): each inclusion proof's answer is bounded alone (3 ×
    the timeout: 30 s), and a registry may list up to 400 entries of the request: answering
    each just in time held ``receipt verify --ledger`` 3 h 20 min. Here each proof takes
    50 ms, all of them at most ``PROOFS_S`` (0.5 s here): the check ends there, an error."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = public_key_of(key)
    cp = sign_checkpoint(key, pub, "ledger.test", 1000, bytes(32), 1_700_000_000_000_000)
    asked: list[str] = []

    async def slow(client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any) -> Any:
        asked.append(url)
        if url.endswith("/checkpoints/latest"):
            return httpx.Response(
                200, json={"note": cp.note, "public_key": base64.b64encode(pub).decode()}
            )
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"proof": []})

    monkeypatch.setattr(receipt_ledger, "call", slow)
    monkeypatch.setattr(receipt_ledger, "PROOFS_S", 0.5, raising=False)
    entries = [{"seq": i, "leaf_hash": "00" * 32} for i in range(400)]
    with pytest.raises(ValueError, match=r"took longer than 0\.5 s in all"):
        receipt_ledger.included("http://registry.test", entries, {pub})
    assert len(asked) < 40, len(asked)


def test_ledger_verify_receipt_skips_an_entry_naming_a_list_not_raises(
    paid: tuple[Any, ...],
) -> None:
    """Found 2026-12-05 (hostile29): a log entry whose ``receipt_hash`` is a JSON list
    ended ``ledger verify --receipt`` in ``TypeError: unhashable type`` (``ReceiptWatch``
    looks the held receipts up by it) before any verdict."""
    mesh, rt, r = paid
    keys = [k for k, _ in mesh.call(rt.ledger.keys())]
    held = ReceiptWatch([find_receipt(r.text)], keys)
    row = [1, 2, "fee", POOL, NETWORK, 7, "req-x", [1], "00" * 32, "00" * 32]
    held.rows([row, ["short"]])  # named by the audit as malformed, not looked up
    assert all(rows == [] for rows in held.held.values())


def test_a_registry_dripping_the_requests_pages_is_cut_off_at_the_overall_timeout(
    paid: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (``money30``): each answer of ``receipt verify --ledger`` is
    bounded alone (3 × the timeout), the pages of a request at most 400 entries, but a
    registry answering a page of one entry every 0.2 s, each going forward (as
    ``ledger verify``'s slow registry does), held the command 80 s here, 3 h 20 min at
    each page's own bound. Now ``--timeout`` (an hour by default, as ``ledger verify``'s)
    bounds all of it: exit 1, one error line (before the fix: no such option, exit 2)."""
    mesh, _rt, r = paid
    honest = receipt_ledger.call
    asked: list[int] = []

    async def drip(client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any) -> Any:
        if not url.endswith("/v1/ledger"):
            return await honest(client, method, url, limit, **kw)
        asked.append(1)
        await asyncio.sleep(0.2)
        after = int(kw["params"]["after"])
        return httpx.Response(200, json={"data": [{"seq": after + 1}], "has_more": True})

    monkeypatch.setattr(receipt_ledger, "call", drip)
    argv = ["receipt", "verify", "-", "--registry", mesh.registry_url, "--ledger"]
    start = time.monotonic()
    res = runner.invoke(app, [*argv, "--timeout", "1.5"], input=r.text, env={"COLUMNS": "300"})
    took = time.monotonic() - start
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # no traceback
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: receipt verify: not done within --timeout 1.5 s: {mesh.registry_url} answered "
        "too slowly (or asked to wait again and again); its ledger entries were not checked. "
        "A big ledger on a slow link: pass more seconds (--timeout 0: no limit)"
    ], res.output
    assert 1.4 < took < 6, took
    assert 0 < len(asked) < 10, len(asked)
