"""``llm-mesh receipt verify FILE|-``: check a receipt offline against the published keys;
``llm-mesh receipt fetch HASH``: a cut stream's stored receipt fetched with the API key that
paid for it (``cli/receipt_fetch.py``), then checked the same way.

Reads a receipt, a whole answer (JSON), a stream's final chunk (a completions stream's
as its ``data:`` line: as JSON it is read as a whole answer) or its whole SSE text,
or an ``X-Mesh-Receipt`` header value, from FILE or stdin (``-``); the registry keys
from ``--key B64`` (repeatable), ``--keys FILE`` (what ``GET /v1/ledger/keys`` answers,
saved, or one key a line) or, when neither is given, from the registry
(``--registry``, default ``$LLM_MESH_REGISTRY_URL``: ``GET /v1/ledger/keys``, held to
the keys an earlier run kept: ``cli/ledger_keys.py``). The
decisions are pure (``core/receipt_verify.py``). Exit 0 when valid, 1 when not, with
the reason named (``INVALID gateway_signature: ...``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from LLM_Mesh.bounded_http import call
from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    begin_at,
    console,
    err,
    fail,
    no_registry_answered,
    registry_said,
    registry_settings,
    warn_plain_http,
)
from LLM_Mesh.cli.ledger_keys import AcceptNewKeyOpt, KeyMemory
from LLM_Mesh.cli.ledger_seen import SEEN_FILE, load_seen, remember_keys
from LLM_Mesh.cli.overall_timeout import TIMEOUT_S, Deadline, Runner, TimeoutOpt
from LLM_Mesh.cli.receipt_fetch import fetched, not_a_hash
from LLM_Mesh.cli.receipt_ledger import included, request_entries
from LLM_Mesh.cli.receipt_prune import prune_command
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.client import gateway_urls
from LLM_Mesh.config import Settings
from LLM_Mesh.core.plural import counted
from LLM_Mesh.core.receipt import Receipt, ReceiptError
from LLM_Mesh.core.receipt_ledger import (
    NO_AMOUNTS,
    ledger_findings,
    unchecked_debits,
    unsettled_findings,
)
from LLM_Mesh.core.receipt_verify import MAX_INPUT, Found, find_receipt, parse_keys, verify
from LLM_Mesh.errors import MeshError
from LLM_Mesh.text_files import bounded_text, read_text
from LLM_Mesh.tls import client_ssl_context

receipt_app = typer.Typer(help="Signed receipts of answers.", no_args_is_help=True)
receipt_app.command("prune")(prune_command)

__all__ = ["check", "keys_from_listing", "receipt_app"]

# the most of GET /v1/ledger/keys read, decoded: a key is ~150 bytes of JSON with its
# times; 1 MiB holds thousands of rotations
KEYS_ANSWER_BYTES = 1 << 20
# the way on without a registry, said when none answers for its keys
OFFLINE = "; or pass the keys themselves (--key KEY, --keys FILE) to verify offline"


def keys_from_listing(text: str) -> list[str]:
    """Key texts from a saved ``GET /v1/ledger/keys`` answer, a JSON list of keys, or
    plain text with one key a line (``#`` comments allowed)."""
    body = text.strip()
    if body.startswith(("{", "[")):
        try:
            return _keys_of(json.loads(body))
        except RecursionError:  # found 2026-12-04: a traceback
            raise ValueError("a keys listing nested too deep to read") from None
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]


def _keys_of(data: Any) -> list[str]:
    """Key texts from ``GET /v1/ledger/keys``' answer (or a list of keys), parsed."""
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, list):
        raise ValueError("a keys file is /v1/ledger/keys' answer or a list of keys")
    if not all(isinstance(k, str) or isinstance(_obj(k).get("public_key"), str) for k in data):
        raise ValueError("a keys listing holds an entry that is neither a key nor a key's object")
    return [k if isinstance(k, str) else k["public_key"] for k in data]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def fetch_keys(
    registry_url: str | Sequence[str], timeout_s: float = 10.0, ca_file: str | None = None
) -> list[str]:
    """The registry's published keys (``GET /v1/ledger/keys``): of the first of the
    replicas (``URL,URL,...``) that answers; https verified with ``ca_file`` too; read to
    at most :data:`KEYS_ANSWER_BYTES` within 3 × ``timeout_s`` (found 2026-12-03: read
    whole by ``httpx.get``, a gzip bomb inflated, a byte at a time held the command for
    as long as the registry liked)."""
    return fetch_keys_at(registry_url, timeout_s, ca_file)[1]


