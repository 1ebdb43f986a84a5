"""Query parameters a read does not take: named, with those it does (pure).

Found 2026-12-07 (money42): ``GET /v1/ledger?acount=...`` (a filter mistyped, or one the
route never had) was answered as if not asked: the whole ledger, which a reader takes for
the filtered list. The ledger's reads (``registry/ledger_api.py``, ``registry/strict_query.py``),
and since query42 every GET of the registry but ``/healthz`` (``GET /v1/models?al=true``
answered the served list), refuse such a request with 400 ``unsupported_parameter``, as
the gateway refuses a body field no endpoint has (``core/unsupported.unknown_field``),
naming each unknown name (at most :data:`SHOWN`, each cut to :data:`NAME_SHOWN`
characters: the names are the client's) and every parameter the route accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["NAME_SHOWN", "SHOWN", "unknown_names", "unknown_query_message"]

SHOWN = 5  # unknown names said in the message (the rest counted)
NAME_SHOWN = 40  # characters of each said


def unknown_names(given: Iterable[str], accepted: Iterable[str]) -> list[str]:
    """The names of ``given`` (a query's, repeats and all) that are not ``accepted``, each
    once, in the order first given."""
    known = frozenset(accepted)
    out: list[str] = []
    seen: set[str] = set()
    for name in given:
        if name not in known and name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _shown(name: str) -> str:
    cut = name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN] + "…"
    return repr(cut)  # a control character or a quote is escaped, not printed


def unknown_query_message(unknown: Sequence[str], accepted: Sequence[str], what: str) -> str:
    """What a 400 says of ``unknown`` (non-empty) query parameters of ``what`` (``GET
    /v1/ledger``), which accepts ``accepted`` (none: no parameter at all)."""
    names = ", ".join(_shown(n) for n in unknown[:SHOWN])
    if len(unknown) > SHOWN:
        names += f" and {len(unknown) - SHOWN} more"
    noun = "parameter" if len(unknown) == 1 else "parameters"
    takes = (
        "takes no query parameter"
        if not accepted
        else "accepts only " + ", ".join(sorted(accepted))
    )
    return (
        f"unknown query {noun} {names}: {what} {takes} (an unknown one is refused, not "
        "ignored: a mistyped filter would otherwise answer the unfiltered list)"
    )
