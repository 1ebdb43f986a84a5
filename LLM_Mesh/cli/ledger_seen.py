"""What ``llm-mesh ledger verify`` remembers: ``$LLM_MESH_HOME/ledger_seen.json``.

Per ledger (keyed by a hash of where it was read: ``registry:URL`` or ``db:URL``), the
size and root of the entries the last clean run checked (the next run checks the history
still hashes to it) and the newest signed checkpoint it checked, in ``core/gossip``'s
exchange form (what ``llm-mesh ledger checkpoint`` exports for other verifiers)::

    {"<sha256 hex>": {"size": 3, "root": "<hex>", "checkpoint": {"format": ..., "note": ...},
                      "keys": ["<base64>", ...]}}

``keys``: the ledger keys the verifier trusted for this ledger (on first use, by a signed
rotation from one it trusted, or accepted: ``core/ledger_keys.py``), kept from run to run.
The file is written whole, mode 0600, each read-change-write under an exclusive ``flock``
of ``ledger_seen.json.lock`` beside it (found 2026-12-05: two runs at once, a ``ledger
verify`` beside a ``ledger statement``, each wrote back what it had read, and the other's
keys, account or statement window were lost: the next run refused a key it had trusted, or
judged again debits whose receipts the statement had pruned, NO RECEIPT).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from LLM_Mesh.core.gossip import export
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.secret_files import make_private_dir, replace_file

__all__ = [
    "SEEN_FILE",
    "load_checked_through",
    "load_key_account",
    "load_keys",
    "load_seen",
    "load_seen_checkpoint",
    "remember_keys",
    "save_seen",
]

SEEN_FILE = "ledger_seen.json"  # in $LLM_MESH_HOME: per ledger, the last size and root checked


def _seen_key(source: str) -> str:
    """A ledger's key in :data:`SEEN_FILE`: a hash of where it was read (a database URL
    may hold a password)."""
    return hashlib.sha256(source.encode()).hexdigest()


def load_seen(path: Path, source: str) -> tuple[int, bytes] | None:
    """The size and root an earlier ``ledger verify`` of ``source`` checked, if any."""
    try:
        seen = json.loads(path.read_text()).get(_seen_key(source))
        if not seen or (isinstance(seen, dict) and "size" not in seen and "root" not in seen):
            return None  # nothing audited yet (``receipt verify`` keeps only keys)
        return int(seen["size"]), bytes.fromhex(seen["root"])
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is not what ledger verify wrote ({exc}); remove it") from None


def save_seen(
    path: Path, source: str, report: Report, registry: str | None = None,
    account: tuple[str, str] | None = None, through: tuple[str, int] | None = None,
    keys: Sequence[str] = (),
) -> None:  # fmt: skip
    """Remember what this audit checked (only a clean one; only ever a longer history),
    the newest signed checkpoint it checked (``core/gossip.export``'s form) and, kept from
    run to run, the account the registry named for an API key (``account``: its
    ``core/key_account.key_tag`` and the account; the first one named stays) and, for a
    clean ``ledger statement``, the size of the signed log it judged for the key
    (``through``: its tag and that size; only ever a larger one: ``core/receipt_keep.py``),
    and the ledger keys trusted (``keys``: added to those kept, none forgotten)."""
    with _locked(path):
        _save_seen(path, source, report, registry, account, through, keys)


def _save_seen(
    path: Path, source: str, report: Report, registry: str | None,
    account: tuple[str, str] | None, through: tuple[str, int] | None, keys: Sequence[str],
) -> None:  # fmt: skip
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {}
    seen: dict[str, Any] = {"size": report.entries, "root": report.root.hex()}
    if report.checkpoint is not None:
        seen["checkpoint"] = export(report.checkpoint, report.checkpoint_key, registry)
    before = data.get(_seen_key(source))
    accounts = before.get("accounts") if isinstance(before, dict) else None
    accounts = dict(accounts) if isinstance(accounts, dict) else {}
    if account is not None:
        accounts.setdefault(account[0], account[1])
    if accounts:
        seen["accounts"] = accounts
    judged = before.get("statements") if isinstance(before, dict) else None
    judged = {k: v for k, v in judged.items() if type(v) is int} if isinstance(judged, dict) else {}
    if through is not None:
        judged[through[0]] = max(judged.get(through[0], 0), through[1])
    if judged:
        seen["statements"] = judged
    kept = before.get("keys") if isinstance(before, dict) else None
    kept = [k for k in kept if isinstance(k, str)] if isinstance(kept, list) else []
    kept += [k for k in keys if k not in kept]
    if kept:
        seen["keys"] = kept
    data[_seen_key(source)] = seen
    make_private_dir(path.parent)
    replace_file(path, json.dumps(data, indent=1, sort_keys=True).encode())


def _seen(path: Path, source: str) -> Any:
    """What the last clean ``ledger verify`` of ``source`` filed in ``path`` (None: nothing)."""
    try:
        return json.loads(path.read_text()).get(_seen_key(source))
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not what ledger verify wrote ({exc}); remove it") from None


def load_seen_checkpoint(path: Path, source: str) -> dict[str, Any] | None:
    """The signed checkpoint the last clean ``ledger verify`` of ``source`` checked."""
    seen = _seen(path, source)
    cp = seen.get("checkpoint") if isinstance(seen, dict) else None
    return cp if isinstance(cp, dict) else None


def load_key_account(path: Path, source: str, tag: str) -> str | None:
    """The account an earlier clean ``ledger verify`` of ``source`` was shown for the key
    filed under ``tag`` (``core/key_account.key_tag``), if any."""
    seen = _seen(path, source)
    accounts = seen.get("accounts") if isinstance(seen, dict) else None
    account = accounts.get(tag) if isinstance(accounts, dict) else None
    return account if isinstance(account, str) else None


def load_checked_through(path: Path, source: str, tag: str) -> int:
    """The size of the signed log an earlier clean ``ledger statement`` of ``source`` judged
    for the key filed under ``tag`` (0: none)."""
    seen = _seen(path, source)
    judged = seen.get("statements") if isinstance(seen, dict) else None
    size = judged.get(tag) if isinstance(judged, dict) else None
    return size if type(size) is int and size > 0 else 0


def load_keys(path: Path, source: str) -> list[str] | None:
    """The ledger keys earlier clean runs of ``source`` trusted (``None``: none yet)."""
    seen = _seen(path, source)
    keys = seen.get("keys") if isinstance(seen, dict) else None
    if not isinstance(keys, list):
        return None
    kept = [k for k in keys if isinstance(k, str)]
    return kept or None


def remember_keys(path: Path, source: str, keys: Sequence[str]) -> None:
    """Keep ``keys`` among the ledger keys trusted for ``source``, nothing else changed
    (``receipt verify``: no audit to remember)."""
    if not keys:
        return
    with _locked(path):
        _remember_keys(path, source, keys)


def _remember_keys(path: Path, source: str, keys: Sequence[str]) -> None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {}
    except ValueError as exc:
        raise ValueError(f"{path} is not what ledger verify wrote ({exc}); remove it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not what ledger verify wrote; remove it")
    seen = data.get(_seen_key(source))
    seen = dict(seen) if isinstance(seen, dict) else {}
    kept = seen.get("keys")
    kept = [k for k in kept if isinstance(k, str)] if isinstance(kept, list) else []
    seen["keys"] = kept + [k for k in keys if k not in kept]
    data[_seen_key(source)] = seen
    make_private_dir(path.parent)
    replace_file(path, json.dumps(data, indent=1, sort_keys=True).encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``<path>.lock`` while the block reads and replaces ``path``
    (module docstring), waited for; none where there is no ``flock``."""
    make_private_dir(path.parent)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