def fetch_keys_at(
    registry_url: str | Sequence[str], timeout_s: float = 10.0, ca_file: str | None = None,
    chain: list[object] | None = None, run: Runner = asyncio.run, named: bool = False,
) -> tuple[str, list[str]]:  # fmt: skip
    """:func:`fetch_keys` and the replica that answered them; ``chain``, when given, gets
    the answer's ``key_rotations`` (the registry's signed rotation chain; None: none);
    ``run``: the command's ``--timeout`` over all its replicas (``Deadline``); ``named``:
    the registry was given by ``--registry`` (``no_registry_answered``)."""
    url, text = run(_fetch_keys(gateway_urls(registry_url), timeout_s, ca_file, named))
    if chain is not None:
        chain.append(_rotations_in(text))
    return url, keys_from_listing(text)


def _rotations_in(text: str) -> object:
    """The ``key_rotations`` of a ``GET /v1/ledger/keys`` answer (None: none)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data.get("key_rotations") if isinstance(data, dict) else None


async def _fetch_keys(
    urls: Sequence[str], timeout_s: float, ca_file: str | None, named: bool
) -> tuple[str, str]:
    verify = client_ssl_context(ca_file)
    async with httpx.AsyncClient(timeout=timeout_s, verify=verify) as client:
        for n, url in enumerate(urls, 1):
            try:
                r = await call(client, "GET", url + "/v1/ledger/keys", KEYS_ANSWER_BYTES,
                               deadline_s=3 * timeout_s)  # fmt: skip
            except httpx.TransportError as exc:  # refused, or hung (found 2026-12-05: a
                # hung first replica's ReadTimeout ended it, "error: ", the next not asked)
                if n == len(urls):  # said with where, and how to check offline (found
                    # 2026-12-04: "error: All connection attempts failed", nothing else)
                    raise no_registry_answered(
                        urls, exc, named, what="its keys", offline=OFFLINE
                    ) from exc
                continue
            if r.status_code != 200:
                raise ValueError(f"GET /v1/ledger/keys answered {r.status_code}: {r.text[:200]}")
            return url, r.text
    raise ValueError("no registry URL given")  # pragma: no cover - gateway_urls refuses none


def check(
    text: str,
    keys: dict[str, bytes],
    *,
    output: str | None = None,
    request_id: str | None = None,
    require_signed: bool = False,
) -> Receipt:
    """The receipt in ``text`` when it checks out against ``keys``; else ``ReceiptError``."""
    return _checked(text, keys, output=output, request_id=request_id,
                    require_signed=require_signed)[0]  # fmt: skip


def _checked(text: str, keys: dict[str, bytes], **how: Any) -> tuple[Receipt, Found]:
    """:func:`check`, and what the input around the receipt says."""
    found = find_receipt(text)
    return verify(found, keys, **how), found


SIMULATED_NOTE = (
    "  [yellow]the answer says its engine was SIMULATED[/] (mesh.simulated: made-up text; "
    "the answer's word, not signed in the receipt)"
)


def _client_line(receipt: Receipt, request_id: str | None) -> str:
    """What the receipt says of the client's own request id (``--request-id``: one named)."""
    if receipt.version == 1:
        return ("  version 1: no client's own request id is signed; one the answer maps to "
                "this request is the answer's word")  # fmt: skip
    if not receipt.client_id_hash:
        return "  request id made by the gateway (no client's own id)"
    if request_id is not None and request_id != receipt.request_id:
        return f"  client's own request id {shown(request_id)}: countersigned (client_id_hash)"
    return f"  client's own request id: countersigned as its hash {shown(receipt.client_id_hash)}"


