"""``llm-mesh ledger statement``: every entry of the user's account, held against its receipts.

The user has an API key (``LLM_MESH_API_KEY``) and the answers (or receipts) the registry
gave it, saved in a folder (``--receipts DIR``). The command runs the whole ``ledger
verify`` audit (``cli/ledger_check.audit``: every entry read once, hashed, chained and
its tree root held against the registry's signed checkpoints) and, while the entries
stream by, keeps those that move money from or to the key's account and those naming a
held receipt (:class:`StatementWatch`). Since the verifier computed the signed tree over
every entry itself, the account's entries it keeps are proven in the log and complete:
nothing of the registry's choosing lists them. What they are judged by is pure
(``core/ledger_statement.statement``).

The receipts are ``--receipts DIR`` or, with the key, the key's folder that ``llm-mesh
ask`` fills (``receipt_files.key_folder``), bounded by a clean statement's window
(``core/receipt_keep.py``). The account is the one ``GET /v1/balance`` names for the key
(the key goes only to the registry it is configured with, as with ``ledger verify``); a
key made since 2026-12-05 names its own and any other is refused, for an older one the
first one named is remembered (``ledger_seen.json``, ``core/key_account.py``) and another
later refused. The
receipts tie it to what the registry really debits: a user-paid receipt paid from
another account is a finding. ``--account`` names it instead (no key sent): then it is
the user's word, checked against the receipts the same way if ``--receipts`` are given;
without, its debits are listed, not judged (the caller holds none of its receipts), and
the pool's never are (no one holds the receipts of the anonymous requests it pays for).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.text import Text

from LLM_Mesh.cli import ledger_commands
from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    begin_at,
    console,
    err,
    fail,
    first_answering,
    registry_fail,
    registry_settings,
    settings_from,
    warn_plain_http,
)
from LLM_Mesh.cli.earnings_commands import OperatorTokenOpt, operator_credential
from LLM_Mesh.cli.ledger_http import HttpSource, Row
from LLM_Mesh.cli.ledger_keys import AcceptNewKeyOpt, KeyMemory, LedgerApiKeyOpt
from LLM_Mesh.cli.ledger_seen import (
    SEEN_FILE,
    load_checked_through,
    load_key_account,
    load_seen,
    save_seen,
)
from LLM_Mesh.cli.ledger_served import ServedWatch, print_served, read_served
from LLM_Mesh.cli.overall_timeout import TIMEOUT_S, TimeoutOpt, within
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.cli.statement_render import operator_ok, print_statement
from LLM_Mesh.client import MeshClient, bearer_header
from LLM_Mesh.config import Settings
from LLM_Mesh.core.key_account import account_change, key_account_finding, key_tag
from LLM_Mesh.core.ledger_entry import ACCOUNT_RE, ENTRY_FIELDS
from LLM_Mesh.core.ledger_statement import NOT_HELD, statement
from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.pricing import Price
from LLM_Mesh.core.receipt import Receipt, ReceiptError
from LLM_Mesh.core.receipt_keep import KEEP_S
from LLM_Mesh.core.receipt_verify import MAX_INPUT, Found, find_receipt, parse_keys, verify
from LLM_Mesh.core.served_check import published_price, registry_prices, served_report
from LLM_Mesh.errors import InvalidApiKey, MeshError
from LLM_Mesh.plain_http import PlainHttpNotice
from LLM_Mesh.receipt_files import forget_covered, keep_covered, key_folder
from LLM_Mesh.text_files import NotRegularFile, open_regular, why_unreadable
from LLM_Mesh.tls import client_ssl_context

__all__ = ["StatementWatch", "read_bounded", "read_receipts", "statement_command"]

_FROM, _TO, _RH = (ENTRY_FIELDS.index(f) for f in ("from", "to", "receipt_hash"))
MAX_RECEIPT_FILES = 100_000
MAX_RECEIPT_BYTES = MAX_INPUT  # as receipt verify reads at most
MAX_KEPT_BYTES = 1024 * 1024  # a receipt `ask` keeps is a few KiB
MAX_SKIPPED = 1000  # files of the kept folder that hold no receipt, skipped, each named
_KEY = "LLM_MESH_API_KEY"


class StatementWatch:
    """Keeps, of every batch of entries the audit reads, those moving money from or to the
    account (``account()``: known once the registry named it, before the first entry) and
    those naming one of ``hashes``."""

    def __init__(self, account: Callable[[], str | None], hashes: set[str]) -> None:
        self._account = account
        self.account: str | None = None
        self.mine: list[Row] = []
        self.by_receipt: dict[str, list[Row]] = {h: [] for h in hashes}

    def rows(self, batch: Sequence[Row]) -> None:
        if self.account is None:
            self.account = self._account()
            if self.account is None:
                raise MeshError(
                    "the registry named no account for LLM_MESH_API_KEY (GET /v1/balance): "
                    "pass --account ACCOUNT"
                )
        account, by = self.account, self.by_receipt
        n = len(ENTRY_FIELDS)
        for row in batch:
            if len(row) != n:
                continue  # the audit names a malformed row
            if row[_FROM] == account or row[_TO] == account:
                self.mine.append(row)
            rh = row[_RH]  # a hash is a string: a list is no key (found 2026-12-05: a
            found = by.get(rh) if by and isinstance(rh, str) else None  # TypeError)
            if found is not None:
                found.append(row)


def read_receipts(
    folders: Sequence[Path], files: Sequence[Path], *, skip: Callable[[str], None] | None = None
) -> list[tuple[Path, Found]]:
    """The receipts in every file of ``folders`` (not hidden ones; found 2026-12-07: the last
    --receipts alone) and ``files``: each a saved answer (JSON or SSE), a bare receipt or an
    ``X-Mesh-Receipt`` header; a file that holds none, or is larger than :data:`MAX_RECEIPT_BYTES`,
    is an error naming it, or with ``skip`` (the default folder, which ``ask`` fills) skipped,
    ``skip`` told why. Only regular files are read (a FIFO or device never blocks it)."""
    paths = [(p, False) for p in files]
    for folder in folders:
        if not folder.is_dir():  # found 2026-12-06 (ux34): "not a folder" for a typo too
            why = (
                "is a file, not a folder (--receipt FILE reads one file)"
                if folder.exists()
                else "no such folder (check the path)"
            )
            raise ValueError(f"--receipts {folder}: {why}")
        found: list[Path] = []
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith(".") or not e.is_file():
                    continue
                found.append(Path(e.path))
                if len(found) > MAX_RECEIPT_FILES:
                    raise ValueError(f"--receipts {folder}: more than {MAX_RECEIPT_FILES} files")
        paths += [(p, skip is not None) for p in sorted(found)]
    out, skipped = [], 0
    for p, skippable in paths:
        try:
            limit = MAX_KEPT_BYTES if skippable else MAX_RECEIPT_BYTES
            out.append((p, find_receipt(read_bounded(p, limit))))
        except (ReceiptError, UnicodeDecodeError, ValueError, OSError) as exc:
            # found 2026-12-06 (ux34): a missing --receipt FILE was a bare [Errno 2]
            why = (
                f"{p}: {why_unreadable(exc)}"
                if isinstance(exc, OSError)
                else f"{p}: holds no receipt ({exc})"
            )
            if not skippable or skip is None:
                raise ValueError(why) from None
            skipped += 1
            if skipped > MAX_SKIPPED:
                raise ValueError(
                    f"{p.parent}: more than {MAX_SKIPPED} files hold no receipt (the folder "
                    "`llm-mesh ask` keeps receipts in holds nothing else): remove them"
                ) from None
            skip(why)
    return out


def read_bounded(p: Path, limit: int) -> str:
    """``p``'s text, at most ``limit`` bytes (else ``ValueError``, a larger file unread)."""
    try:
        f = open_regular(p)  # a FIFO: refused, not waited on (found 2026-12-06, cli36)
    except NotRegularFile:
        raise ValueError("not a regular file") from None
    with f:
        st = os.fstat(f.fileno())
        data = f.read(limit + 1) if st.st_size <= limit else b""
    if st.st_size > limit or len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes, more than any saved answer")
    return data.decode("utf-8")


