"""Stop llama.cpp inside ``llama_decode``: a model context's abort callback.

A cancelled generation stops between tokens (``stopping_criteria``), but a long
prompt is evaluated in one ``Llama.eval`` (batches of ``n_batch`` tokens, each one
``llama_decode``) before the first token: without an abort, a client that sends a
long prompt and hangs up at once still costs the node the whole evaluation, and the
next request waits for it (found 2026-12-03, docs/security.md).

llama.cpp asks the context's abort callback (``llama_set_abort_callback``) after
every graph node it computes on the CPU; once it answers true, ``llama_decode``
returns 2 ("aborted"; ``Llama.eval`` raises ``RuntimeError``) and llama.cpp drops
the aborted batch's positions from the KV cache.

The callback is a C function, not Python: libc's ``strlen`` on a two-byte flag
(``b"\\0\\0"``: 0, go on; ``b"\\1\\0"``: 1, abort), which the caller reads as the
``bool`` llama.cpp expects (0 or 1 in the return register on the C ABIs). A Python
callback (``ctypes``) would take the GIL for every graph node (~1.8 calls per prompt
token measured): with a busy Python thread in the process, prompt evaluation took
measured 1.5-1.7x as long with it, 1.04-1.13x with ``strlen`` (against none)
(docs/ARCHITECTURE.md, "Engines").

Only the event loop trips the flag, when the generation's consumer leaves
(:meth:`AbortSwitch.trip`); the model's thread arms it for its generation and
disarms it after, so a late trip of an older generation never aborts the next one.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

log = logging.getLogger("LLM_Mesh.node")


class AbortSwitch:
    """One model context's abort flag, owned by one generation at a time."""

    def __init__(self) -> None:
        self._flag = ctypes.create_string_buffer(2)  # what llama.cpp's strlen reads
        self._lock = threading.Lock()
        self._owner: object | None = None
        self._keep: Any = None  # the C function pointer given to llama.cpp
        self.trips = 0

    @property
    def address(self) -> int:
        """The flag's address: the callback's ``data``."""
        return ctypes.addressof(self._flag)

    def tripped(self) -> bool:
        """What the callback answers now (test stand-ins call this)."""
        return self._flag[0] != b"\0"

    def arm(self, owner: object) -> None:
        """``owner``'s generation starts on the model's thread: not aborted (yet)."""
        with self._lock:
            self._owner = owner
            self._flag[0] = b"\0"

    def trip(self, owner: object) -> bool:
        """Abort ``owner``'s generation if it is the one running (from the event loop)."""
        with self._lock:
            if self._owner is not owner:
                return False
            self._flag[0] = b"\1"
            self.trips += 1
            return True

    def disarm(self, owner: object) -> None:
        """``owner``'s generation is over: a trip for it is a no-op from now on."""
        with self._lock:
            if self._owner is owner:
                self._owner = None
                self._flag[0] = b"\0"


_warned = False  # the no-callback warning was logged (install)


def _strlen() -> Any:
    try:
        return ctypes.CDLL(None).strlen
    # Windows: CDLL(None) raises TypeError ("'/' in None"), not OSError; no strlen
    # among the process's own symbols elsewhere: AttributeError
    except (OSError, AttributeError, TypeError):
        return None


def install(llama: Any, switch: AbortSwitch) -> bool:
    """Make ``switch`` the abort callback of ``llama``'s context; False where it cannot."""
    own = getattr(llama, "set_abort_callback", None)
    if callable(own):  # a stand-in Llama (tests): it asks switch.tripped itself
        own(switch.tripped)
        return True
    ctx = getattr(getattr(llama, "_ctx", None), "ctx", None)
    strlen = _strlen()
    if ctx is None or strlen is None:
        global _warned
        if not _warned:  # once a process: a pool that swaps models loads one per request
            _warned = True
            log.warning(
                "llama.cpp abort callback not installed: a cancelled prompt runs to its end"
            )
        return False
    from llama_cpp import llama_cpp as capi

    callback = ctypes.cast(strlen, capi.ggml_abort_callback)
    capi.llama_set_abort_callback(ctx, callback, ctypes.c_void_p(switch.address))
    switch._keep = callback  # lives as long as the model (its LoadedModel holds switch)
    return True
