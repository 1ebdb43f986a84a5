"""Auditing the ledger from what it publishes: the verifier behind ``llm-mesh ledger verify``.

Shares with the writer only the hashing rules (``core/merkle.py``), the leaf encoding
(``core/ledger_entry.entry_leaf``) and the checkpoint format (``core/checkpoint.py``);
its tree and its proof checks (``core/merkle_verify.py``) are its own. Pure: the
caller downloads and feeds it.

:class:`Auditor` takes the published checkpoints and keys first, then every entry in
order (:meth:`Auditor.entry`), and checks, naming each finding:

- ``missing``: a sequence number is skipped (a row was deleted);
- ``reordered``: an entry hashes right only under another sequence number;
- ``changed``: an entry's fields do not hash to its leaf hash;
- ``chain``: an entry's ``prev_hash`` is not its predecessor's leaf hash;
- ``time``: an entry is older than its predecessor, or dated after a checkpoint that
  covers it, or a checkpoint (or an entry no checkpoint covers) is dated ahead of the
  verifier's clock (``core/ledger_time.py``: with ``CLOCK_SKEW_S``);
- ``key``: a checkpoint dated outside its key's validity window (signed by a key the
  registry had rotated away from by then, ``core/ledger_time.KeyWindows``);
- ``amount`` / ``balance``: an amount that is not a whole number >= 1 or moves between
  one account and itself; an account other than ``mint`` below zero;
- ``signature``: a checkpoint not signed by a published key, or saying other than its
  record; ``root``: a checkpoint's root is not the root of the entries;
- ``consistency``: a consistency proof between successive checkpoints fails;
- ``inclusion``: an inclusion proof fails; ``truncated``: a checkpoint covers entries
  that were not published;
- ``rewritten``: a checkpoint an earlier audit saw signed (``remembered``: size and root,
  what ``llm-mesh ledger verify`` keeps) now has another root, or the entries no longer
  hash to it (``root``), or they were cut below it (``truncated``): a registry that
  rewrote its history and re-signed every checkpoint passes every other check;
- ``stored`` / ``reserved`` (:func:`stored_findings`; every row of a store read directly,
  or the account a registry's ``GET /v1/balance`` shows, with the tree size it read):
  an account's ``balances`` row says another balance than the entries up to the same
  tree size (a balance changed without a ledger entry, or an entry without its balance),
  or holds a ``reserved`` below zero or above its balance (money reserved twice, or
  released twice: the payer could spend what it does not have).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from LLM_Mesh.core.checkpoint import BadCheckpoint, Checkpoint, open_checkpoint
from LLM_Mesh.core.ledger_entry import (
    ENTRY_FIELDS,
    GENESIS_PREV,
    MINT,
    entry_leaf,
    leaf_encoder,
)
from LLM_Mesh.core.ledger_time import EntryBounds, KeyWindows, ahead_problem
from LLM_Mesh.core.merkle import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX, leaf_hash, node_hash
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion

__all__ = ["Auditor", "Finding", "Report", "stored_findings"]

_REORDER_WINDOW = 16


class _Slow(Exception):
    """An entry the fast path does not vouch for: the full check names what is wrong."""


# what sends an entry from the fast path to the full check (a field of another type,
# a number beyond its field, a string too long, a row of another length)
_SLOW = (_Slow, TypeError, ValueError, AttributeError, OverflowError, struct.error)
_REQUIRED = frozenset(("seq", "time_us", "kind", "from", "to", "amount", "prev_hash", "leaf_hash"))
MAX_FINDINGS = 1000


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    consistency_proofs: int = 0
    inclusion_proofs: int = 0
    balances: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0
    root: bytes = EMPTY_ROOT  # the root of the entries checked (what a later audit remembers)
    # the newest signed checkpoint the entries were checked against, and its key (base64):
    # what this verifier shows others (``core/gossip.py``)
    checkpoint: Checkpoint | None = None
    checkpoint_key: str = ""
    # every signed checkpoint the entries were checked against, newest first (what
    # ``ledger verify --witness`` looks for cosignatures on: ``core/witness.witnessed``)
    signed: list[Checkpoint] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, message: str) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(kind, message))
        else:
            self.more_findings += 1


class _Tree:
    """The verifier's own incremental Merkle tree: the roots of its complete subtrees,
    largest first (one per 1-bit of ``size``, as RFC 9162's tree splits)."""

    def __init__(self) -> None:
        self.stack: list[bytes] = []
        self.size = 0

    def push(self, h: bytes) -> None:
        n, stack = self.size, self.stack
        while n & 1:  # each trailing 1-bit of the size is a subtree this leaf completes
            h = node_hash(stack.pop(), h)
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{what} is not 64 hex digits")
    return bytes.fromhex(value)


class Auditor:
    """Checks a ledger fed to it in order (see the module docstring)."""

    def __init__(
        self,
        checkpoints: Sequence[Mapping[str, object]],
        keys: Sequence[str],
        origin: str,
        remembered: tuple[int, bytes] | None = None,
        *,
        pinned: bool = False,  # ``keys`` is the one key the user pinned, not the published list
        created: Mapping[str, int | None] | None = None,  # published key -> ``created`` (s)
        # the verifier's clock; None: no time rule but the entries' order (a test's ledger
        # written on two clocks) and no key window (``created``)
        now_us: int | None = None,
    ) -> None:
        self.report = Report()
        self._unknown_key = (
            "signed by another key than the pinned one"
            if pinned
            else "signed by a key the registry does not publish"
        )
        self._tree = _Tree()
        self._expected = 0
        self._prev = GENESIS_PREV
        self._prev_hex = GENESIS_PREV.hex()
        self._last_us = -(1 << 63)  # int64's least: no entry is older than the first
        self._encode = leaf_encoder()
        self._roots: dict[int, bytes] = {}  # checkpoint size -> signed root
        self._opened: dict[int, tuple[Checkpoint, str]] = {}  # size -> checkpoint, its key
        self._last_leaves: dict[int, bytes] = {}  # checkpoint size -> its last leaf's hash
        self._bal: dict[str, int] = self.report.balances
        published = {base64.b64decode(k) for k in keys}
        self._windows = None if created is None or now_us is None else KeyWindows(created)
        self._now = now_us
        for cp in checkpoints:
            self._checkpoint(cp, published, origin)
        times = {s: cp.time_us for s, (cp, _) in self._opened.items()}
        self._bounds = EntryBounds(times if now_us is not None else {}, now_us)
        self._lim, self._lim_size, self._until = 0, 0, -1  # the entry time bound (_limit)
        if remembered is not None:  # checked like a signed checkpoint from here on
            size, root = remembered
            now = self._roots.setdefault(size, root)
            if now != root:
                self.report.add(
                    "rewritten", f"checkpoint at size {size} now signs another root than the "
                    "one an earlier audit saw: the history was rewritten"
                )  # fmt: skip

    def _checkpoint(self, cp: Mapping[str, object], keys: set[bytes], origin: str) -> None:
        size = cp.get("tree_size")
        self.report.checkpoints += 1
        try:
            pub = base64.b64decode(str(cp.get("public_key")))
            if pub not in keys:
                raise BadCheckpoint(self._unknown_key)
            opened = open_checkpoint(str(cp.get("note")), origin, pub)
            if opened.tree_size != size or opened.root_hash.hex() != cp.get("root_hash"):
                raise BadCheckpoint("its note says another size or root than its record")
        except (BadCheckpoint, ValueError) as exc:
            self.report.add("signature", f"checkpoint at size {size}: {exc}")
            return
        if opened.tree_size == 0 and opened.root_hash != EMPTY_ROOT:
            # found 2026-12-05 (attack32): no entry is pushed to check a size-0 root against,
            # so any root passed (and was exported to other verifiers as the one checked)
            self.report.add("root", "checkpoint at size 0: root is not the empty tree's")
            return
        self._roots[opened.tree_size] = opened.root_hash
        self._opened[opened.tree_size] = (opened, str(cp.get("public_key")))
        if self._windows is not None:  # found 2026-12-05: any published key, any time
            problem = self._windows.problem(str(cp.get("public_key")), opened.time_us)
            if problem is not None:
                self.report.add("key", f"checkpoint at size {size}: {problem}")
        ahead = ahead_problem(opened.time_us, self._now)
        if ahead is not None:
            self.report.add("time", f"checkpoint at size {size}: {ahead}")

    def _limit(self, index: int) -> int:
        """The latest time the entry at tree index ``index`` may carry (kept with the
        index up to which it holds and the checkpoint size it comes from)."""
        if index >= self._until:
            bound, self._lim_size, self._until = self._bounds.at(index)
            self._lim = 1 << 62 if bound is None else bound
        return self._lim

    @property
    def signed_sizes(self) -> list[int]:
        return sorted(self._roots)

    def signed_root(self, size: int) -> bytes | None:
        return self._roots.get(size)

    def entry(self, e: Mapping[str, object]) -> None:
        """Check the next published entry (a ``GET /v1/ledger`` item)."""
        try:
            row = tuple(e[f] if f in _REQUIRED else e.get(f) for f in ENTRY_FIELDS)
        except KeyError as exc:
            self._malformed(exc)
            return
        self.rows((row,))

    def rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Check the next published entries, each a row in ``ENTRY_FIELDS`` order
        (``GET /v1/ledger/export``'s lines).

        An entry that is in sequence, chains to its predecessor, hashes to its published
        leaf hash and moves a valid amount forward in time is checked here, inline, its
        state in local variables (the common case, about a million times per audit);
        any other goes through :meth:`_entry`, which names what is wrong. Both apply the
        same checks.
        """
        sha256, encode, slow = hashlib.sha256, self._encode, _SLOW
        leaf_prefix, node_prefix = LEAF_PREFIX, NODE_PREFIX
        bal, roots, rep, tree = self._bal, self._roots, self.report, self._tree
        stack = tree.stack
        expected, prev_b, prev_hex, last_us = (
            self._expected,
            self._prev,
            self._prev_hex,
            self._last_us,
        )
        size, entries = tree.size, 0
        lim, until = self._limit(size), self._until
        for row in rows:
            try:
                seq, time_us, kind, frm, to, amount, rid, rh, prev, stored = row
                if size >= until:
                    lim, until = self._limit(size), self._until
                if (
                    seq != expected
                    or prev != prev_hex
                    or type(amount) is not int
                    or amount < 1
                    or frm == to
                    or time_us < last_us
                    or time_us > lim
                ):
                    raise _Slow
                computed = sha256(
                    leaf_prefix + encode(seq, time_us, kind, frm, to, amount, rid, rh, prev_b)
                ).digest()
                computed_hex = computed.hex()
                if computed_hex != stored:
                    raise _Slow
            except slow:
                self._expected, self._prev, self._prev_hex, self._last_us = (
                    expected, prev_b, prev_hex, last_us
                )  # fmt: skip
                tree.size, rep.entries, entries = size, rep.entries + entries, 0
                self._entry(row)
                expected, prev_b, prev_hex, last_us = (
                    self._expected, self._prev, self._prev_hex, self._last_us
                )  # fmt: skip
                size = tree.size
                lim, until = self._limit(size), self._until
                continue
            entries += 1
            last_us = time_us
            b = bal.get(frm, 0) - amount
            bal[frm] = b
            bal[to] = bal.get(to, 0) + amount
            if b < 0 and frm != MINT:
                rep.add("balance", f"entry {seq}: account {frm} goes below zero ({b})")
            h, n = computed, size  # the tree's push (_Tree.push), inline
            while n & 1:
                h = sha256(node_prefix + stack.pop() + h).digest()
                n >>= 1
            stack.append(h)
            size += 1
            prev_b, prev_hex, expected = computed, computed_hex, seq + 1
            signed = roots.get(size)
            if signed is not None:
                tree.size = size
                self._signed_leaf(computed, signed)
        self._expected, self._prev, self._prev_hex, self._last_us = (
            expected, prev_b, prev_hex, last_us
        )  # fmt: skip
        tree.size, rep.entries = size, rep.entries + entries

    def _malformed(self, exc: Exception) -> None:
        self.report.add("changed", f"entry #{self._expected}: malformed ({exc})")
        self._expected += 1

    def _signed_leaf(self, computed: bytes, signed: bytes) -> None:
        size = self._tree.size
        self._last_leaves[size] = computed
        if signed != self._tree.root():
            self.report.add("root", f"checkpoint at size {size}: root is not the entries' root")

    def _entry(self, r: Sequence[object]) -> None:
        """The full check of one entry, naming every finding."""
        rep = self.report
        try:
            if len(r) != len(ENTRY_FIELDS):
                raise ValueError(f"{len(r)} fields, not {len(ENTRY_FIELDS)}")
            seq, time_us, amount = int(r[0]), int(r[1]), r[5]  # type: ignore[call-overload]
            kind, frm, to = str(r[2]), str(r[3]), str(r[4])
            rid, rh = r[6], r[7]
            prev, stored_leaf = _hex(r[8], "prev_hash"), _hex(r[9], "leaf_hash")
        except (TypeError, ValueError) as exc:
            self._malformed(exc)
            return
        rep.entries += 1
        if seq > self._expected:
            gap = (
                f"{self._expected}"
                if seq == self._expected + 1
                else f"{self._expected} to {seq - 1}"
            )
            rep.add("missing", f"entry {gap} is missing (the next published entry is {seq})")
        elif seq < self._expected:
            rep.add("reordered", f"entry {seq} comes after entry {self._expected - 1}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            rep.add("amount", f"entry {seq}: amount {amount!r} is not a whole number >= 1")
            amount = 0
        args = (time_us, kind, frm, to, amount, _opt(rid), _opt(rh), prev)
        try:
            computed = leaf_hash(entry_leaf(seq, *args))
        except (ValueError, struct.error) as exc:  # a size beyond its field, say
            rep.add("changed", f"entry {seq}: malformed ({exc})")
            self._expected = seq + 1
            return
        if computed != stored_leaf:
            moved = next(
                (
                    s
                    for d in range(1, _REORDER_WINDOW + 1)
                    for s in (seq - d, seq + d)
                    if s >= 0 and leaf_hash(entry_leaf(s, *args)) == stored_leaf
                ),
                None,
            )
            if moved is not None:
                rep.add(
                    "reordered", f"entry {seq} is the entry written as {moved} (rows reordered)"
                )
            else:
                rep.add(
                    "changed", f"entry {seq} was changed: its fields do not hash to its leaf_hash"
                )
        elif prev != self._prev and seq == self._expected:
            rep.add("chain", f"entry {seq}: prev_hash is not entry {seq - 1}'s leaf hash")
        if time_us < self._last_us:
            rep.add("time", f"entry {seq} is older than the entry before it")
        lim = self._limit(self._tree.size)
        if time_us > lim:
            late = self._bounds.problem(seq, time_us, lim, self._lim_size)
            rep.add("time", late or f"entry {seq} is dated too late")
        self._last_us = time_us
        if frm == to and amount:
            rep.add("amount", f"entry {seq} moves {amount} from {frm} to itself")
        self._bal[frm] = self._bal.get(frm, 0) - amount
        self._bal[to] = self._bal.get(to, 0) + amount
        if self._bal[frm] < 0 and frm != MINT:
            rep.add("balance", f"entry {seq}: account {frm} goes below zero ({self._bal[frm]})")
        self._tree.push(computed)
        self._prev, self._prev_hex = computed, computed.hex()
        self._expected = seq + 1
        signed = self._roots.get(self._tree.size)
        if signed is not None:
            self._signed_leaf(computed, signed)

    def finish(self) -> Report:
        """After the last entry: checkpoints beyond what was published."""
        self.report.root = self._tree.root()
        covered = [s for s in self._opened if s <= self._tree.size]
        if covered:
            self.report.checkpoint, self.report.checkpoint_key = self._opened[max(covered)]
            self.report.signed = [self._opened[s][0] for s in sorted(covered, reverse=True)]
        for size in self._roots:
            if size > self._tree.size:
                self.report.add(
                    "truncated", f"checkpoint at size {size} covers entries not published "
                    f"(only {self._tree.size})"
                )  # fmt: skip
        return self.report

    def consistency(self, first: int, second: int, proof: Sequence[bytes]) -> None:
        """Check a consistency proof between two signed checkpoints."""
        self.report.consistency_proofs += 1
        r1, r2 = self._roots.get(first), self._roots.get(second)
        if r1 is None or r2 is None or not verify_consistency(first, second, r1, r2, proof):
            self.report.add("consistency", f"checkpoints {first} -> {second}: proof fails")

    def inclusion(self, size: int, proof: Sequence[bytes]) -> None:
        """Check an inclusion proof of the last entry of the checkpoint at ``size``, whose
        leaf hash the auditor computed itself."""
        self.report.inclusion_proofs += 1
        index = size - 1
        root, leaf = self._roots.get(size), self._last_leaves.get(size)
        if root is None or leaf is None or not verify_inclusion(index, size, leaf, proof, root):
            self.report.add("inclusion", f"entry {index} in checkpoint {size}: proof fails")


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def stored_findings(
    computed: Mapping[str, int],
    stored: Mapping[str, tuple[int, int]],
    size: int,
    *,
    every: bool = True,
) -> list[Finding]:
    """What a store's ``balances`` rows (account → ``(balance, reserved)``, read at tree
    size ``size``) say against the balances the first ``size`` entries add up to
    (``computed``): an account whose stored balance differs (``stored``; an account
    missing on one side counts as 0), and one whose ``reserved`` is below zero or, for
    any account but ``mint``, above its balance (``reserved``). In account order.
    ``every``: ``stored`` is every row (else only its accounts are checked: the one a
    registry's ``GET /v1/balance`` shows)."""
    out: list[Finding] = []
    for account in sorted(computed.keys() | stored.keys() if every else stored.keys()):
        balance, reserved = stored.get(account, (0, 0))
        entries = computed.get(account, 0)
        if balance != entries:
            out.append(
                Finding(
                    "stored",
                    f"account {account}: the store's balance is {balance}, the first {size} "
                    f"entries add up to {entries} ({balance - entries:+d} without an entry)",
                )
            )
        if reserved < 0 or (account != MINT and reserved > max(balance, 0)):
            out.append(
                Finding(
                    "reserved",
                    f"account {account}: {reserved} reserved of a balance of {balance}",
                )
            )
    return out