def _money_line(receipt: Receipt) -> str:
    """What the receipt says the request was charged (version 3 or 4), in µNT."""
    if receipt.version < 3:
        return f"  version {receipt.version}: no amounts signed (the ledger's entries say them)"
    money = receipt.money
    if money is None:
        return "  not settled: settlement was off, nobody was charged (no amounts signed)"
    return (f"  charged {money.cost:,} micro-NetworkTokens to the {money.payer} payer "
            f"(network fee {money.fee_bps} bps of each part): countersigned")  # fmt: skip


def _part_money(amount: int | None, fee: int | None) -> str:
    if amount is None or fee is None:
        return ""
    return f"; charged {amount:,} µNT ({amount - fee:,} to its operator, {fee:,} fee)"


def _describe(receipt: Receipt, request_id: str | None = None) -> None:
    """What the receipt says, its signed text printed literally (found 2026-12-04: read as
    Rich markup, a ``[/]`` in a model id ended the command, ``[green]...`` forged words)."""
    try:
        when = datetime.fromtimestamp(receipt.time_ms / 1000, timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):  # signed, but no calendar holds it (found
        when = f"{receipt.time_ms} ms (a time out of range)"  # 2026-12-05: a traceback)
    console.print(
        f"[green]OK[/]: receipt {shown(receipt.receipt_hash)} for request "
        f"{shown(receipt.request_id)} ({shown(receipt.model)}: {receipt.prompt_tokens} prompt "
        f"+ {receipt.completion_tokens} completion tokens), countersigned by "
        f"{shown(receipt.registry_id)} at {when}",
        highlight=False,
    )
    console.print(_client_line(receipt, request_id), highlight=False)
    console.print(_money_line(receipt), highlight=False)
    for i, p in enumerate(receipt.parts):
        note = f" ({shown(p.reason)})" if p.reason else ""
        console.print(
            f"  part {i}: {shown(p.node_id)} {shown(p.status.value)}{note}: {p.prompt_tokens} "
            f"prompt + {p.completion_tokens} completion tokens, output sha256 "
            f"{shown(p.output_sha256)}{_part_money(p.amount, p.fee)}",
            highlight=False,
        )


KeyOpt = Annotated[
    list[str] | None,
    typer.Option("--key", help="a registry public key (base64 or base64url); repeatable"),
]
KeysFileOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="keys saved from GET /v1/ledger/keys (or one a line)"),
]
RequireSignedOpt = Annotated[
    bool, typer.Option("--require-signed", help="every node part must be node-signed")
]
LedgerOpt = Annotated[
    bool,
    typer.Option(
        "--ledger",
        help="also check that the entries the registry lists for the request (every page "
        "of GET /v1/ledger?request_id=, at most 40 pages and 4 MiB: the answer's "
        "mesh.ledger_request_id, else the receipt's request_id) charge what the receipt "
        "signs and are in its signed log (not that it lists them all: `ledger verify "
        "--receipt FILE` reads the whole log); a charge under a version 1 or 2 receipt, "
        "which signs no amounts, is said to be one that cannot be checked",
    ),
]


@receipt_app.command("verify")
def verify_command(
    source: Annotated[str, typer.Argument(help="a file, or - for stdin")] = "-",
    key: KeyOpt = None,
    keys_file: KeysFileOpt = None,
    registry: RegistryOpt = None,
    registry_ca: RegistryCaOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="a file holding the answer's text")
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id",
            help="the request the receipt must be for: its id (the one its nodes got), or "
            "the client's own id (checked against the receipt's signed client_id_hash; a "
            "version-1 receipt: only through the answer given, mesh.receipt_request_id)",
        ),
    ] = None,
    require_signed: RequireSignedOpt = False,
    ledger: LedgerOpt = False,
    ledger_request_id: Annotated[
        str | None,
        typer.Option("--ledger-request-id", help="the request's id in the ledger (with --ledger)"),
    ] = None,
    accept_new_key: AcceptNewKeyOpt = False,
    timeout: TimeoutOpt = TIMEOUT_S,
    home: HomeOpt = None,
) -> None:
    """Check a receipt's registry countersignature and every node's signature offline.
    Exit 0 when valid, 1 when not (the reason is named). Keys read from the registry are
    held to those an earlier run kept, as `ledger verify` holds them (a new one only by
    the registry's signed rotation, or --accept-new-key); the first run trusts them. What
    is read from the registry (keys, --ledger) is done within --timeout (an hour by
    default), else an error."""
    deadline = Deadline("receipt verify", timeout)  # started now: the whole command's
    try:
        if source == "-":  # each to a bound (found 2026-12-06: read whole, however large)
            text = bounded_text(sys.stdin.buffer, MAX_INPUT, "standard input")
        else:
            text = read_text(source, "the receipt file", MAX_INPUT)
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    verify_text(
        text, key, keys_file, registry, registry_ca, deadline, home, output=output,
        request_id=request_id, require_signed=require_signed, ledger=ledger,
        ledger_request_id=ledger_request_id, accept_new_key=accept_new_key,
    )  # fmt: skip


