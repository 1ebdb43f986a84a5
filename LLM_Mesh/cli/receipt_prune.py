"""``llm-mesh receipt prune --older-than DAYS``: remove kept receipts the user chose by age.

The key's folder that ``llm-mesh ask`` keeps receipts in (``receipt_files.key_folder``) is
pruned by a clean ``ledger statement`` (``core/receipt_keep.removable``); a user who never
runs one is told by ``ask``, once a day, when it is past its bound (``receipt_files
.kept_note``), and may remove what they choose here. Only files that hold a receipt are
removed (each read as the statement reads the folder: regular files, at most 1 MiB; no
bound of 100,000 files, a folder past it being the one to prune), by
the receipt's own signed time (``time_ms``), never by a file's name or mtime
(``core/receipt_keep.older_than``); others are left alone and counted. Of those, it removes
only the receipts a clean statement covered (found 2026-12-05, ``receipts31``: it removed
receipts no statement had checked, whose charges the next one named ``NO RECEIPT``): the
statement records their hashes in the folder (``receipt_files.COVERED``;
``core/receipt_keep.covered``), so prune stays offline. It says how many it removed, how
many are kept, how many old ones no clean statement covered yet and what to run
(``ledger statement``); ``--include-uncovered`` removes those too, said as what it means: a
charge whose receipt is gone is ``NO RECEIPT`` in a statement that had not checked it
before. A record that cannot be read covers nothing, said.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from LLM_Mesh.cli.common import HomeOpt, console, fail, settings_from
from LLM_Mesh.cli.ledger_seen import SEEN_FILE, load_checked_through
from LLM_Mesh.cli.ledger_statement import MAX_KEPT_BYTES, read_bounded
from LLM_Mesh.core.key_account import key_tag
from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.receipt import ReceiptError
from LLM_Mesh.core.receipt_keep import to_prune
from LLM_Mesh.core.receipt_verify import find_receipt, parse_receipt
from LLM_Mesh.receipt_files import (
    COVERED,
    RECEIPTS_DIR,
    kept_files,
    key_folder,
    load_covered,
    prune,
)

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


@dataclass(frozen=True)
class Pruned:
    """What prune did to one folder: removed (or, ``dry_run``, would), kept, files holding
    no receipt, the old ones kept (or, ``--include-uncovered``, removed) that no clean
    statement covered, and why its record covers nothing (``None``: read, or none)."""

    gone: int
    kept: int
    other: int
    uncovered: int
    recorded: bool
    unread: str | None


def _prune_one(
    folder: Path, days: int, now_ms: int, dry_run: bool, uncovered_too: bool = False
) -> Pruned:
    """Each regular file not hidden (``receipt_files.kept_files``) is read as the statement
    reads the kept folder (at most ``MAX_KEPT_BYTES``), with no bound on their number but
    ``receipt_files.MAX_LOOKED`` (a folder past the statement's 100,000 files is what most
    needs pruning); the old ones a clean statement covered go (``core/receipt_keep
    .to_prune``)."""
    kept: dict[Path, tuple[int, str]] = {}
    other = 0
    for e in kept_files(folder):
        path = Path(e.path)
        try:
            r = parse_receipt(find_receipt(read_bounded(path, MAX_KEPT_BYTES)).receipt)
            kept[path] = (r.time_ms, r.receipt_hash)
        except (ReceiptError, UnicodeDecodeError, ValueError, OSError):
            other += 1  # not a receipt (or gone meanwhile): left alone
    covering, unread = load_covered(folder)
    old, uncovered = to_prune(kept, covering, now_ms, days, uncovered_too=uncovered_too)
    gone = len(old) if dry_run else prune(sorted(old))
    recorded = covering is not None or unread is not None
    return Pruned(gone, len(kept) - len(old), other, len(uncovered), recorded, unread)


def _said(folder: Path, p: Pruned, days: int, dry_run: bool, uncovered_too: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    line = (
        f"{verb} {counted(p.gone, 'kept receipt')} older than {counted(days, 'day')} from "
        f"{folder}; "
        f"{p.kept} kept"
        + (f", {counted(p.other, 'file')} holding no receipt left alone" if p.other else "")
    )
    if p.unread is not None:
        line += f"; {folder / COVERED}: unreadable ({p.unread}), taken as covering nothing"
    if p.uncovered and uncovered_too:
        line += (
            f"; {p.uncovered} {'would be' if dry_run else 'were'} removed though no clean "
            "statement covered them: their charges are NO RECEIPT in the next `llm-mesh "
            "ledger statement`"
        )
    elif p.uncovered:
        none = "" if p.recorded else f" (none recorded in {folder})"
        line += (
            f"; {p.uncovered} of them older than {counted(days, 'day')}, which no clean statement "
            "covered yet"
            f"{none}: run `llm-mesh ledger statement` (a clean one records the receipts "
            "whose charges it checked), then prune again; --include-uncovered removes them "
            "anyway (their charges are then NO RECEIPT in the next statement)"
        )
    return line


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
    include_uncovered: Annotated[
        bool,
        typer.Option(
            "--include-uncovered",
            help="also remove the old receipts no clean `llm-mesh ledger statement` covered "
            "yet: their charges are then NO RECEIPT in the next statement",
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
    removed; never a folder of your own (--save DIR). Only receipts a clean `llm-mesh
    ledger statement` covered (checked every charge of: it records them in the folder) are
    removed; the others are kept and counted, with what to run. A clean statement also
    prunes the kept folder itself (receipts it checked, once 30 days old): prune here what
    you choose beyond that. --include-uncovered removes the uncovered ones too: a charge
    whose receipt you removed before a clean statement checked it is NO RECEIPT in the next
    statement (exit 1)."""
    settings = settings_from(home, None, api_key=api_key)
    try:
        folders = _folders(settings.home, settings.api_key, all_keys)
    except ValueError as exc:
        raise fail(exc) from exc
    now_ms, gone = _now_ms(), 0
    if not folders:  # said (found 2026-12-05: --all-keys in a home without any said nothing)
        top = settings.home.expanduser() / RECEIPTS_DIR
        console.print(f"no receipts kept in {top}", highlight=False, soft_wrap=True)
    for folder in folders:
        if not folder.is_dir():
            console.print(f"no receipts kept in {folder}", highlight=False, soft_wrap=True)
            continue
        try:
            p = _prune_one(folder, older_than_days, now_ms, dry_run, include_uncovered)
        except (OSError, ValueError) as exc:
            raise fail(exc) from exc
        gone += p.gone
        console.print(
            escape(_said(folder, p, older_than_days, dry_run, include_uncovered)),
            highlight=False,
            soft_wrap=True,
        )
    key = settings.api_key
    if gone and key and not all_keys:  # whether a clean statement of the key is remembered
        source = f"registry:{settings.registry_url}"
        if not load_checked_through(settings.home / SEEN_FILE, source, key_tag(key)):
            console.print(
                "[yellow]no clean `llm-mesh ledger statement` of this key is remembered[/]: "
                "the charges of receipts removed are NO RECEIPT in the next one",
                highlight=False,
                soft_wrap=True,
            )
