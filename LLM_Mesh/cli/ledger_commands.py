"""``llm-mesh ledger verify``: check the public ledger, from a registry or a store.

Downloads (``--registry``, default ``$LLM_MESH_REGISTRY_URL``) or reads
(``--database-url``) the signing keys, every checkpoint and every entry, and hands them
to the verifier (``core/ledger_audit.py``); checks a consistency proof between each two
successive checkpoints and an inclusion proof of the latest checkpoint's last entry.
Prints a summary; exit 1 on any finding, each named (``missing``, ``changed``,
``reordered``, ``chain``, ``root``, ...). ``--key`` pins the registry's public key
(base64 or base64url) instead of trusting the published list.

A clean run remembers what it checked in ``$LLM_MESH_HOME/ledger_seen.json``: the size
and root of the entries, and the newest signed checkpoint, which ``llm-mesh ledger
checkpoint`` exports for other verifiers; ``verify --compare`` checks theirs against this
view (``cli/ledger_compare.py``, ``core/gossip.py``): a registry showing two histories (a
split view) is caught there.

From a registry (``cli/ledger_http.py``), entries come from the bulk export, or from the
paged list when the registry has no export, each answer read within bounds (the registry
is not trusted with the verifier's memory or time). Entries are read ahead while the
verifier works (a queue of a few batches), and the consistency proofs are fetched
meanwhile, a few at a time: the registry encodes while the verifier hashes.

The check itself (``Source``, ``audit``) is ``cli/ledger_check.py``, what it prints
(``print_report``, ``say_key_balance``) ``cli/ledger_render.py``; both named here too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    err,
    fail,
    first_answering,
    registry_fail,
    registry_settings,
    settings_from,
    warn_plain_http,
)
from LLM_Mesh.cli.ledger_check import Source as Source
from LLM_Mesh.cli.ledger_check import audit as audit
from LLM_Mesh.cli.ledger_compare import Compared, compare_all, print_compared, read_files
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.ledger_keys import AcceptNewKeyOpt, KeyMemory, LedgerApiKeyOpt
from LLM_Mesh.cli.ledger_receipts import ReceiptWatch
from LLM_Mesh.cli.ledger_render import print_report as print_report
from LLM_Mesh.cli.ledger_render import say_key_balance as say_key_balance
from LLM_Mesh.cli.ledger_seen import (
    SEEN_FILE,
    load_key_account,
    load_seen,
    load_seen_checkpoint,
    save_seen,
)
from LLM_Mesh.cli.ledger_store import StoreSource as StoreSource
from LLM_Mesh.cli.ledger_witness import check_witnessed, parse_witness_keys, witness_command
from LLM_Mesh.cli.overall_timeout import TIMEOUT_S, timeout_option, within
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.client import bearer_header
from LLM_Mesh.core.b64url import ed25519_key, ed25519_key_problem
from LLM_Mesh.core.key_account import key_account_finding, key_tag
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.core.receipt_verify import MAX_INPUT, Found, find_receipt
from LLM_Mesh.errors import InvalidApiKey, MeshError
from LLM_Mesh.text_files import bounded_text, read_text
from LLM_Mesh.tls import client_ssl_context

ledger_app = typer.Typer(help="The public ledger of NetworkTokens.", no_args_is_help=True)


def _receipt_in(path: Path) -> Found:
    """The receipt in the ``--receipt`` file ``path``, else a ``ValueError`` naming it
    (found 2026-12-06, ux34: a bare ``[Errno 2]``; garbage did not say which file)."""
    text = read_text(path, "--receipt", MAX_INPUT)  # (found 2026-12-06: read whole)
    try:
        return find_receipt(text)
    except ValueError as exc:
        raise ValueError(f"--receipt {path}: holds no receipt ({exc})") from None


@contextlib.asynccontextmanager
async def _source(
    registry_url: str,
    database_url: str | None,
    origin: str,
    ca_file: str | None = None,
    api_key: str | None = None,
) -> AsyncIterator[Source]:
    """The ledger's endpoints at ``registry_url`` (an https one verified by the system's CAs
    and ``ca_file``'s: ``--registry-ca``; ``api_key``: whose balance to check, else the
    pool's), or the store at ``database_url``."""
    if database_url is None:
        verify = client_ssl_context(ca_file)
        async with httpx.AsyncClient(base_url=registry_url, timeout=60, verify=verify) as client:
            yield HttpSource(client, api_key)
        return
    from LLM_Mesh.registry.ledger import SqlLedger
    from LLM_Mesh.registry.store import SqlStore

    async with SqlStore(database_url) as store:

        async def engine() -> Any:
            return store.engine

        yield StoreSource(SqlLedger(engine), origin)


CompareOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--compare",
        metavar="FILE_OR_URL",
        help="after a clean check, compare another verifier's checkpoint (what `llm-mesh "
        "ledger checkpoint` exported: a file, or an http(s) URL) with this view; repeatable. "
        "Two checkpoints signed by the registry that are not one history: `split view`; a "
        "file that cannot be read or is no checkpoint: an error, before the check",
    ),
]


# a witness run every minute (README) and a checkpoint every minute
# (LLM_MESH_LEDGER_CHECKPOINT_S) leave a checkpoint unwitnessed for about two minutes; a
# quarter of an hour covers a missed round or two, and not a fork kept up for long
WITNESS_MAX_AGE_S = 900

# the whole of a check from a registry (``--timeout``; found 2026-12-05: each answer is
# bounded, 300 s, and 30 429s in a row are waited out, but not their number, so a hostile
# registry held the verifier as long as it liked): an hour, ``cli/overall_timeout.py``
VERIFY_TIMEOUT_S = TIMEOUT_S

WitnessOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        metavar="KEY",
        help="require a recent checkpoint to carry this witness's cosignature (its key "
        "text, what `llm-mesh ledger witness` prints: name+keyID+base64); repeatable",
    ),
]


def _check_pin(key: str) -> str:
    """``--key``: an Ed25519 public key in base64 or base64url, said so before anything
    runs; as the registry publishes it (standard base64, ``GET /v1/ledger/keys``)."""
    raw = ed25519_key(key)
    if raw is None:
        raise fail(
            ValueError(
                f"--key {ed25519_key_problem(key)}; the registry's are the public_key values "
                "of GET /v1/ledger/keys"
            )
        )
    return base64.b64encode(raw).decode("ascii")


