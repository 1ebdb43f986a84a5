"""The SSE framer (``core/sse_frame.py``): whole events as bytes however the reads cut the
stream, ``\\r\\n`` as ``\\n``, blank lines no events, an unterminated last event at the end,
and the bound on the event being read."""

from __future__ import annotations

import tracemalloc

import pytest

from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES, SseFramer

# a token with a character of 2 bytes, one of 3 (a snowman) and one of 4 (an emoji)
EVENTS = [
    b'data: {"choices":[{"text":"Once"}]}',
    b'data: {"choices":[{"text":" t\xc3\xafme \xe2\x98\x83 \xf0\x9f\x98\x80"}]}',
    b": a comment line\ndata: {}",
    b"data: [DONE]",
]


def stream(end: bytes = b"\n") -> bytes:
    return b"".join(e.replace(b"\n", end) + end + end for e in EVENTS)


def framed(reads: list[bytes], limit: int = MAX_EVENT_BYTES) -> list[bytes]:
    f = SseFramer(limit)
    out: list[bytes] = []
    for r in reads:
        out += f.feed(r)
        assert not f.over
    return out + f.end()


def cuts(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r\r\n"])
def test_the_same_events_however_the_reads_cut_the_stream(end: bytes) -> None:
    data = stream(end)
    assert framed([data]) == EVENTS
    for size in range(1, len(data) + 1):  # reads of every size
        assert framed(cuts(data, size)) == EVENTS, size
    for at in range(len(data) + 1):  # every place one cut can be: in a \r\n, a character
        assert framed([data[:at], data[at:]]) == EVENTS, at


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r\r\n", b"\r\r\r\n", b"\r" * 9 + b"\n"])
def test_each_event_comes_with_the_read_that_ends_it(end: bytes) -> None:
    """Not later: a blank line cut across two, three or four reads is seen where it ends
    (found 2026-12-03: one of three ``\\r`` or more then ``\\n``, cut inside its run, was
    seen only when the next event ended: the framer kept the last three bytes)."""
    data = stream(end)
    for size in (1, 2, 3, 4, 5):
        f, got, at = SseFramer(), [], 0
        for r in cuts(data, size):
            got += f.feed(r)
            at += len(r)
            assert got == SseFramer().feed(data[:at]), (size, at)


def test_an_event_is_returned_by_the_read_that_completes_it() -> None:
    f = SseFramer()
    assert f.feed(b"data: a\n") == []
    assert f.feed(b"\ndata: b\n\ndata: c\n\nda") == [b"data: a", b"data: b", b"data: c"]
    assert f.feed(b"ta: d") == []
    assert f.feed(b"\n") == []
    assert f.feed(b"\n") == [b"data: d"]
    assert f.end() == []


def test_a_character_cut_by_a_read_comes_whole_in_its_event() -> None:
    snowman = "\u2603".encode()
    f = SseFramer()
    assert f.feed(b"data: " + snowman[:1]) == []
    assert f.feed(snowman[1:2]) == []
    [ev] = f.feed(snowman[2:] + b"\n\n")
    assert ev.decode() == "data: \u2603"


def test_a_crlf_cut_between_reads_is_one_line_ending() -> None:
    f = SseFramer()
    assert f.feed(b"data: a\r") == []
    assert f.feed(b"\n\r") == []  # the blank line's \r waits for its \n
    assert f.feed(b"\ndata: b\r\n\r\n") == [b"data: a", b"data: b"]
    f = SseFramer()
    assert f.feed(b"data: a\r\n\r") == []  # (no event before it: nothing kept)
    assert f.feed(b"\n") == [b"data: a"]


def test_only_a_cr_before_a_lf_is_a_line_ending() -> None:
    assert framed([b"data: a\rb\r\r\n\r\n"]) == [b"data: a\rb"]
    assert framed([b"data: a\r\rb\n\n"]) == [b"data: a\r\rb"]


def test_blank_lines_make_no_events() -> None:
    spaced = b"\n\n\n" + stream().replace(b"\n\n", b"\n\n\n\n\n") + b"\n\n"
    assert framed([spaced]) == EVENTS
    for size in (1, 2, 3, 5):
        assert framed(cuts(spaced, size)) == EVENTS, size
        assert framed(cuts(spaced.replace(b"\n", b"\r\n"), size)) == EVENTS, size
    assert framed([b"\n\n\n\n"]) == [] and framed([b"\r\n\r\n"]) == []


def test_comments_are_lines_of_their_events() -> None:
    assert framed([b": keep-alive\n\ndata: a\n: note\n\n"]) == [b": keep-alive", b"data: a\n: note"]


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"\r"])
def test_an_unterminated_last_event_comes_at_the_end(tail: bytes) -> None:
    f = SseFramer()
    assert f.feed(b"data: a\n\ndata: [DONE]" + tail) == [b"data: a"]
    assert f.end() == [b"data: [DONE]"]
    assert f.end() == []  # the framer is empty again
    assert f.feed(b"data: b\n\n") == [b"data: b"]


