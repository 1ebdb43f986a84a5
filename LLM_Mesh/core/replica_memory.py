"""Which gateway replica a new client process begins at: the one that answered last,
remembered a few minutes. Pure: text in, text out, the clock passed in.

With several gateway URLs (``--registry URL,URL``, ``$LLM_MESH_REGISTRY_URL``) each
``llm-mesh`` command is a new process, and began at the first URL: a hung first replica
cost every command its timeout (found 2026-12-05). The CLI keeps, per configured list of
URLs, the one that answered and when (``$LLM_MESH_HOME/gateway-replica.json``, written by
:mod:`LLM_Mesh.client_replicas`), and a new client begins there.

What is remembered is a hint, never trusted to widen anything:

- :func:`start_at` answers a URL only if it is one of the configured ``urls`` (a file
  naming another, edited or of another list, adds nothing), only for the list it was
  written for (:func:`list_key`), and only within :data:`REMEMBER_S` of when it answered
  (a time in the future, past :data:`SKEW_S`, counts as expired);
- :func:`parse` reads the file strictly and bounded (:data:`MAX_TEXT`); anything else in
  it is as if nothing were remembered, never an error;
- :func:`updated` keeps at most :data:`MAX_LISTS` lists, the most recent, and drops
  expired ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_LISTS",
    "MAX_TEXT",
    "REMEMBER_S",
    "SKEW_S",
    "Answered",
    "dumps",
    "list_key",
    "parse",
    "start_at",
    "updated",
    "worth_writing",
]

#: how long an answering replica is remembered (then a client begins at the first URL again)
REMEMBER_S = 300.0
#: a remembered time this far ahead of the clock still counts (clocks of one machine agree)
SKEW_S = 5.0
#: how many configured lists of URLs are remembered at once
MAX_LISTS = 32
#: the most of the file read (a longer one: nothing remembered)
MAX_TEXT = 64 << 10
_VERSION = 1


@dataclass(frozen=True)
class Answered:
    """``url`` answered at ``at`` (wall-clock seconds)."""

    url: str
    at: float


def list_key(urls: Sequence[str]) -> str:
    """The key of a configured list of URLs (in its order): a SHA-256 of them."""
    return hashlib.sha256("\n".join(urls).encode()).hexdigest()[:32]


def parse(text: str) -> dict[str, Answered]:
    """The lists remembered in ``text`` (the file); ``{}`` for anything not of its shape."""
    if len(text) > MAX_TEXT:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return {}
    lists = data.get("lists")
    if not isinstance(lists, dict):
        return {}
    out: dict[str, Answered] = {}
    for key, entry in lists.items():
        if not isinstance(entry, dict):
            continue
        url, at = entry.get("url"), entry.get("at")
        if not isinstance(url, str) or isinstance(at, bool) or not isinstance(at, (int, float)):
            continue
        if math.isfinite(at):
            out[key] = Answered(url, float(at))
    return out


def _fresh(entry: Answered, now: float, remember_s: float) -> bool:
    return now - remember_s < entry.at <= now + SKEW_S


def start_at(
    urls: Sequence[str],
    lists: Mapping[str, Answered],
    now: float,
    remember_s: float = REMEMBER_S,
) -> str | None:
    """The configured URL to begin at, or ``None`` (the first, as without memory)."""
    entry = lists.get(list_key(urls))
    if entry is None or entry.url not in urls or not _fresh(entry, now, remember_s):
        return None
    return entry.url


def worth_writing(
    urls: Sequence[str],
    lists: Mapping[str, Answered],
    url: str,
    now: float,
    remember_s: float = REMEMBER_S,
) -> bool:
    """Whether ``url`` answering is news to the file: another start than it gives now, or
    the same one remembered for over half of ``remember_s`` (kept alive while in use)."""
    if len(urls) < 2 or url not in urls:
        return False
    start = start_at(urls, lists, now, remember_s)
    if (start or urls[0]) != url:
        return True
    entry = lists.get(list_key(urls))
    return start is not None and entry is not None and now - entry.at > remember_s / 2


def updated(
    lists: Mapping[str, Answered],
    urls: Sequence[str],
    url: str,
    now: float,
    remember_s: float = REMEMBER_S,
) -> dict[str, Answered]:
    """``lists`` with ``url`` answering for ``urls`` now; expired lists dropped, at most
    :data:`MAX_LISTS` kept (the most recent)."""
    kept = {k: e for k, e in lists.items() if _fresh(e, now, remember_s)}
    kept[list_key(urls)] = Answered(url, now)
    newest = sorted(kept.items(), key=lambda item: item[1].at, reverse=True)[:MAX_LISTS]
    return dict(newest)


def dumps(lists: Mapping[str, Answered]) -> str:
    """The file's text for ``lists``."""
    body = {k: {"url": e.url, "at": e.at} for k, e in lists.items()}
    return json.dumps({"version": _VERSION, "lists": body}, sort_keys=True) + "\n"
