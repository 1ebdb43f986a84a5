"""Receipts kept on disk for ``llm-mesh ledger statement``: one file a request.

:func:`save_receipt` writes an answer's receipt and the ids mapping it to the request
(``core/receipt_verify.saved_form``: no prompt, no answer text) to a new file of a folder,
made with ``O_EXCL`` (never over another) and mode 0600; the folder, if missing, is made
0700. ``llm-mesh ask --save DIR`` writes there; a keyed ``llm-mesh ask`` writes to the
key's own folder by default (:func:`key_folder`: ``$LLM_MESH_HOME/receipts/<tag>``, the tag
a domain-separated hash of the key, ``core/key_account.key_tag``, never the key), which
``ledger statement`` reads when no ``--receipts`` is given. One folder a key: a receipt
another key paid for would be a finding in this key's statement. The seed API keeps them
there only when asked (``LLM_MESH_SAVE_RECEIPTS=1``, :func:`keeps`): a library
writing into the home by default would surprise (servers, notebooks, tests).
:func:`prune` removes the files a clean statement covered (``core/receipt_keep.py``
decides which), and :func:`keep_covered` records in the folder which receipts it covered
(:data:`COVERED`, a hidden file: the statement and ``kept_files`` skip it), the only ones
``receipt prune`` removes (:func:`load_covered`; :func:`forget_covered` after findings). A user who never runs one is told, not pruned: :func:`kept_note`, after
each keep, looks at the key's folder once a day at most (the time of its last look is the
mtime of a hidden file beside it, :data:`LOOKED` + the folder's name: never in it, where
the statement and the user look) and gives
the one line ``ask`` prints (the seed API logs it) when the folder is past its bound.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from LLM_Mesh.core.key_account import key_tag
from LLM_Mesh.core.receipt import Receipt
from LLM_Mesh.core.receipt_keep import (
    KEEP_S,
    Kept,
    coverage_text,
    covered,
    look_due,
    note,
    parse_coverage,
    removable,
    stamp_time,
)
from LLM_Mesh.secret_files import make_private_dir, replace_file

__all__ = [
    "COVERED",
    "LOOKED",
    "RECEIPTS_DIR",
    "SAVE_ENV",
    "forget_covered",
    "keep_covered",
    "keep_for_key",
    "keeps",
    "kept_files",
    "kept_note",
    "key_folder",
    "load_covered",
    "look_at",
    "prune",
    "save_covered",
    "save_receipt",
]

RECEIPTS_DIR = "receipts"  # in $LLM_MESH_HOME: one folder a key
LOOKED = ".looked-"  # + a key folder's name, beside it: its mtime, kept_note's last look
MAX_LOOKED = 1_000_000  # the most entries a look counts (the statement reads 100,000)
COVERED = ".covered.json"  # in a key's folder: the receipts a clean statement covered
MAX_COVERED_BYTES = 16 << 20  # 100,000 hashes (all the statement reads) take 6.7 MB
log = logging.getLogger(__name__)

SAVE_ENV = "LLM_MESH_SAVE_RECEIPTS"  # the seed API keeps keyed receipts only when "1"


def key_folder(home: Path, api_key: str) -> Path:
    """The folder a key's receipts are kept in by default (the key is never written)."""
    return home.expanduser() / RECEIPTS_DIR / key_tag(api_key)[:24]