def test_an_event_at_the_cap_is_read_one_byte_over_it_is_not() -> None:
    head = b"data: "
    f = SseFramer()
    f.feed(head + b"x" * (MAX_EVENT_BYTES - len(head)))  # exactly the cap, still being read
    assert not f.over
    assert f.feed(b"\n\n") == [head + b"x" * (MAX_EVENT_BYTES - len(head))]
    assert not f.over
    f = SseFramer()
    f.feed(head + b"x" * (MAX_EVENT_BYTES - len(head)))
    f.feed(b"x")  # one byte over
    assert f.over


@pytest.mark.parametrize("size", [1, 3, 4, 7])
def test_the_cap_counts_the_event_being_read_across_reads(size: int) -> None:
    f = SseFramer(limit=10)
    assert f.feed(b"data: a\n\n") == [b"data: a"] and not f.over
    overs = []
    for r in cuts(b"data: 1234xxxx", size):  # 10 bytes, then more
        f.feed(r)
        overs.append(f.over)
    assert overs == [i * size + len(r) > 10 for i, r in enumerate(cuts(b"data: 1234xxxx", size))]
    f = SseFramer(limit=10)
    f.feed(b"data: a\n\ndata: 1234")  # the rest of a read that completed an event
    assert not f.over
    f.feed(b"5")
    assert f.over


def test_a_complete_event_is_not_the_one_being_read() -> None:
    f = SseFramer(limit=10)
    assert f.feed(b"data: 0123456789\n\ndata") == [b"data: 0123456789"]
    assert not f.over


