"""How :class:`LLM_Mesh.client.MeshClient` reads a gateway's failure: another gateway's turn
(:class:`Retry`), the same call again later as the answer said (:class:`Again`,
:func:`advised`: ``x-should-retry``, ``core/client_retry.py``), or the error raised (after
retries, saying how many and over how long: :class:`Tally`); and the words for a gateway
that did not answer."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import httpx

from LLM_Mesh.core.client_retry import CLIENT_RETRIES, client_advice, client_wait
from LLM_Mesh.core.printable import log_text
from LLM_Mesh.core.reach_hint import reach_hint
from LLM_Mesh.errors import MeshError, ModelUnavailable, RegistryUnreachable

__all__ = ["Again", "Retry", "Tally", "advised", "failed", "said_not_up", "unreachable"]

log = logging.getLogger("LLM_Mesh.client")


def unreachable(base_url: str, exc: Exception) -> RegistryUnreachable:
    """``base_url`` failed with ``exc``: a server there spoken to wrongly (TLS: a certificate
    that failed verification) with :func:`reach_hint`'s fix and not as "no registry
    answered" (found 2026-12-06, cli36), else nothing answered: start one."""
    hint = reach_hint(base_url, str(exc))
    if hint:
        return RegistryUnreachable(
            f"the registry at {base_url} could not be spoken to ({type(exc).__name__}: "
            f"{exc}). {hint[0].upper()}{hint[1:]}."
        )
    # found 2026-12-07 (newuser39): `llm-mesh ask --registry URL` was told to "point
    # LLM_MESH_REGISTRY_URL at a running registry", which the flag it gave overrides
    return RegistryUnreachable(
        f"no LLM Mesh registry answered at {base_url} ({type(exc).__name__}: {exc}). "
        "Start one with `llm-mesh up`, or check the URL: a running registry's, given by "
        "--registry (which wins) or LLM_MESH_REGISTRY_URL (the Python API: registry_url=)."
    )


def failed(base: str, path: str, exc: Exception) -> str:
    """A transport failure's text, with :func:`reach_hint`'s fix when it has one."""
    hint = reach_hint(base, str(exc))
    return f"the connection to {base} failed on {path}: {type(exc).__name__}: {exc}" + (
        f" ({hint})" if hint else ""
    )


class Retry(Exception):
    """This gateway failed in a way another one may not: try the next."""

    def __init__(self, error: MeshError) -> None:
        super().__init__(str(error))
        self.error = error


class Again(Exception):
    """The gateway's answer said ``x-should-retry: true``: ask again after ``wait_s``
    (``core/client_retry.client_wait``), the next gateway in turn first."""

    def __init__(self, error: MeshError, wait_s: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s


class Tally:
    """One call's retries as answers said (``x-should-retry: true``): how many, and the
    client's ``clock`` at the first answer that said so, for the final error's words."""

    __slots__ = ("clock", "count", "since")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock, self.count, self.since = clock, 0, 0.0

    def again(self) -> None:
        if self.count == 0:
            self.since = self.clock()
        self.count += 1

    def noted(self, error: MeshError) -> MeshError:
        """``error``, its message saying how many times the call was asked again and over
        how long (from the first answer that said to, to now) when it was (found
        2026-12-05: ``ask``'s error line after two retries did not say so); once."""
        if self.count == 0:
            return error
        times = "once" if self.count == 1 else f"{self.count} times"
        note = (f" (asked again {times}, as the gateway said (x-should-retry), over "
                f"{max(0.0, self.clock() - self.since):.1f} s)")  # fmt: skip
        if not error.message.endswith(note):
            error.message += note
            error.args = (error.message, *error.args[1:])
        return error


def advised(r: httpx.Response, error: MeshError, tally: Tally, left_s: float = math.inf) -> None:
    """Raise what an error answer ``r`` (``error``) says to do when it says
    (``x-should-retry``, ``core/client_retry.py``): ``false``, or no retry left, ``error``
    (:meth:`Tally.noted`); ``true``, :class:`Again` (counted in ``tally``). Returns when it
    says nothing (an older gateway)."""
    advice = client_advice(r.headers)
    if advice is None:
        return
    wait = client_wait(advice, tally.count, left_s=left_s)
    if wait is None:
        raise tally.noted(error)
    log.warning(  # said while it waits (found 2026-12-05: ask sat silent, then failed)
        "%s answered HTTP %d (%s): it says to retry (x-should-retry); asking again in %g s "
        "(retry %d of %d)", _origin(r), r.status_code, log_text(error, 300), wait,
        tally.count + 1, CLIENT_RETRIES,
    )  # fmt: skip
    tally.again()
    raise Again(error, wait)


def _origin(r: httpx.Response) -> str:
    try:
        return log_text(f"{r.url.scheme}://{r.url.netloc.decode('ascii', 'replace')}")
    except RuntimeError:  # a response made without its request (tests)
        return "the gateway"


def said_not_up(error: MeshError) -> MeshError | None:
    """``error`` if a gateway's "model not up" (the models up: a fallback's), raised when all
    failed, whichever last (found 2026-12-05: a 503 replica's came last; a hung one, 300 s)."""
    return error if isinstance(error, ModelUnavailable) and error.model else None