def _checked(
    found: Sequence[tuple[Path, Found]], keys: Sequence[str]
) -> tuple[list[tuple[Path, Receipt]], list[str]]:
    """The receipts that verify under the registry's ``keys`` (with their files), and why
    the others do not."""
    by_id = parse_keys(keys) if found else {}
    good, bad = [], []
    for path, f in found:
        try:
            good.append((path, verify(f, by_id)))
        except ReceiptError as exc:
            bad.append(f"{path}: the receipt does not verify ({exc.reason}: {exc})")
    return good, bad


async def operator_account(
    settings: Settings, token: str, http_client: httpx.AsyncClient | None = None
) -> tuple[str, str | None, str]:
    """The operator account (and the unkeyed one of before migration 0018, if any) that
    ``GET /v1/earnings`` names for ``token``: the registry's word (a keyed pseudonym the
    operator cannot derive), remembered on first use by the caller; and the replica that
    answered (where the log is read from first)."""
    urls, ca = settings.registry_urls, settings.registry_ca
    quiet = PlainHttpNotice((), quiet=True)  # the statement says it (warn_plain_http)
    async with MeshClient(urls, ca_file=ca, http_client=http_client, notice=quiet) as client:
        report = await client.earnings(token, days=1)
        answered = client.base_url
    acct, old = report.get("account"), report.get("old_account")
    if not isinstance(acct, str) or not acct.startswith("operator:") or not ACCOUNT_RE.match(acct):
        raise MeshError("GET /v1/earnings named no operator account for the token")
    old_ok = isinstance(old, str) and old.startswith("operator:") and ACCOUNT_RE.match(old)
    return acct, old if old_ok else None, answered