@ledger_app.command("verify")
def verify(
    registry: RegistryOpt = None,
    database_url: Annotated[
        str | None, typer.Option(help="read a store directly instead of a registry")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="pin the registry's public key (base64 or base64url)")
    ] = None,
    page: Annotated[
        int,
        typer.Option(
            min=1,
            max=10_000,
            help="entries per read from the store, or per page of GET /v1/ledger (a "
            "registry without the export)",
        ),
    ] = 10_000,
    compare: CompareOpt = None,
    witness: WitnessOpt = None,
    witnesses_needed: Annotated[
        int | None,
        typer.Option(
            min=1, help="how many of the --witness keys must have cosigned (default: all)"
        ),
    ] = None,
    witness_max_age: Annotated[
        int,
        typer.Option(
            min=0,
            help="seconds: checkpoints newer than the newest witnessed one are accepted "
            "(said as not witnessed yet) while its cosignatures are at most this old",
        ),
    ] = WITNESS_MAX_AGE_S,
    home: HomeOpt = None,
    registry_ca: RegistryCaOpt = None,
    receipt: Annotated[
        list[Path] | None,
        typer.Option(
            "--receipt",
            help="a receipt (or an answer holding one) whose request's entries, every one "
            "in the whole log naming its hash, must charge what it signs; repeatable",
        ),
    ] = None,
    accept_new_key: AcceptNewKeyOpt = False,
    api_key: LedgerApiKeyOpt = None,
    timeout: Annotated[
        float,
        timeout_option(
            "; --database-url, the operator's own store, is not bounded: no registry that "
            "could stall on purpose stands between"
        ),
    ] = VERIFY_TIMEOUT_S,
) -> None:
    """Check the whole ledger: hashes, chain, checkpoints' signatures and roots, proofs,
    balances; with --compare, other verifiers' checkpoints against this view; with
    --witness, that witnesses cosigned the newest checkpoint checked, or one whose
    cosignatures are at most --witness-max-age seconds old.

    Exit 0: everything checks out (and every compared checkpoint is one history with this
    view, and a recent checkpoint carries the witnesses' cosignatures); 1: any finding,
    each named (`split view`: the registry signed two histories, both notes printed as
    evidence; `signature`: a compared checkpoint this ledger's key did not sign;
    `unwitnessed`: too few of the trusted witnesses cosigned, or too long ago; `key`: a
    checkpoint dated outside its key's window, from its `created` to the next key's, 600 s
    of grace; `time`: an entry dated over 300 s after a checkpoint covering it, or anything
    over 300 s ahead of this clock), or an error, such as a ledger key no earlier run
    trusted that no signed rotation from a trusted key leads to (the first run trusts the
    registry's keys and says so; --key, --witness or --accept-new-key instead), or a
    registry not done within --timeout (an hour by default)."""
    ca = str(registry_ca.expanduser()) if registry_ca else None
    given = {"api_key": api_key} if api_key else {}  # checked as ask's (not an lmo_ token)
    settings = registry_settings(home, registry, database_url=database_url, registry_ca=ca, **given)
    source = f"db:{database_url}" if database_url else f"registry:{settings.registry_url}"
    where = "the store" if database_url else settings.registry_url
    seen_path = settings.home / SEEN_FILE
    db = settings.effective_database_url if database_url else None
    if key is not None:
        key = _check_pin(key)
    witnesses = parse_witness_keys(witness or ())
    if witnesses_needed is not None and witnesses_needed > len(witnesses):
        raise fail(
            ValueError(f"--witnesses-needed {witnesses_needed}: only {len(witnesses)} --witness")
        )

    try:
        receipts = [_receipt_in(p) for p in receipt or ()]
        compare_texts = read_files(compare or ())  # a bad file is said now, not as a finding
    except ValueError as exc:
        raise fail(exc) from exc
    # the user's key goes only to the registry configured with it, never to one named by
    # --registry (auditing another registry would hand it the key): there, the pool's
    mine = settings.api_key if registry is None or api_key else None
    memory = KeyMemory(seen_path, source, accept_new=accept_new_key, witnessed=bool(witnesses))
    if mine and not database_url:
        warn_plain_http(settings.registry_urls, "your API key")
    read: list[tuple[str, int, int] | None] = []  # the balance the registry showed for it
    watched: list[ReceiptWatch] = []  # the --receipt files, judged with the audit

    async def go() -> tuple[Report, list[Compared]]:
        if mine:  # one no header can carry: refused before any request, never quoted
            bearer_header(mine, "the API key", InvalidApiKey)
        remembered = load_seen(seen_path, source)
        urls, verify = settings.registry_urls, client_ssl_context(settings.registry_ca)
        url = settings.registry_url if db else await first_answering(urls, verify)
        where_from = (url, db, settings.ledger_origin)
        async with _source(*where_from, settings.registry_ca, mine) as src:
            if isinstance(src, StoreSource):  # the operator's own chain, beside registry.key
                from LLM_Mesh.registry.key_history import ROTATIONS_FILE, read_rotations

                src.key_rotations = read_rotations(settings.home / ROTATIONS_FILE)
            trusted = [key] if key else (await src.keys())[0] if receipts else []
            held = ReceiptWatch(receipts, trusted)
            watched.append(held)
            report = await audit(
                src, page=page, pin=key, remembered=remembered, watch=held.rows,
                now_us=int(time.time() * 1_000_000), judge=memory.judge,
            )  # fmt: skip
            held.judge(report)
            read.append(src.balance_read if isinstance(src, HttpSource) else None)
            if not compare or not report.ok:
                return report, []
            keys = [key] if key is not None else memory.trusted
            return report, await compare_all(
                compare, report.checkpoint, keys, src.consistency, texts=compare_texts
            )

    start = time.perf_counter()
    limit = None if database_url or not timeout else timeout  # (the store: the operator's)
    try:
        report, compared = asyncio.run(within(go(), limit, where))
    except (MeshError, OSError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise registry_fail(exc, settings) from exc
    remembered_path = seen_path if seen_path.exists() else None
    print_report(report, time.perf_counter() - start, remembered_path)
    if watched and report.ok:  # each --receipt said (found 2026-12-05: none was)
        signed = report.checkpoint.tree_size if report.checkpoint is not None else 0
        for line in watched[0].agreed(signed):
            console.print(f"[green]OK[/]: {shown(line)}")
    for line in watched[0].unchecked() if watched else ():  # not agreed, not a finding
        console.print(f"[yellow]unchecked[/]: {shown(line)}")
    shown_for_key = read[0] if read and mine else None
    if settings.api_key and not database_url:
        say_key_balance(report.ok, shown_for_key, None if api_key else registry, api_key)
    account = None if shown_for_key is None or not mine else (key_tag(mine), shown_for_key[0])
    if account is not None:
        before = load_key_account(seen_path, source, account[0])
        changed = key_account_finding(mine or "", before, account[1])
        if changed is not None:  # found 2026-12-05: another account's books passed as its
            err.print(Text.assemble(("account:", "red"), f" {terminal_text(changed)}"))
            raise typer.Exit(1)
    if not report.ok:
        if compare:
            err.print("comparisons skipped: this verifier's own view does not check out")
        raise typer.Exit(1)
    if witnesses:  # a view no trusted witness saw is not remembered as this ledger's
        needed = witnesses_needed or len(witnesses)
        # a key no earlier run trusted, taken on the witnesses' word: the newest checkpoint
        # must carry their cosignatures itself (-1: no riding on an older one's)
        max_age = -1 if memory.on_witness else witness_max_age
        if not check_witnessed(report.signed, witnesses, needed, time.time(), max_age):
            raise typer.Exit(1)
    where_seen = None if database_url else settings.registry_url
    save_seen(seen_path, source, report, where_seen, account, keys=memory.trusted)
    print_compared(compared, report.checkpoint, report.checkpoint_key, where)
    if not all(c.ok for c in compared):
        raise typer.Exit(1)


@ledger_app.command("checkpoint")
def checkpoint(
    registry: RegistryOpt = None,
    database_url: Annotated[
        str | None, typer.Option(help="the store `ledger verify --database-url` read")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write it to this file instead of printing it")
    ] = None,
    note: Annotated[
        bool, typer.Option("--note", help="the bare C2SP signed note instead of the JSON object")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Export the signed checkpoint the last clean `ledger verify` checked, for others to
    compare (`ledger verify --compare`).

    JSON: format, registry, origin, tree_size, root_hash (hex), time_us, public_key (base64)
    and note (the C2SP signed note: what a receiver checks, with the key it trusts). Exit 1
    if this ledger has none verified yet."""
    settings = settings_from(home, registry, database_url=database_url)
    source = f"db:{database_url}" if database_url else f"registry:{settings.registry_url}"
    try:
        cp = load_seen_checkpoint(settings.home / SEEN_FILE, source)
    except ValueError as exc:
        raise fail(exc) from exc
    if cp is None:
        raise fail(
            MeshError(
                "no signed checkpoint of this ledger verified yet: run `llm-mesh ledger verify` "
                "first (with the same --registry / --database-url)"
            )
        )
    text = str(cp["note"]) if note else json.dumps(cp, indent=1) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise fail(exc) from exc
    console.print(
        f"wrote {shown(out)}: checkpoint at size {cp['tree_size']} (root {shown(cp['root_hash'])})"
    )


@ledger_app.command("id")
def ledger_id(
    request_id: Annotated[
        str, typer.Argument(help="a client's own X-Request-Id / Idempotency-Key; '-': stdin")
    ],
) -> None:
    """What the ledger and the registry's request log (`requests.request_id`, the request
    line) name a client's own request id: `c-` + 24 hex digits of its hash, never the id.
    An operator given a user's id finds its rows by this (ledger entries start with it)."""
    from LLM_Mesh.core.receipt import client_ledger_id

    try:  # bounded (found 2026-12-06, cli36: read whole, /dev/zero until memory ran out)
        given = _id_from_stdin() if request_id == "-" else request_id
    except ValueError as exc:
        raise fail(exc) from None
    if not given:
        raise fail(MeshError("no request id given"))
    typer.echo(client_ledger_id(given))


#: the most of standard input ``ledger id -`` reads: an id is far shorter (1 MiB, as a prompt)
MAX_ID_INPUT = 1 << 20


def _id_from_stdin() -> str:
    """The id on standard input (one trailing line end and white space dropped), to
    :data:`MAX_ID_INPUT` bytes, else ``ValueError`` saying the bound."""
    stream = typer.get_binary_stream("stdin")
    try:
        return bounded_text(stream, MAX_ID_INPUT, "standard input", "a request id is short").strip()
    except UnicodeError:
        raise ValueError("standard input: is not UTF-8 text") from None


ledger_app.command("witness")(witness_command)
