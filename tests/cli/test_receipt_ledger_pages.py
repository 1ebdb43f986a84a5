"""``receipt verify --ledger`` reads every page the registry lists for the request, bounded
in all (``cli/receipt_ledger._pages``).

It follows ``has_more`` with ``after`` = the last entry's ``seq`` until the registry says
there is no more. Found 2026-12-07 (money42): the bounds were per page (1 MiB), on the
entries (400) and on time (``--timeout``) only, so a hostile registry answering 400 pages of
one entry each, each padded to just under 1 MiB, had the command read and hold 400 MiB; or
one that pages one entry at a time, 400 round trips. Now at most ``MAX_PAGES`` pages and
``MAX_BYTES`` bytes in all, each said as such."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from LLM_Mesh.cli import receipt_ledger

URL = "http://registry.test"


def _registry(
    total: int, per_page: int, pad: int = 0, asked: list[dict[str, Any]] | None = None
) -> Any:
    """A registry listing ``total`` entries of the request, ``per_page`` a page (whatever
    ``limit`` asks), each entry padded with ``pad`` bytes."""

    async def get(client: httpx.AsyncClient, method: str, url: str, limit: int, **kw: Any) -> Any:
        params = kw["params"]
        if asked is not None:
            asked.append(dict(params))
        after = int(params["after"])
        seqs = [s for s in range(total) if s > after][:per_page]
        data = [{"seq": s, "kind": "settle", "pad": "x" * pad} for s in seqs]
        more = bool(seqs) and seqs[-1] < total - 1
        body = httpx.Response(200, json={"data": data, "has_more": more}).content
        assert len(body) <= limit, "a page over the per-answer bound: call() would refuse it"
        return httpx.Response(200, content=body)

    return get


def test_every_page_of_the_request_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []
    monkeypatch.setattr(receipt_ledger, "call", _registry(7, 3, asked=asked))
    _, entries = receipt_ledger.request_entries(URL, "req-1")
    assert [e["seq"] for e in entries] == list(range(7))
    assert [a["after"] for a in asked] == [-1, 2, 5]
    assert all(a["request_id"] == "req-1" and a["limit"] == receipt_ledger.PAGE for a in asked)


def test_a_registry_paging_for_ever_is_stopped_at_max_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One entry a page, going forward, within the entries' bound: stopped at the pages'
    (before the fix: all 60 pages read, and taken)."""
    asked: list[dict[str, Any]] = []
    monkeypatch.setattr(receipt_ledger, "call", _registry(60, 1, asked=asked))  # < 400 entries
    with pytest.raises(ValueError, match=r"still has more after 40 pages \(40 entries\)"):
        receipt_ledger.request_entries(URL, "req-1")
    assert len(asked) == 40 == receipt_ledger.MAX_PAGES
    # as many as it takes, the last of them the end: taken whole
    monkeypatch.setattr(receipt_ledger, "call", _registry(40, 1))
    _, entries = receipt_ledger.request_entries(URL, "req-1")
    assert len(entries) == 40


def test_pages_each_under_the_page_bound_are_stopped_at_max_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each page one entry padded to just under ``PAGE_BYTES``: stopped once the pages'
    bytes pass ``MAX_BYTES`` (before the fix: 10 pages, ~10 MiB, read and taken)."""
    pad = receipt_ledger.PAGE_BYTES - 200
    asked: list[dict[str, Any]] = []
    monkeypatch.setattr(receipt_ledger, "call", _registry(10, 1, pad=pad, asked=asked))
    with pytest.raises(ValueError, match=r"over 4,194,304 bytes in all \(5 pages\)"):
        receipt_ledger.request_entries(URL, "req-1")
    assert len(asked) == 5  # 4 MiB and one page, no more
    assert receipt_ledger.MAX_BYTES == 4 << 20