def verify_text(
    text: str, key: list[str] | None, keys_file: Path | None, registry: str | None,
    registry_ca: Path | None, deadline: Deadline, home: Path | None, *,
    output: Path | None = None, request_id: str | None = None, require_signed: bool = False,
    ledger: bool = False, ledger_request_id: str | None = None, accept_new_key: bool = False,
    receipt_hash: str | None = None,
) -> None:  # fmt: skip
    """``receipt verify``'s checks of ``text`` (``receipt fetch``'s too: ``receipt_hash``,
    the receipt it must be); exit 1 when it does not check out."""
    settings: Settings | None = None  # the registry's, once asked: its URL's source said
    try:
        texts = list(key or [])
        if keys_file is not None:
            texts += keys_from_listing(read_text(keys_file, "--keys", KEYS_ANSWER_BYTES))
        answered: str | None = None  # the replica that answered: asked first after
        memory: KeyMemory | None = None  # the registry's keys judged (none given here)
        # a fetched receipt (``receipt_hash``): the registry's keys only when none was given
        if not texts or (registry is not None and receipt_hash is None):
            ca = str(registry_ca.expanduser()) if registry_ca else None
            settings = registry_settings(home, registry, registry_ca=ca)
            chain: list[object] = []
            run = deadline.then(settings.registry_url, "the receipt was not checked")
            answered, more = fetch_keys_at(
                settings.registry_urls, ca_file=settings.registry_ca, chain=chain, run=run,
                named=registry is not None,
            )  # fmt: skip
            warn_plain_http([answered], "the registry's keys", keys=True)
            if not texts:  # none of the user's: the listed ones held to those kept
                memory = KeyMemory(
                    settings.home / SEEN_FILE, f"registry:{settings.registry_url}",
                    accept_new=accept_new_key,
                )  # fmt: skip
                more = memory.judge(more, chain[0] if chain else None)
            texts += more
        keys = parse_keys(texts)
        expected = None if output is None else read_text(output, "--output", MAX_INPUT)
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError, MeshError) as exc:
        # the message may quote the registry's answer: text, never markup, no terminal
        # escapes (found 2026-12-03: printed as Rich markup, with the registry's ESC
        # sequences and hyperlinks); a registry that did not answer, where its URL came from
        raise fail(registry_said(exc, settings)) from exc
    try:
        receipt, found = _checked(
            text, keys, output=expected, request_id=request_id, require_signed=require_signed
        )
    except ReceiptError as exc:
        # the message quotes the answer's own ids (anyone's text): printed, not read as markup
        err.print(f"[red]INVALID[/] {exc.reason}: {shown(exc)}", highlight=False)
        raise typer.Exit(1) from None
    if receipt_hash is not None and receipt.receipt_hash != receipt_hash:  # another's, served
        err.print(f"[red]INVALID[/] receipt_hash: the registry answered receipt "
                  f"{shown(receipt.receipt_hash)}, not {shown(receipt_hash)}", highlight=False)  # fmt: skip
        raise typer.Exit(1)
    if memory is not None:  # the keys that checked a real countersignature, kept
        try:
            remember_keys(memory.path, memory.source, memory.trusted)
        except (OSError, ValueError) as exc:
            raise fail(exc) from exc
    _describe(receipt, request_id)
    if found.simulated:  # found 2026-12-04: a sim node's answer verified with no word of it
        console.print(SIMULATED_NOTE, highlight=False)
    if ledger or ledger_request_id is not None:
        lid = ledger_request_id or found.ledger_request_id or receipt.request_id
        _check_ledger(
            receipt, lid, registry, registry_ca, set(keys.values()), answered, deadline, home
        )