def test_an_endless_event_in_tiny_reads_holds_about_its_bytes() -> None:
    """A node sending an event that never ends 2 bytes a read: before, each read was kept
    as its own ``bytes`` object until the cap (35 bytes of object for 2 of data: 22 MiB
    held per stream for the 1 MiB ``MAX_EVENT_BYTES``; found 2026-12-03); now the reads
    go into one buffer, so a stream holds about the cap, whatever the reads' sizes."""
    limit = 64 << 10
    f = SseFramer(limit)
    two = bytearray(b"xy")
    f.feed(b"data: ")
    tracemalloc.start()
    try:
        for _ in range(limit // 2 + 1):
            assert f.feed(bytes(two)) == []  # a new object each read, as the network's
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f.over
    assert peak < 4 * limit  # before: 1.4 MB (21 times the cap)


def test_a_new_framer_and_one_ended_are_not_over() -> None:
    assert SseFramer(limit=1).over is False
    f = SseFramer(limit=4)
    f.feed(b"data: too long")
    assert f.over
    f.end()
    assert f.over is False  # ended: nothing is being read


def test_a_read_that_completes_an_event_says_whether_the_next_is_over() -> None:
    f = SseFramer(limit=10)
    assert f.feed(b"data: a\n\ndata: 12345") == [b"data: a"]
    assert f.over  # 11 bytes of the next event came with the read that ended the first


def test_blank_lines_before_an_event_do_not_count_toward_its_cap() -> None:
    f = SseFramer(limit=4)
    assert f.feed(b"\n\ndata") == []
    assert not f.over  # 4 bytes of event: the blank line is not the event's
    f.feed(b"x")
    assert f.over


def test_the_cap_counts_from_the_first_byte_of_each_event_after_the_first() -> None:
    """After an event that ended across reads, and after the stream ended: the next
    event's bytes, exactly, are counted against the cap (not one more)."""
    f = SseFramer(limit=10)
    f.feed(b"data: a")
    assert f.feed(b"\n\nd") == [b"data: a"]  # (ended across reads: joined with the rest)
    f.feed(b"ata: 1234")
    assert not f.over  # 10 bytes
    f.feed(b"5")
    assert f.over
    f.end()
    f.feed(b"data: 1")
    f.feed(b"234")
    assert not f.over  # 10 bytes
    f.feed(b"5")
    assert f.over


@pytest.mark.parametrize("first", [b":\n", b"data: a\n\n:\n"])
def test_a_short_event_comes_with_the_read_that_ends_it(first: bytes) -> None:
    """An event of fewer bytes than the tail kept between reads (``:``, a comment of no
    text) is seen ending where its blank line ends, after an event or not."""
    f = SseFramer()
    before = f.feed(first)
    assert f.feed(b"\n") == [b":"]
    assert before == ([b"data: a"] if first.startswith(b"data") else [])


def test_extra_blank_lines_take_nothing_else_off_an_event() -> None:
    """Only line endings are stripped from an event after more blank lines than one:
    not spaces, tabs or any other byte at its ends."""
    data = b"\n\n\n\tdata: X \t\n\n\n\ndata: XX\n\n\nXdata\r\n\r\n\r\n"
    assert framed([data]) == [b"\tdata: X \t", b"data: XX", b"Xdata"]


@pytest.mark.parametrize("last", [b"data: X ", b"data: \t", b"data: XX"])
def test_an_unterminated_last_event_keeps_its_last_bytes(last: bytes) -> None:
    f = SseFramer()
    f.feed(b"data: a\n\n" + last)
    assert f.end() == [last]
    f.feed(last + b"\r")  # a \r left waiting for its \n is dropped, nothing else
    assert f.end() == [last]


def test_a_blank_line_of_many_crs_cut_into_one_byte_reads_still_separates_events() -> None:
    data = b"data: a\n\r\r\r\r\ndata: b"
    assert framed(cuts(data, 1)) == [b"data: a", b"data: b"]
    assert framed(cuts(data + b"\n\n", 1)) == [b"data: a", b"data: b"]


@pytest.mark.parametrize("run", [1, 2, 3, 4, 7, 64])
def test_a_blank_line_of_a_run_of_crs_cut_anywhere_ends_its_event_at_once(run: int) -> None:
    """``data: a`` then a blank line written as ``run`` ``\\r`` and a ``\\n``, cut by one or
    two reads anywhere: the event comes with the read that ends the blank line."""
    data = b"data: a\r\n" + b"\r" * run + b"\ndata: b"
    for i in range(1, len(data)):
        for j in range(i, len(data)):
            f, got = SseFramer(), []
            for at, r in ((i, data[:i]), (j, data[i:j]), (len(data), data[j:])):
                got += f.feed(r)
                assert got == SseFramer().feed(data[:at]), (i, j, at)
            assert got + f.end() == [b"data: a", b"data: b"]


def test_blank_lines_past_an_events_end_are_counted_not_made_events() -> None:
    """An honest stream (one blank line an event) counts none; each run of more, before,
    between or after events, counts one (a client counts them as events without output,
    ``client_stream.events``; review31: a flood of them was never counted)."""
    from LLM_Mesh.core.sse_frame import SseFramer

    f = SseFramer()
    assert f.feed(b"data: 1\n\ndata: 2\n\n") == [b"data: 1", b"data: 2"] and f.blank == 0
    assert f.feed(b"\n\n\n\ndata: 3\n\n") == [b"data: 3"] and f.blank == 2
    assert f.feed(b"\n\n") == [] and f.blank == 3
    assert f.end() == [] and f.blank == 3


def test_runs_of_blank_lines_are_counted_across_reads_and_at_the_end() -> None:
    """``blank`` (a client counts each run as an event without output): a run after an
    event's end in one read, then one before the last, unterminated event read at the end."""
    f = SseFramer()
    assert f.feed(b"data: a\n\n\n") == [b"data: a"]
    assert f.blank == 1
    assert f.feed(b"\ndata: b") == []
    assert f.end() == [b"data: b"]
    assert f.blank == 2
    g = SseFramer()
    assert g.feed(b"data: a\n\n") == [b"data: a"] and g.end() == [] and g.blank == 0


@pytest.mark.parametrize("last", [b"data: [DONE]\n", b"data: [DONE]\r\n", b"data: a\ndata: b\n"])
def test_a_last_event_ended_by_its_line_ending_alone_is_no_blank_line(last: bytes) -> None:
    """A stream that ends without its last blank line (found 2026-12-06, probe33: counted one
    run of blank lines, as if the last line's ending were a blank line after it)."""
    f = SseFramer()
    assert f.feed(b"data: x\n\n" + last) == [b"data: x"]
    assert f.end() == [last.replace(b"\r", b"").rstrip(b"\n")]
    assert f.blank == 0
    g = SseFramer()  # a blank line before it still counts, and one after an event's end
    assert g.feed(b"data: x\n\n\n" + last) == [b"data: x"]
    assert g.end() == [last.replace(b"\r", b"").rstrip(b"\n")] and g.blank == 1
    h = SseFramer()
    assert h.feed(b"data: x\n\n") == [b"data: x"] and h.feed(b"\n") == []
    assert h.end() == [] and h.blank == 1