def _as_entries(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [dict(zip(ENTRY_FIELDS, r, strict=True)) for r in rows]


def statement_command(
    receipts: Annotated[
        list[Path] | None,
        typer.Option(
            "--receipts",
            metavar="DIR",
            help="a folder of the answers (or receipts, or X-Mesh-Receipt headers) you saved, "
            "one a file, repeatable: every debit of your account must name one of them (default, with "
            "LLM_MESH_API_KEY: the key's folder of $LLM_MESH_HOME/receipts/, where `llm-mesh "
            "ask` keeps them; a file there that holds none is skipped, named)",
        ),
    ] = None,
    receipt: Annotated[
        list[Path] | None, typer.Option("--receipt", help="one more such file; repeatable")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="the ledger account to list (user:..., or the operator:... account `llm-mesh "
            "earnings` names) instead of the one the registry names for LLM_MESH_API_KEY "
            "(then no key is sent; without --receipts its debits are listed, not judged)",
        ),
    ] = None,
    operator: Annotated[
        bool,
        typer.Option(
            "--operator",
            help="list your operator account instead: the one GET /v1/earnings names for your "
            "operator token (as `llm-mesh earnings` finds it), remembered on first use",
        ),
    ] = False,
    operator_token: OperatorTokenOpt = None,
    served: Annotated[
        list[Path] | None,
        typer.Option(
            "--served",
            metavar="FILE",
            help="with --operator (or --account operator:..., e.g. `llm-mesh up`'s node's, "
            "which `llm-mesh node info` names): a node's served log (served.jsonl in the "
            "node's $LLM_MESH_HOME; its rotated files FILE.1 ... too), repeatable: every request it "
            "answered must be paid to the account at the published price (10 minutes to settle)",
        ),
    ] = None,
    fee_bps: Annotated[
        int | None,
        typer.Option(
            "--fee-bps",
            min=0,
            max=10_000,
            metavar="BPS",
            help="with --served: the network fee every request is judged by, basis points of "
            "each part (default: the fee the registry publishes now, GET /v1/pricing, with its "
            "prices; a request paid under another fee that its own entries state, the price "
            "held, is then listed, not a finding: a fee of before a change)",
        ),
    ] = None,
    registry: RegistryOpt = None,
    key: Annotated[
        str | None, typer.Option(help="pin the registry's public key (base64 or base64url)")
    ] = None,
    page: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="entries per page of GET /v1/ledger")
    ] = 10_000,
    home: HomeOpt = None,
    registry_ca: RegistryCaOpt = None,
    accept_new_key: AcceptNewKeyOpt = False,
    api_key: LedgerApiKeyOpt = None,
    timeout: TimeoutOpt = TIMEOUT_S,
) -> None:
    """List every ledger entry of your account and check it against your receipts.

    Reads and checks the whole log (as `ledger verify`), so the list is complete and
    every entry in it is in the registry's signed log. Exit 0: every debit names a
    receipt you hold, each receipt's entries charge what it signs and come from this
    account, and the audit is clean; 1: any of these fails (each named: a debit with no
    receipt, another amount or fee, a receipt paid from another account, a settled receipt
    older than 10 minutes that no entry names, another account named for the key or token
    than before), or an error (such as a registry not done within --timeout, an hour by
    default). Credits (grants) are listed; so are the debits of --account with no
    --receipts, and the pool's, not judged (said so; exit 0 judges none). The receipts: --receipts DIR,
    else with LLM_MESH_API_KEY the key's folder `llm-mesh ask` keeps them in; a clean run
    removes from that folder those it checked older than 30 days, records there the others
    it checked (all `receipt prune` removes), and the next run lists the debits it judged
    as checked. The account: the one the
    registry names for LLM_MESH_API_KEY, else --account, or with --operator the one it
    names for your operator token. With --operator --served FILE (a node's served log,
    repeatable): also every request the nodes answered must be paid to the account at the
    price and less the fee the registry publishes (GET /v1/pricing; --fee-bps: that fee
    instead); exit 1 naming each one unpaid, paid to another account or paid less (those
    newer than 10 minutes are pending; one paid under another fee that its own entries
    state, with the price held, is listed: a fee of before a change)."""
    ca = str(registry_ca.expanduser()) if registry_ca else None
    given = {"api_key": api_key} if api_key else {}  # checked as ask's (not an lmo_ token)
    settings = registry_settings(home, registry, registry_ca=ca, **given)
    if api_key and (account is not None or operator):
        raise fail(ValueError("give one account: --api-key, --account or --operator"))
    if key is not None:
        key = ledger_commands._check_pin(key)
    if account is not None and not ACCOUNT_RE.match(account):
        raise fail(ValueError(f"--account {account!r} is not a ledger account (user:...)"))
    if operator and account is not None:
        raise fail(ValueError("--operator names the account itself: not with --account"))
    if served and not (operator or (account or "").startswith("operator:")):
        raise fail(
            ValueError(
                "--served is for an operator account: with --operator or --account operator:..."
            )
        )
    token = None
    if operator:  # to the registry of every command's order, as `earnings` (cli42)
        try:
            token = operator_credential(settings, operator_token)
        except (MeshError, ValueError) as exc:  # (a node.toml that cannot be used)
            raise fail(exc) from exc
    source = f"registry:{settings.registry_url}"
    seen_path = settings.home / SEEN_FILE
    memory = KeyMemory(seen_path, source, accept_new=accept_new_key)  # as ledger verify's
    # the key goes only to the registry configured with it (as ledger verify's)
    mine = (
        settings.api_key
        if (registry is None or api_key) and account is None and not operator
        else None
    )
    if token is not None or mine:
        warn_plain_http(settings.registry_urls, "your operator token" if token else "your API key")
    if account is None and not mine and token is None:
        if settings.api_key and registry is not None:  # found 2026-12-05: "set" it, it said
            home_url = settings_from(home, None, registry_ca=ca).registry_url
            raise fail(
                MeshError(
                    f"no account to list: LLM_MESH_API_KEY is set but not sent to {registry} "
                    f"(a --registry: the key goes only to the registry configured with it, "
                    f"{home_url}); pass --api-key KEY to send it there, leave out --registry "
                    "(or set LLM_MESH_REGISTRY_URL), or pass --account user:... "
                    "(`llm-mesh balance` names it)"
                )
            )
        raise fail(
            MeshError(
                "no account to list: set LLM_MESH_API_KEY (the registry it is configured for "
                "names its account; not sent to a --registry), pass --api-key KEY or --account"
            )
        )
    kept = None  # the key's folder `ask` keeps its receipts in, read by default
    if mine and not receipts and not receipt:
        kept = key_folder(settings.home, mine)
        if not kept.is_dir():
            console.print(
                f"no receipts kept in {kept} (`llm-mesh ask` with this key keeps them there; "
                "--receipts DIR: a folder of your own)",
                highlight=False,
            )

    def skipped(why: str) -> None:
        err.print(Text.assemble(("skipped", "yellow"), f": {terminal_text(why)}"), soft_wrap=True)

    try:
        if kept is not None and kept.is_dir():
            found = read_receipts((kept,), (), skip=skipped)
        else:
            found = read_receipts(receipts or (), receipt or ())
        records, unread = read_served(served) if served else ([], [])
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    served_watch = ServedWatch(records)

    shown_read: list[tuple[str, int, int] | None] = []  # the key's balance as shown
    pricing: list[dict[str, Any]] = []  # --served: the registry's GET /v1/pricing

    named_for_token: list[tuple[str, str | None]] = []  # --operator: (account, old account)

    async def go() -> tuple[Any, StatementWatch, list[tuple[Path, Receipt]], list[str], str | None]:
        if mine:
            bearer_header(mine, "the API key", InvalidApiKey)
        urls: Sequence[str] = settings.registry_urls
        if token is not None:
            acct, old, answered = await operator_account(settings, token)
            named_for_token.append((acct, old))
            urls = begin_at(urls, answered)  # found 2026-12-05: a hung first one, asked again
        verify_tls = client_ssl_context(settings.registry_ca)
        url = await first_answering(urls, verify_tls)
        where = (url, None, settings.ledger_origin, settings.registry_ca, mine)
        async with ledger_commands._source(*where) as src:
            trusted = [key] if key else (await src.keys())[0]
            if served and fee_bps is None and isinstance(src, HttpSource):
                pricing.append(await src.pricing())  # the fee and prices it publishes now
            good, refused = _checked(found, trusted)
            held = [r for _, r in good]

            def named() -> str | None:
                read = src.balance_read if isinstance(src, HttpSource) else None
                if named_for_token:
                    return named_for_token[0][0]
                return account or (read[0] if read else None)

            watch = StatementWatch(named, {r.receipt_hash for r in held})

            def both(batch: Sequence[Row]) -> None:
                watch.rows(batch)
                served_watch.rows(batch)

            report = await ledger_commands.audit(
                src, page=page, pin=key, remembered=load_seen(seen_path, source),
                watch=both if records else watch.rows, now_us=int(time.time() * 1_000_000),
                judge=memory.judge,
            )  # fmt: skip
            watch.account = watch.account or named()
            if mine and isinstance(src, HttpSource):
                shown_read.append(src.balance_read)
            return report, watch, good, refused, watch.account

    start = time.perf_counter()
    try:
        bounded = within(
            go(), timeout or None, settings.registry_url, command="ledger statement",
            undone="nothing was remembered, no kept receipt removed",
        )  # fmt: skip
        report, watch, good, refused, acct = asyncio.run(bounded)
    except (MeshError, OSError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise registry_fail(exc, settings) from exc
    # found 2026-12-05: without the file, no word of what to do for a ledger started over
    remembered = seen_path if seen_path.exists() else None
    ledger_commands.print_report(report, time.perf_counter() - start, remembered)
    if shown_read:  # the balance GET /v1/balance showed, held against the entries (audit)
        ledger_commands.say_key_balance(report.ok, shown_read[0], None)
    if acct is None:
        raise fail(MeshError("the registry named no account for LLM_MESH_API_KEY: pass --account"))
    bad = list(refused)
    secret = token if token is not None else mine if account is None else None
    tofu = None if not secret else (key_tag(secret), acct)
    if named_for_token and named_for_token[0][1]:
        console.print(
            f"your account of before keyed accounts, {shown(named_for_token[0][1])}, is not "
            "listed (what it was paid stays there): run again with --account for it",
            highlight=False,
        )
    before_acct = None
    if tofu is not None:
        before_acct = load_key_account(seen_path, source, tofu[0])
        changed = (
            account_change(before_acct, acct)
            if token is not None
            else key_account_finding(secret or "", before_acct, acct)
        )
        if changed is not None:
            bad.append(changed if token is None else changed.replace(_KEY, "your operator token"))
    cp, held = report.checkpoint, [r for _, r in good]
    # a user's key: the debits an earlier clean statement judged are not judged again (their
    # receipts may be gone: core/receipt_keep.py), below the history the audit held to
    tag = tofu[0] if tofu is not None and token is None else None
    remembered_size = (load_seen(seen_path, source) or (0, b""))[0]
    before = min(load_checked_through(seen_path, source, tag), remembered_size) if tag else 0
    by_receipt = {h: _as_entries(rows) for h, rows in watch.by_receipt.items()}
    s = statement(
        acct, _as_entries(watch.mine), held, by_receipt,
        signed_size=0 if cp is None else cp.tree_size,
        signed_time_us=None if cp is None else cp.time_us, checked_before=before,
        judge_debits=account is None or bool(receipts or receipt),  # others' receipts: none
    )  # fmt: skip
    print_statement(s, console)
    problems = bad + s.findings
    if served:
        try:
            fee, price_of = _judged_by(fee_bps, pricing)
        except (MeshError, ValueError) as exc:
            raise fail(exc) from exc
        sr = served_report(
            acct, records, {k: _as_entries(v) for k, v in served_watch.by_key.items()},
            _as_entries(watch.mine), price_of=price_of, fee_bps=fee,
            signed_time_us=None if cp is None else cp.time_us, strict=fee_bps is not None,
        )  # fmt: skip
        print_served(sr, len(records), unread)
        problems += sr.findings
    for p in problems:
        err.print(Text.assemble(("STATEMENT", "red"), f" {terminal_text(p)}"), soft_wrap=True)
    if problems or not report.ok:
        err.print(
            f"[red]MISMATCH[/]: {counted(len(problems), 'statement finding')}"
            + ("" if report.ok else ", and the log itself does not check out (above)")
        )
        if any(f", {NOT_HELD}:" in p for p in s.findings):  # why, likely (found 2026-12-05)
            err.print(
                "answers asked other than with `llm-mesh ask` (the OpenAI SDK, curl) keep no "
                "receipt: save each (its JSON, or its X-Mesh-Receipt header) in a folder and pass"
                f" --receipts DIR --receipts {key_folder(settings.home, mine) if mine else 'KEPT'}"
                ' (where `ask` keeps them; README, "Your statement")',
                markup=False,
                highlight=False,
            )
        if mine and account is None:  # covers nothing: prune keeps all (found 2026-12-05)
            _forget_covered(key_folder(settings.home, mine))
        raise typer.Exit(1)
    through = (tag, cp.tree_size) if tag and cp is not None else None
    save_seen(seen_path, source, report, settings.registry_url, tofu, through, memory.trusted)
    if token is not None:  # the operator's own words (found 2026-12-05: the user's line)
        ok = operator_ok(bool(served), first=before_acct is None, signed=cp is not None)
    elif not s.debits_judged:  # found 2026-12-07 (money41b): the pool's was always MISMATCH
        ok = "the list is every entry of the account in the log (its debits not judged, above)"
    else:
        ok = (
            "every debit of the account names a receipt you hold and charges what it signs"
            + (" (or an earlier statement checked it)" if before else "")
            + "; the list is every entry of the account in the log"
            + ("; every request the served logs hold was paid to it" if served else "")
        )
    console.print(f"[green]OK[/]: {ok}", highlight=False)
    if kept is not None and cp is not None and kept.is_dir():  # only the folder ask fills
        n, unsaved = keep_covered(  # the old covered ones removed, the others recorded
            kept, good, by_receipt, judged_size=cp.tree_size, checkpoint_ms=cp.time_us // 1000,
            keep_s=KEEP_S,
        )  # fmt: skip
        if unsaved is not None:
            err.print(f"[yellow]warning[/]: what this statement covered was not recorded in "
                      f"{escape(f'{kept} ({unsaved})')}: `receipt prune` keeps those receipts",
                      soft_wrap=True)  # fmt: skip
        if n:
            console.print(
                f"removed {counted(n, 'kept receipt')} older than {KEEP_S // 86_400} days "
                f"whose charges this statement checked (from {kept})",
                highlight=False,
            )
    later = sum(not line.signed for line in s.lines)
    if later:  # published and checked, but nothing the registry signed covers them yet
        console.print(
            f"[yellow]{counted(later, 'entry is', 'entries are')} not under a signed "
            "checkpoint yet[/]: run again later for the registry's signature on them",
            highlight=False,
        )


def _forget_covered(folder: Path) -> None:
    """A statement of the key with findings: the record of its folder's covered receipts
    removed (``receipt_files.COVERED``): ``receipt prune`` keeps them all until a clean one."""
    what = escape(f"the record of the receipts a clean statement covered in {folder}")
    try:
        if forget_covered(folder):
            err.print(f"{what} is cleared: `receipt prune` keeps every receipt there until a "
                      "clean statement", highlight=False, soft_wrap=True)  # fmt: skip
    except OSError as exc:
        err.print(
            f"[yellow]warning[/]: {what} could not be cleared ({escape(str(exc))})", soft_wrap=True
        )


def _judged_by(
    fee_bps: int | None, pricing: Sequence[dict[str, Any]]
) -> tuple[int, Callable[[str], Price]]:
    """The fee and prices served requests are judged by: ``--fee-bps`` with the catalog's
    prices, else what the registry publishes (``GET /v1/pricing``)."""
    if fee_bps is not None:
        return fee_bps, published_price
    if not pricing:  # pragma: no cover - read in go() whenever --served has records
        raise MeshError("the registry's fee was not read: pass --fee-bps")
    return registry_prices(pricing[0])