@receipt_app.command("fetch")
def fetch_command(
    receipt_hash: Annotated[
        str, typer.Argument(help="the receipt's hash (a ledger entry's receipt_hash)")
    ],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="the API key that paid for it \\[env LLM_MESH_API_KEY]"),
    ] = None,
    key: KeyOpt = None,
    keys_file: KeysFileOpt = None,
    registry: RegistryOpt = None,
    registry_ca: RegistryCaOpt = None,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="also write the registry's answer to this file"),
    ] = None,
    require_signed: RequireSignedOpt = False,
    ledger: LedgerOpt = False,
    accept_new_key: AcceptNewKeyOpt = False,
    timeout: TimeoutOpt = TIMEOUT_S,
    home: HomeOpt = None,
) -> None:
    """Fetch the stored receipt of a stream cut before its end (nobody received it: GET
    /v1/receipts/HASH, with your API key) and verify it as `receipt verify` does. Exit 0
    when valid; 1 when not, or when the registry holds no such receipt of this key's."""
    deadline = Deadline("receipt fetch", timeout)  # started now: the whole command's
    why = not_a_hash(receipt_hash)
    if why is not None:
        raise fail(ValueError(f"{shown(receipt_hash)}: {why}"))
    ca = str(registry_ca.expanduser()) if registry_ca else None
    settings = registry_settings(home, registry, api_key=api_key, registry_ca=ca)
    if not settings.api_key:  # found nothing but a 404 without one
        raise fail(ValueError(
            "a stored receipt is served to the API key that paid for it: pass --api-key KEY "
            "or set LLM_MESH_API_KEY"
        ))  # fmt: skip
    warn_plain_http(settings.registry_urls, "your API key")
    try:
        text = fetched(settings, receipt_hash, deadline)
        if save is not None:
            save.write_text(text + "\n", encoding="utf-8")
    except (OSError, ValueError, MeshError) as exc:
        raise fail(registry_said(exc, settings)) from exc
    if save is not None:  # found 2026-12-07 (money41b): the file was written unsaid
        console.print(
            f"saved the registry's answer to {shown(str(save))} (`llm-mesh receipt verify "
            "FILE` reads it)",
            highlight=False,
        )
    verify_text(
        text, key, keys_file, registry, registry_ca, deadline, home,
        require_signed=require_signed, ledger=ledger, accept_new_key=accept_new_key,
        receipt_hash=receipt_hash,
    )  # fmt: skip


LISTED_ONLY = (
    "not proven: that the registry listed all of the receipt's entries. For "
    "that, `llm-mesh ledger verify --receipt FILE` reads the whole log (and `ledger "
    "statement` checks every entry of your key's account against your receipts)"
)


def _proven(entries: int, later: int) -> str:
    """What the inclusion proofs proved: none was asked for an entry newer than the signed
    checkpoint (found 2026-12-05: "proven" said of entries that were all newer)."""
    if later == 0:
        return (
            "proven: those entries are in the registry's log (inclusion proofs against its "
            "signed checkpoint)"
        )
    if later >= entries:
        return (
            "not proven yet: that they are in the registry's log (none is under a signed "
            "checkpoint yet)"
        )
    return "proven: those under its signed checkpoint are in the registry's log (inclusion proofs)"