def keeps(choice: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the seed API keeps a keyed answer's receipt: ``choice``
    (``DistributedModelRegistry(keep_receipts=...)``), else ``LLM_MESH_SAVE_RECEIPTS=1``."""
    if choice is not None:
        return choice
    value = (os.environ if environ is None else environ).get(SAVE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def keep_for_key(home: Path, api_key: str, form: dict[str, Any]) -> str | None:
    """``form`` kept in the key's folder (the seed API's): its path, or None and a WARNING
    when it cannot be written (the answer is returned all the same)."""
    folder = key_folder(home, api_key)
    try:
        path = str(save_receipt(folder, form))
    except OSError as exc:
        log.warning("a receipt was not kept in %s (%s): `ledger statement` will show its "
                    "charge as NO RECEIPT", folder, exc)  # fmt: skip
        return None
    line = kept_note(folder)
    if line is not None:
        log.warning("%s", line)
    return path


def save_receipt(folder: Path, form: dict[str, Any], *, now: float | None = None) -> Path:
    """Write ``form`` to a new file of ``folder``; its path. Raises ``OSError``."""
    folder = folder.expanduser()
    if not folder.exists():
        make_private_dir(folder)  # it and each missing parent 0700, whatever the umask
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    path = folder / f"receipt-{stamp}-{secrets.token_hex(6)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            json.dump(form, f, separators=(",", ":"))
            f.write("\n")
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)  # no half-written receipt left behind
        raise
    return path


def prune(paths: Iterable[Path]) -> int:
    """Remove ``paths`` (files a clean statement covered); how many were removed."""
    n = 0
    for p in paths:
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def save_covered(folder: Path, hashes: Iterable[str], *, through: int, checkpoint_ms: int) -> None:
    """Record in ``folder`` (whole, mode 0600) the receipts a clean statement covered.
    Raises ``OSError``."""
    text = coverage_text(hashes, through=through, checkpoint_ms=checkpoint_ms)
    replace_file(folder / COVERED, text.encode())


def load_covered(folder: Path) -> tuple[set[str] | None, str | None]:
    """The receipt hashes ``folder``'s record names: ``(None, None)`` when there is none,
    ``(None, why)`` when it cannot be read or is not a record (covering nothing)."""
    path = folder / COVERED
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, "not a regular file"
            if st.st_size > MAX_COVERED_BYTES:
                return None, f"larger than {MAX_COVERED_BYTES:,} bytes"
            data = f.read(MAX_COVERED_BYTES + 1)
        return parse_coverage(data.decode("utf-8")), None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        return None, str(exc)


def forget_covered(folder: Path) -> bool:
    """Remove ``folder``'s record (a statement with findings covered nothing): whether one
    was there. Raises ``OSError`` (not for a missing one)."""
    try:
        (folder / COVERED).unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def keep_covered(
    folder: Path, good: Sequence[tuple[Path, Receipt]],
    by_receipt: Mapping[str, Sequence[Mapping[str, Any]]], *, judged_size: int,
    checkpoint_ms: int, keep_s: int = KEEP_S,
) -> tuple[int, str | None]:  # fmt: skip
    """After a clean statement of the key's ``folder`` (``good``: its receipts and files):
    remove those covered and older than ``keep_s`` (``core/receipt_keep.removable``), then
    record the covered ones left. How many were removed, and why the record was not
    written (``None``: it was)."""
    held = [r for _, r in good]
    gone = removable(held, by_receipt, judged_size=judged_size, now_ms=checkpoint_ms, keep_s=keep_s)
    n = prune(p for p, r in good if r.receipt_hash in gone)
    cover = covered(held, by_receipt, judged_size=judged_size, signed_time_ms=checkpoint_ms)
    try:
        save_covered(folder, cover - gone, through=judged_size, checkpoint_ms=checkpoint_ms)
    except OSError as exc:
        return n, str(exc)
    return n, None


def kept_files(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The regular files of ``folder`` not hidden (symbolic links not followed), of its
    first :data:`MAX_LOOKED` entries: what :func:`look_at` counts and ``receipt prune``
    reads."""
    with os.scandir(folder) as it:
        for e in itertools.islice(it, MAX_LOOKED):
            if not e.name.startswith(".") and e.is_file(follow_symlinks=False):
                yield e


def look_at(folder: Path) -> Kept:
    """What ``folder`` holds: its regular files not hidden (symbolic links not followed),
    their bytes, the oldest time a receipt file's name carries; at most
    :data:`MAX_LOOKED` entries counted."""
    files = size = 0
    oldest: float | None = None
    for e in kept_files(folder):
        files += 1
        with contextlib.suppress(OSError):  # gone meanwhile
            size += e.stat(follow_symlinks=False).st_size
        t = stamp_time(e.name)
        if t is not None and (oldest is None or t < oldest):
            oldest = t
    return Kept(files, size, oldest)


def kept_note(folder: Path, now: float | None = None) -> str | None:
    """The line to tell the user when the key's ``folder`` is past its bound
    (``core/receipt_keep.note``), looked at once a day at most (:data:`LOOKED`); else
    ``None``. Never raises: a folder it cannot read or mark is not looked at or looked at
    again."""
    now = time.time() if now is None else now
    mark = folder.parent / (LOOKED + folder.name)
    try:
        last: float | None = mark.stat().st_mtime
    except FileNotFoundError:
        last = None
    except OSError:
        return None
    if not look_due(last, now):
        return None
    try:
        what = note(look_at(folder), now)
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT, 0o600))
        os.utime(mark, (now, now))
    except OSError:
        return None
    if what is None:
        return None
    return (
        f"note: {folder} keeps {what}: run `llm-mesh ledger statement` (a clean one "
        f"removes the receipts it checked once {KEEP_S // 86_400} days old), then `llm-mesh "
        "receipt prune --older-than DAYS` if you like (it removes only receipts a clean "
        "statement checked); said once a day"
    )
