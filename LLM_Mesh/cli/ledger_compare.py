"""``llm-mesh ledger verify --compare``: this verifier's view against other verifiers'.

Each ``--compare`` names a checkpoint another verifier exported (``llm-mesh ledger
checkpoint``): a file, or an ``http(s)://`` URL where they publish it. Each is read,
opened with the key this verifier trusts and judged against the newest checkpoint this
run verified (``core/gossip.py``); a consistency proof between the two sizes comes from
the same registry (or store) the run verified. Findings: ``split view`` (with both signed
notes as evidence), ``signature`` (not a checkpoint of this ledger by its key),
``unproven`` (no proof to be had, or no checkpoint of our own yet) and ``unreadable`` (a
URL that did not answer with one). A *file* that cannot be read, or that is no checkpoint
in shape (no such file, not UTF-8, too long, JSON without a ``note`` string, no signed
note), is no finding about the ledger but a mistake in the command: :func:`read_files`
raises a ``ValueError`` naming it, before the audit (found 2026-12-06, newuser35b:
``--compare missing.json`` said "MISMATCH: 1 of 1 checkpoint compared"). A *URL* is read
after the audit, with the comparisons: one that answers no checkpoint (an HTTP error, a
body too long, slow or compressed, no checkpoint in shape) is ``unreadable``, printed as an
``error:`` line naming the URL and why (the status), never counted as a mismatch (found
2026-12-07, user41b: a 404 said "unreadable ... MISMATCH: 1 of 1 checkpoint compared").

A foreign checkpoint comes from a stranger: at most ``MAX_NOTE`` bytes of it are read (a
URL's body as it streams in, never decompressed: ``Accept-Encoding: identity``, another
``Content-Encoding`` is unreadable; a file read up to one byte past), a URL within
:data:`FETCH_S` seconds in all (a trickle of bytes is cut off there), no redirect followed
(:func:`LLM_Mesh.bounded_http.call`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from LLM_Mesh.bounded_http import call
from LLM_Mesh.cli.common import console, err
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, split_note
from LLM_Mesh.core.gossip import (
    CONSISTENT,
    SPLIT_VIEW,
    UNPROVEN,
    judge,
    note_from,
    open_foreign,
    proof_sizes,
)
from LLM_Mesh.core.gossip import MAX_NOTE as _MAX
from LLM_Mesh.errors import MeshError
from LLM_Mesh.text_files import open_regular, unreadable

__all__ = ["Compared", "compare_all", "print_compared", "read_files"]

Proof = Callable[[int, int], Awaitable[list[bytes]]]
FETCH_S = 30.0  # a URL's whole answer, however it trickles
UNREADABLE = "unreadable"  # no checkpoint read: an error, not a finding about the ledger


@dataclass(frozen=True)
class Compared:
    where: str  # the file or URL the foreign checkpoint came from
    kind: str  # consistent, split view, signature, unproven; or UNREADABLE (an error)
    message: str
    theirs: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        return self.kind == CONSISTENT


def _too_long() -> MeshError:
    return MeshError(f"longer than {_MAX} bytes: not a checkpoint")


def _is_url(where: str) -> bool:
    return where.startswith(("http://", "https://"))


def read_files(wheres: Sequence[str]) -> dict[str, str]:
    """The text of each ``--compare`` in ``wheres`` that is a file (not a URL), checked to
    be a checkpoint in shape (whose signature :func:`compare_all` judges); else a
    ``ValueError`` naming the file and why."""
    texts: dict[str, str] = {}
    for where in wheres:
        if _is_url(where) or where in texts:
            continue
        path = Path(where).expanduser()
        try:
            if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO would
                raise ValueError(f"--compare {where}: not a regular file")  # block: named
            text = _read_file(path)
        except (OSError, UnicodeError) as exc:
            raise unreadable("--compare", where, exc) from None
        except MeshError as exc:
            raise ValueError(f"--compare {where}: {exc}") from None
        try:
            split_note(note_from(text))
        except BadCheckpoint as exc:
            raise ValueError(
                f"--compare {where}: {exc} (not a checkpoint: what `llm-mesh ledger "
                "checkpoint` exports, or its --note)"
            ) from None
        texts[where] = text
    return texts


async def _read(where: str, client: httpx.AsyncClient, texts: Mapping[str, str]) -> str:
    if where in texts:
        return texts[where]
    if _is_url(where):
        return await _fetch(where, client)
    return await asyncio.to_thread(_read_file, Path(where))


async def _fetch(where: str, client: httpx.AsyncClient) -> str:
    r = await call(client, "GET", where, _MAX, deadline_s=FETCH_S, as_sent=True,
                   follow_redirects=False)  # fmt: skip  # a checkpoint is sent as is
    if r.status_code != 200:
        raise MeshError(f"GET answered {r.status_code} {r.reason_phrase}".rstrip())
    text = r.content.decode("utf-8")
    try:  # a page that is no checkpoint at all: not one to judge (a file's, read_files)
        split_note(note_from(text))
    except BadCheckpoint as exc:
        raise MeshError(
            f"{exc} (not a checkpoint: what `llm-mesh ledger checkpoint` exports, or its --note)"
        ) from None
    return text


def _read_file(path: Path) -> str:
    with open_regular(path) as f:  # a FIFO: refused, not waited on (cli36); read to _MAX
        data = f.read(_MAX + 1)
    if len(data) > _MAX:
        raise _too_long()
    return data.decode("utf-8")


async def _one(
    where: str, ours: Checkpoint, keys: Sequence[str], consistency: Proof,
    client: httpx.AsyncClient, texts: Mapping[str, str],
) -> Compared:  # fmt: skip
    try:
        text = await _read(where, client, texts)
    except MeshError as exc:
        return Compared(where, UNREADABLE, str(exc) or type(exc).__name__)
    except (OSError, UnicodeDecodeError, httpx.HTTPError) as exc:
        return Compared(where, UNREADABLE, f"{type(exc).__name__}: {exc}")
    try:
        theirs = open_foreign(text, ours.origin, keys)
    except BadCheckpoint as exc:
        return Compared(
            where, "signature", f"{exc}: not a checkpoint this ledger's key signed (proves nothing)"
        )
    proof: list[bytes] | None = None
    sizes = proof_sizes(ours, theirs)
    why = ""
    if sizes is not None:
        try:
            proof = await consistency(*sizes)
        except (MeshError, ValueError, KeyError, httpx.HTTPError) as exc:
            why = f" ({exc})"
    verdict = judge(ours, theirs, proof)
    return Compared(where, verdict.kind, verdict.message + why, theirs)


async def compare_all(
    wheres: Sequence[str], ours: Checkpoint | None, keys: Sequence[str], consistency: Proof,
    client: httpx.AsyncClient | None = None, texts: Mapping[str, str] | None = None,
) -> list[Compared]:  # fmt: skip
    """Each foreign checkpoint in ``wheres`` judged against ``ours`` (``keys``: the base64
    public keys this verifier trusts; ``consistency``: the registry's proofs; ``client``:
    for the URLs, one of its own by default; ``texts``: the files :func:`read_files` read,
    by name)."""
    texts = texts or {}
    if ours is None:
        why = "this ledger has no signed checkpoint yet: nothing here to compare it with"
        return [Compared(w, UNPROVEN, why) for w in wheres]
    if client is not None:
        return [await _one(w, ours, keys, consistency, client, texts) for w in wheres]
    async with httpx.AsyncClient(timeout=30) as own:
        return [await _one(w, ours, keys, consistency, own, texts) for w in wheres]


def _note(title: str, note: str) -> None:
    err.print(f"--- {title}", markup=False, highlight=False, soft_wrap=True)
    err.print(terminal_text(note.rstrip("\n")), markup=False, highlight=False, soft_wrap=True)


def print_compared(
    results: Sequence[Compared], ours: Checkpoint | None, key: str, where: str
) -> None:
    """One line per comparison; for a split view, both signed notes (the evidence) and the
    registry key (base64) that signed ``ours``. One that could not be read is an
    ``error:`` line after them, not counted as compared."""
    for c in results:
        if c.kind == UNREADABLE:
            continue
        if c.ok:
            console.print(f"[green]consistent[/]: {shown(c.where)}: {shown(c.message)}")
            continue
        err.print(f"[red]{c.kind}[/]: {shown(c.where)}: {shown(c.message)}", highlight=False)
        if c.kind == SPLIT_VIEW and ours is not None and c.theirs is not None:
            err.print(
                "evidence: two checkpoints signed by the registry that are not one history "
                f"(its key {shown(key)}; check them with any C2SP signed-note verifier):",
                highlight=False,
                soft_wrap=True,
            )
            _note(f"this verifier's ({where})", ours.note)
            _note(f"{c.where}", c.theirs.note)
    read = [c for c in results if c.kind != UNREADABLE]
    bad = sum(not c.ok for c in read)
    compared = f"{len(read)} checkpoint{'' if len(read) == 1 else 's'} compared"
    if bad:
        err.print(f"[red]MISMATCH[/]: {bad} of {compared}")
    elif read:
        console.print(f"[green]OK[/]: {compared}: one history")
    for c in results:
        if c.kind == UNREADABLE:
            err.print(
                f"[red]error:[/] --compare {shown(c.where)}: {shown(c.message)} (no checkpoint "
                "read from it: nothing compared, no finding about the ledger)",
                highlight=False,
                soft_wrap=True,
            )
