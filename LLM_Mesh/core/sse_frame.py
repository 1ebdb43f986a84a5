"""A node's SSE bytes, framed into whole events as bytes: pure, no I/O.

:class:`SseFramer` is fed the bytes of one stream as they are read, cut anywhere (an
event, a line ending or a UTF-8 character may span reads), and returns the events each
read completes: an event's lines without their line endings, joined by ``\\n``, not the
blank line that ends it. Nothing is decoded or parsed here (a comment line, ``:`` first,
is part of its event as any other line); the send stage
(:mod:`~LLM_Mesh.registry.send_stream`) reads the events. It runs per token, so an event
goes out as the slice of what was read, unchanged but for:

- ``\\r\\n`` line endings (any ``\\r`` before a ``\\n``), read as ``\\n``; a ``\\r`` at the
  end of a read waits for the next to see whether a ``\\n`` follows;
- blank lines: an event ends at one, and more than one between events (or before the
  first) make no empty event (:attr:`SseFramer.blank` counts such runs).

At the stream's end, :meth:`SseFramer.end` returns what is left as an event if it is one
(a last ``data: [DONE]`` without its blank line, say): whether the stream ended properly
is the reader's to say.

**Bound.** An event may be at most ``limit`` bytes (:data:`MAX_EVENT_BYTES`; a token's is
~200): :attr:`SseFramer.over` says after each :meth:`~SseFramer.feed` that the event being
read is past it, and the reader stops reading. The reads in which no event ends are
appended to one buffer as they came (with their ``\\r``) and joined with the rest once one
does: a read is not searched again with all those before it (quadratic in an endless
event), only a tail of at most two bytes is searched with it, for a blank line cut by the
read: the last byte before the trailing run of ``\\r`` (if any) and one ``\\r`` for that
run, however long (only a ``\\n`` ending the run makes it a line ending, whatever its
length; with the last three bytes kept instead, a blank line of three ``\\r`` or more then
``\\n`` cut inside its run was seen only when the next event ended);
nor is each read kept as an object of its own (2-byte reads held 22 MiB of ``bytes``
objects for a 1 MiB event: 33 bytes of header for every 2 of data).
"""

from __future__ import annotations

import re

__all__ = ["MAX_EVENT_BYTES", "SseFramer"]

# the most one event of a node's stream may be (a token's is ~200 bytes): past it the
# stream breaks, read no further (what it sent is neither gathered nor scanned again)
MAX_EVENT_BYTES = 1 << 20

_CR_LF = re.compile(rb"\r+\n")  # a line ending with \r: the \r is not the line's


def _tail(seen: bytes) -> bytes:
    """What of ``seen`` (the bytes so far) a blank line cut by the next read can begin in:
    its last byte, or the last byte before its trailing run of ``\\r`` and one ``\\r``."""
    if seen[-1:] != b"\r":
        return seen[-1:]
    kept = seen.rstrip(b"\r")
    return kept[-1:] + b"\r"


def _events(blobs: list[bytes]) -> tuple[list[bytes], int]:
    """The events in ``blobs`` (bytes split at blank lines), more blank lines than one (an
    empty blob, or one that begins or ends with a line ending) left out; and how many
    blobs had such (:attr:`SseFramer.blank`)."""
    out: list[bytes] = []
    extra = 0
    for blob in blobs:
        if not blob or blob[0] == 10 or blob[-1] == 10:
            extra += 1
            blob = blob.strip(b"\n")
            if not blob:
                continue
        out.append(blob)
    return out, extra


class SseFramer:
    """One stream's framer (see the module docstring): :meth:`feed` each read, :meth:`end`
    when the stream ends; :attr:`over` when the event being read is past ``limit`` bytes."""

    __slots__ = ("_buf", "_more", "_more_n", "_tail", "blank", "limit", "over")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self.limit = limit
        self.over = False  # the event being read is past ``limit`` (after the last feed)
        # runs of blank lines past the one ending an event, so far (they make no event: a
        # client counts them as events without output, client_stream.events; review31)
        self.blank = 0
        self._buf = b""  # the bytes after the last complete event
        # ... and the reads after them in which no event ended (joined once one does),
        # their size, and the last bytes read (where a blank line may begin)
        self._more = bytearray()
        self._more_n = 0
        self._tail = b""

    def feed(self, got: bytes) -> list[bytes]:
        """The events that ``got`` completes, in order (none: the rest waits for the next
        read); :attr:`over` set for the event still being read."""
        if self._buf:
            seen = self._tail + got
            if b"\n\n" not in _CR_LF.sub(b"\n", seen):  # no event ends here
                self._more += got  # amortised, not an object per read
                self._more_n += len(got)
                self._tail = _tail(seen)
                self.over = len(self._buf) + self._more_n > self.limit
                return []
            buf = b"".join((self._buf, self._more, got))
            self._more, self._more_n = bytearray(), 0
        else:
            buf = got
        if b"\r" in buf:
            buf = _CR_LF.sub(b"\n", buf)  # a trailing \r waits for its \n in the rest
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._buf, self._tail = buf, _tail(buf)
            self.over = len(buf) > self.limit
            return []
        rest = self._buf = buf[cut + 2 :]
        self._tail = _tail(rest) if rest else b""  # (as a rule: nothing after the event)
        self.over = len(rest) > self.limit
        blobs = buf[:cut].split(b"\n\n")
        if len(blobs) == 1:  # one event (as a rule: a token a read)
            one = blobs[0]
            if one and one[0] != 10 and one[-1] != 10:
                return blobs
        out, extra = _events(blobs)
        self.blank += extra
        return out

    def end(self) -> list[bytes]:
        """The stream ended: what is left, as events if any (an unterminated last one).
        The framer is empty again."""
        rest = b"".join((self._buf, self._more))
        if b"\r" in rest:
            rest = _CR_LF.sub(b"\n", rest)
        rest = rest.rstrip(b"\r")
        if rest[-1:] == b"\n" and rest.strip(b"\n"):  # its last line's ending: no blank
            rest = rest[:-1]  # line after it (found 2026-12-06, probe33: counted one)
        self._buf, self._more, self._more_n, self._tail = b"", bytearray(), 0, b""
        self.over = False
        if not rest:
            return []
        out, extra = _events(rest.split(b"\n\n"))  # (one, unless CRs hid a cut)
        self.blank += extra
        return out
