"""``llm-mesh receipt prune --older-than DAYS``: remove kept receipts the user chose by age.

The key's folder that ``llm-mesh ask`` keeps receipts in (``receipt_files.key_folder``) is
pruned by a clean ``ledger statement`` (``core/receipt_keep.removable``); a user who never
runs one is told by ``ask``, once a day, when it is past its bound (``receipt_files
.kept_note``), and may remove what they choose here. Only files that hold a receipt are
removed (each read as the statement reads the folder: regular files, at most 1 MiB; no
bound of 100,000 files, a folder past it being the one to prune), by
the receipt's own signed time (``time_ms``), never by a file's name or mtime
(``core/receipt_keep.older_than``); others are left alone and counted. It says how many it
removed, how many are kept, and what removing them means: a charge whose receipt is gone
is ``NO RECEIPT`` in a statement that had not checked it before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from LLM_Mesh.cli.common import HomeOpt, console, fail, settings_from
from LLM_Mesh.cli.ledger_seen import SEEN_FILE, load_checked_through
from LLM_Mesh.cli.ledger_statement import MAX_KEPT_BYTES, read_bounded
from LLM_Mesh.core.key_account import key_tag
from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.receipt import ReceiptError
from LLM_Mesh.core.receipt_keep import older_than
from LLM_Mesh.core.receipt_verify import find_receipt, parse_receipt
from LLM_Mesh.receipt_files import RECEIPTS_DIR, kept_files, key_folder, prune

__all__ = ["prune_command"]


def _folders(home: Path, api_key: str | None, all_keys: bool) -> list[Path]:
    """The key's folder, or with ``all_keys`` every key's folder of the home's receipts/
    (symbolic links not followed)."""
    if not all_keys:
        if not api_key:
            raise ValueError(
                "no key: set LLM_MESH_API_KEY (or --api-key) for its folder, or pass --all-keys"
            )
        return [key_folder(home, api_key)]
    top = home.expanduser() / RECEIPTS_DIR
    if not top.is_dir():
        return []
    with os.scandir(top) as it:
        return sorted(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _prune_one(folder: Path, days: int, now_ms: int, dry_run: bool) -> tuple[int, int, int]:
    """Removed (or, ``dry_run``, to remove), kept, and files holding no receipt. Each
    regular file not hidden (``receipt_files.kept_files``) is read as the statement reads
    the kept folder (at most ``MAX_KEPT_BYTES``), with no bound on their number but
    ``receipt_files.MAX_LOOKED`` (a folder past the statement's 100,000 files is what most
    needs pruning)."""
    times: dict[Path, int] = {}
    other = 0
    for e in kept_files(folder):
        path = Path(e.path)
        try:
            found = find_receipt(read_bounded(path, MAX_KEPT_BYTES))
            times[path] = parse_receipt(found.receipt).time_ms
        except (ReceiptError, UnicodeDecodeError, ValueError, OSError):
            other += 1  # not a receipt (or gone meanwhile): left alone
    old = older_than(times, now_ms, days)
    gone = len(old) if dry_run else prune(sorted(old))
    return gone, len(times) - len(old), other


def prune_command(
    older_than_days: Annotated[
        int,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            min=1,
            help="remove the kept receipts countersigned more than DAYS days ago (by the "
            "receipt's own signed time)",
        ),
    ],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="the key whose folder to prune \\[env LLM_MESH_API_KEY]"),
    ] = None,
    all_keys: Annotated[
        bool,
        typer.Option(
            "--all-keys", help="every key's folder of the home's receipts/ (old keys too)"
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say how many would go; remove nothing")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Remove kept receipts older than --older-than DAYS, saying how many.

    The receipts `llm-mesh ask` kept for your key ($LLM_MESH_HOME/receipts/<key tag>/;
    --all-keys: every key's), by each receipt's signed time. Only files holding a receipt are
    removed; never a folder of your own (--save DIR). A clean `llm-mesh ledger statement`
    prunes the kept folder itself (receipts it checked, once 30 days old): prune here
    what you choose beyond that. A charge whose receipt you removed before a clean
    statement checked it is NO RECEIPT in the next statement (exit 1): run one first."""
    settings = settings_from(home, None, api_key=api_key)
    try:
        folders = _folders(settings.home, settings.api_key, all_keys)
    except ValueError as exc:
        raise fail(exc) from exc
    now_ms = _now_ms()
    verb = "would remove" if dry_run else "removed"
    if not folders:  # said (found 2026-12-05: --all-keys in a home without any said nothing)
        top = settings.home.expanduser() / RECEIPTS_DIR
        console.print(f"no receipts kept in {top}", highlight=False, soft_wrap=True)
    for folder in folders:
        if not folder.is_dir():
            console.print(f"no receipts kept in {folder}", highlight=False, soft_wrap=True)
            continue
        try:
            gone, kept, other = _prune_one(folder, older_than_days, now_ms, dry_run)
        except (OSError, ValueError) as exc:
            raise fail(exc) from exc
        console.print(
            f"{verb} {counted(gone, 'kept receipt')} older than "
            f"{counted(older_than_days, 'day')} from "
            f"{folder}; {kept} kept"
            + (f", {counted(other, 'file')} holding no receipt left alone" if other else ""),
            highlight=False,
            soft_wrap=True,
        )
    key = settings.api_key
    if key and not all_keys:  # whether a clean statement of this key is remembered here
        source = f"registry:{settings.registry_url}"
        if not load_checked_through(settings.home / SEEN_FILE, source, key_tag(key)):
            console.print(
                "[yellow]no clean `llm-mesh ledger statement` of this key is remembered[/]: "
                "the charges of receipts removed are NO RECEIPT in the next one",
                highlight=False,
                soft_wrap=True,
            )