def _check_ledger(
    receipt: Receipt, lid: str, registry: str | None, ca: Path | None, keys: set[bytes],
    answered: str | None = None, deadline: Deadline | None = None, home: Path | None = None,
) -> None:  # fmt: skip
    """``--ledger``: the request's published entries against what the receipt signs (found
    2026-12-05: nothing compared them; a registry could charge other amounts than it
    countersigned, and ``receipt verify`` and ``ledger verify`` both passed). Each step
    asks first the replica that answered the one before (found 2026-12-05: a hung first
    replica was waited for at each, then ended the command). All within ``deadline``'s
    ``--timeout`` (found 2026-12-05: each answer bounded alone, their number not)."""
    settings: Settings | None = None
    try:
        settings = registry_settings(
            home, registry, registry_ca=str(ca.expanduser()) if ca else None
        )
        clock = deadline or Deadline("receipt verify", 0)
        run = clock.then(settings.registry_url, "its ledger entries were not checked")
        urls = begin_at(gateway_urls(settings.registry_urls), answered)
        named = registry is not None
        answered, entries = request_entries(
            urls, lid, ca_file=settings.registry_ca, run=run, named=named
        )
        mine = [e for e in entries if e.get("receipt_hash") == receipt.receipt_hash]
        urls = begin_at(urls, answered)
        # what an earlier `ledger verify` of this registry checked: the checkpoint must be
        # a state of that log (found 2026-12-05, attack32: a fork signed for this check)
        seen = load_seen(settings.home / SEEN_FILE, f"registry:{settings.registry_url}")
        # no amounts signed (settlement off: found 2026-12-07, money41, a ledger with no
        # checkpoint to ask for stopped the command): nothing to prove in the log
        outside, later = (
            ([], [])
            if receipt.money is None
            else included(
                urls, mine, keys, ca_file=settings.registry_ca, run=run, seen=seen, named=named
            )
        )
    except (OSError, ValueError, httpx.HTTPError, MeshError) as exc:
        raise fail(registry_said(exc, settings)) from exc
    findings = ledger_findings(receipt, entries) + outside
    if receipt.money is None:  # a payment under a receipt signed not settled (review41c)
        findings = unsettled_findings(receipt, entries)
        if not findings:  # none in the page: the registry's listing, not the whole log
            unchecked = unchecked_debits(receipt, entries)  # version 1 or 2 (money42): a note
            if unchecked is None:
                console.print(f"  ledger: {NO_AMOUNTS}; {LISTED_ONLY}", highlight=False)
            else:
                said = ("  ledger: ", (terminal_text(unchecked), "yellow"), f"; {LISTED_ONLY}")
                console.print(Text.assemble(*said), soft_wrap=True)
            return
    if findings:
        if not entries and receipt.client_id_hash and lid == receipt.request_id:
            findings.append(  # the ledger names it by its own id, which the receipt lacks
                "the client chose this request's id: the ledger names it by the answer's "
                "mesh.ledger_request_id (give the whole answer, or --ledger-request-id ID)"
            )
        for f in findings:
            err.print(
                Text.assemble(("LEDGER DISAGREES", "red"), f" {terminal_text(f)}"), soft_wrap=True
            )
        raise typer.Exit(1)
    console.print(
        f"  ledger: the {counted(len(entries), 'entry', 'entries')} the registry lists for "
        f"request {shown(lid)} {'charges' if len(entries) == 1 else 'charge'} what the receipt "
        "signs", highlight=False,
    )  # fmt: skip
    # found 2026-12-05: said as if they were all of the receipt's entries; the page is the
    # registry's choice (an entry left out of it is in no proof asked for here)
    console.print(f"  {_proven(len(mine), len(later))}; {LISTED_ONLY}", highlight=False)
    if seen is None and len(later) < len(mine):  # nothing to hold the checkpoint to
        console.print(
            "  not checked: that its checkpoint is of the log everyone reads (no `llm-mesh "
            "ledger verify` of this registry was run here: after one, each checkpoint is "
            "held to the log it checked)", highlight=False,
        )  # fmt: skip
    if later:  # the checkpointer signs every few seconds: a later run proves them too
        console.print(
            f"  [yellow]{'entry' if len(later) == 1 else 'entries'} {', '.join(map(str, later))} "
            f"{'is' if len(later) == 1 else 'are'} not in a signed checkpoint yet[/]: run "
            "again later to check they are in the log", highlight=False,
        )  # fmt: skip
