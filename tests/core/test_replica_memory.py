"""What a client remembers of the gateway replica that answered (core/replica_memory.py),
and the file it keeps it in (client_replicas.py): a hint never trusted to add a URL."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from LLM_Mesh.client_replicas import FILE_NAME, ReplicaMemory
from LLM_Mesh.core import replica_memory as rm

A, B, C = "https://a.example", "https://b.example", "https://c.example"


def test_a_remembered_replica_is_the_start_for_its_list_only_and_only_for_a_while() -> None:
    lists = rm.updated({}, (A, B), B, now=1000.0)
    assert rm.start_at((A, B), lists, 1000.0) == B
    assert rm.start_at((A, B), lists, 1000.0 + rm.REMEMBER_S - 1) == B
    assert rm.start_at((A, B), lists, 1000.0 + rm.REMEMBER_S) is None  # expired
    assert rm.start_at((A, B, C), lists, 1000.0) is None  # another list
    assert rm.start_at((B, A), lists, 1000.0) is None
    assert rm.start_at((A, B), lists, 1000.0 - rm.SKEW_S - 1) is None  # from the future


def test_a_url_that_was_not_configured_is_never_the_start() -> None:
    """An edited file (or one written for another list under the same key) names a URL
    the command was not given: it adds nothing."""
    forged = {rm.list_key((A, B)): rm.Answered("https://evil.example", 1000.0)}
    assert rm.start_at((A, B), forged, 1000.0) is None
    text = rm.dumps(forged)
    assert rm.start_at((A, B), rm.parse(text), 1000.0) is None


@pytest.mark.parametrize("text", [
    "", "not json", "[]", "{}", '{"version": 2, "lists": {}}', '{"version": 1, "lists": []}',
    '{"version": 1, "lists": {"k": {"url": 5, "at": 1}}}',
    '{"version": 1, "lists": {"k": {"url": "x", "at": true}}}',
    '{"version": 1, "lists": {"k": {"url": "x", "at": NaN}}}',
    "[" * 60_000, " " * (rm.MAX_TEXT + 1),
])  # fmt: skip
def test_a_file_not_of_its_shape_is_nothing_remembered(text: str) -> None:
    lists = rm.parse(text)
    assert rm.start_at((A, B), lists, 1.0) is None
    assert all(isinstance(e, rm.Answered) for e in lists.values())


def test_written_only_when_it_is_news_and_bounded() -> None:
    assert not rm.worth_writing((A, B), {}, A, 0.0)  # the first answered: the default
    assert rm.worth_writing((A, B), {}, B, 0.0)
    lists = rm.updated({}, (A, B), B, 0.0)
    assert not rm.worth_writing((A, B), lists, B, 10.0)
    assert rm.worth_writing((A, B), lists, B, rm.REMEMBER_S / 2 + 1)  # kept alive in use
    assert rm.worth_writing((A, B), lists, A, 10.0)  # the first answers again: back to it
    assert not rm.worth_writing((A,), {}, A, 0.0) and not rm.worth_writing((A, B), {}, C, 0.0)
    many: dict[str, rm.Answered] = {}
    for i in range(rm.MAX_LISTS + 10):
        many = rm.updated(many, (A, f"{B}/{i}"), A, float(i))
    assert len(many) == rm.MAX_LISTS
    assert rm.list_key((A, f"{B}/{rm.MAX_LISTS + 9}")) in many  # the newest kept


def test_the_file_through_its_clock(tmp_path: Path) -> None:
    now = [1000.0]
    memory = ReplicaMemory(tmp_path / "home" / FILE_NAME, clock=lambda: now[0])
    assert memory.start((A, B)) is None
    memory.answered((A, B), B)  # the folder is made
    assert memory.start((A, B)) == B
    assert oct((tmp_path / "home").stat().st_mode & 0o777) == "0o700"
    now[0] += rm.REMEMBER_S + 1
    assert memory.start((A, B)) is None
    (tmp_path / "home" / FILE_NAME).write_bytes(b"\xff\xfe garbage")
    assert memory.start((A, B)) is None
    memory.answered((A, B), B)
    assert memory.start((A, B)) == B


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    errors: list[BaseException] = []
    seen: list[str | None] = []

    def writer(k: int) -> None:
        memory = ReplicaMemory(path)
        try:
            for i in range(40):
                memory.answered((A, B, f"{C}/{k}"), (B if i % 2 else f"{C}/{k}"))
                seen.append(memory.start((A, B, f"{C}/{k}")))
                json.loads(path.read_text())  # never half a file
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(rm.parse(path.read_text())) >= 1
    assert not [p for p in tmp_path.iterdir() if p.name != FILE_NAME]  # no temporary left


def test_the_list_key_is_the_sha256_of_the_urls_one_a_line() -> None:
    import hashlib

    assert rm.list_key([A, B]) == hashlib.sha256(f"{A}\n{B}".encode()).hexdigest()[:32]
    assert rm.list_key([B, A]) != rm.list_key([A, B])  # in its order


def test_a_file_of_exactly_max_text_is_read_and_bad_entries_are_skipped_not_the_rest() -> None:
    key = rm.list_key([A, B])
    good = {"url": B, "at": 100.0}
    lists = {"0": 5, "1": {"url": A, "at": True}, "2": {"url": 5, "at": 1.0}, key: good}
    text = json.dumps({"version": 1, "lists": lists})
    padded = text[:-1] + " " * (rm.MAX_TEXT - len(text)) + "}"
    assert len(padded) == rm.MAX_TEXT
    assert rm.parse(padded) == {key: rm.Answered(B, 100.0)}
    assert rm.parse(padded + " ") == {}


def test_a_time_exactly_the_skew_ahead_is_still_fresh() -> None:
    lists = {rm.list_key([A, B]): rm.Answered(B, 1000.0 + rm.SKEW_S)}
    assert rm.start_at([A, B], lists, 1000.0) == B
    lists = {rm.list_key([A, B]): rm.Answered(B, 1000.0 + rm.SKEW_S + 0.5)}
    assert rm.start_at([A, B], lists, 1000.0) is None


def test_rewritten_once_over_half_its_time_late_on_the_clock_and_within_its_own_time() -> None:
    now, keep = 1_000_000.0, 600.0
    at_half = {rm.list_key([A, B]): rm.Answered(B, now - keep / 2)}
    assert not rm.worth_writing([A, B], at_half, B, now, keep)
    past_half = {rm.list_key([A, B]): rm.Answered(B, now - keep / 2 - 1)}
    assert rm.worth_writing([A, B], past_half, B, now, keep)
    # judged within the remember_s given: past it the entry is stale and the first URL
    # answering is no news (the start is the first anyway); within it, it is
    old = {rm.list_key([A, B]): rm.Answered(B, now - 100)}
    assert not rm.worth_writing([A, B], old, A, now, remember_s=50.0)
    assert rm.worth_writing([A, B], old, A, now, remember_s=150.0)


def test_the_most_recent_lists_are_kept_not_the_first_keys() -> None:
    now = 10_000.0
    lists = {f"{i:02d}": rm.Answered(A, now - i) for i in range(rm.MAX_LISTS)}
    out = rm.updated(lists, [A, B], B, now)
    assert len(out) == rm.MAX_LISTS and rm.list_key([A, B]) in out
    assert f"{rm.MAX_LISTS - 1:02d}" not in out and "00" in out  # the oldest went


def test_the_file_text_has_its_keys_sorted() -> None:
    text = rm.dumps({"b": rm.Answered(B, 2.0), "a": rm.Answered(A, 1.0)})
    assert text == (
        '{"lists": {"a": {"at": 1.0, "url": "https://a.example"}, '
        '"b": {"at": 2.0, "url": "https://b.example"}}, "version": 1}\n'
    )
