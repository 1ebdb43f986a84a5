"""``llm-mesh ledger witness``: a cosigning witness of the registry's checkpoints.

Each round (once, or every ``--every`` seconds) it asks the registry for its newest signed
checkpoint (``GET /v1/ledger/checkpoints/latest``) and, from the size it last cosigned,
an RFC 9162 consistency proof (``GET /v1/ledger/proof/consistency``); the decision is
``core/witness.decide``'s. Cosigned: the state is saved first (``witness_state.json``:
per origin, the size, root and note it cosigned; written whole and renamed into place),
then the ``cosignature/v1`` line goes to the registry (``POST /v1/ledger/cosignatures``),
which serves it with the checkpoint; verifiers require it with ``llm-mesh ledger verify
--witness <key text>``. Refused (a split view, a rollback, a bad signature...): both
notes are printed as evidence, the state is left as it was and the command exits 1. A
cosignature the registry refuses (403: not a witness it accepts) is said, "not handed in",
and exits 3 (``witness_rounds.py``: the exit statuses, and rounds until a signal stops them).

Files in ``$LLM_MESH_HOME``: ``witness.key`` (Ed25519, PEM, mode 0600, made once and never
overwritten, like a node's key), ``witness_state.json`` and ``witness.lock`` (one witness
per home: a second one started there stops at once).

With ``--listen [HOST:]PORT`` it serves C2SP ``tlog-witness``'s ``POST /add-checkpoint``
instead (``witness/server.py``; the same key, state and lock): registries configured with
its URL (``LLM_MESH_LEDGER_WITNESS_URLS``) push it each new checkpoint. Its log keys are the
``--log-key`` ones only (base64 or base64url, for the origin ``LLM_MESH_LEDGER_ORIGIN``, or a log's key
text ``<origin>+<hash>+<base64>``).

In rounds, the registry's keys: those ``--log-key`` pins, else the ones it publishes
(``GET /v1/ledger/keys``) as ``witness/log_keys.py`` judges them: kept from round to round
in ``witness_keys.json`` (the first round's said as a warning), a new one only by the
registry's signed rotation chain or ``--accept-new-key``; any other is refused (found
2026-12-05: the keys listed were taken each round, so a key of a compromised registry's,
or of a man in the middle's, signing a forged log was cosigned): nothing cosigned, the
state unchanged, the rounds go on (one round: exit 1).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.bounded_http import call, hex_list, json_or_none, rows_in
from LLM_Mesh.cli.common import (
    HomeOpt,
    RegistryCaOpt,
    RegistryOpt,
    console,
    err,
    fail,
    first_answering,
    json_object,
    registry_fail,
    registry_settings,
)
from LLM_Mesh.cli.render import shown
from LLM_Mesh.cli.witness_rounds import NOT_HANDED_IN, Round, print_round, round_status, run_witness
from LLM_Mesh.core.b64url import ed25519_key, ed25519_key_problem
from LLM_Mesh.core.checkpoint import Checkpoint, parse_log_vkey
from LLM_Mesh.core.ledger_keys import KeyTrust
from LLM_Mesh.core.witness import (
    FUTURE_S,
    BadCosignature,
    Cosigned,
    WitnessKey,
    cosign,
    cosigners,
    decide,
    parse_vkey,
    witness_key,
    witnessed,
)
from LLM_Mesh.errors import MeshError, UpstreamError
from LLM_Mesh.secret_files import try_lock
from LLM_Mesh.tls import client_ssl_context
from LLM_Mesh.witness.log_keys import KEYS_FILE, LogKeyMemory
from LLM_Mesh.witness.server import WitnessService, bind, parse_listen, serve
from LLM_Mesh.witness.state import (
    KEY_FILE,
    LOCK_FILE,
    STATE_FILE,
    default_name,
    load_or_create_witness_key,
    load_state,
    save_state,
)

__all__ = [
    "KEY_FILE",
    "NOT_HANDED_IN",
    "STATE_FILE",
    "Round",
    "check_witnessed",
    "load_or_create_witness_key",
    "load_state",
    "parse_witness_keys",
    "print_round",
    "round_status",
    "run_witness",
    "save_state",
    "witness_command",
    "witness_round",
]

log = logging.getLogger(__name__)

# -- one round ----------------------------------------------------------------------------


# the most of one registry answer a witness in rounds reads, decoded (a consistency proof is
# at most 64 hashes, ~4 KiB; a note with its cosignatures and the key list a few KiB)
MAX_ANSWER = 1 << 20
# the longest one registry call may take, answer read whole (its client's per-read timeout
# too): a registry trickling a byte within each read timeout is cut off here, and the
# round fails, instead of holding the witness for as long as it likes
CALL_S = 60.0


async def _call(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    """The registry's answer to ``method path``, read to at most :data:`MAX_ANSWER` bytes
    decoded (a gzip bomb counts whole) within :data:`CALL_S` seconds
    (:mod:`LLM_Mesh.bounded_http`): the registry a witness watches must not be able to
    exhaust its memory or hold its round. Beyond either: ``MeshError`` (the round fails,
    nothing is cosigned)."""
    return await call(client, method, path, MAX_ANSWER, deadline_s=CALL_S, **kw)


async def _log_keys(
    client: httpx.AsyncClient, origin: str, memory: LogKeyMemory
) -> tuple[list[bytes], KeyTrust]:
    """The keys the registry lists that ``memory`` trusts (raw), and its verdict, said;
    ``LogKeyRefused`` for one it does not (``witness/log_keys.py``)."""
    what = "GET /v1/ledger/keys"
    answer = json_object(await _call(client, "GET", "/v1/ledger/keys"), what)
    listed = [str(k["public_key"]) for k in rows_in(answer, what, "data", ("public_key",))]
    verdict = memory.judge(origin, listed, answer.get("key_rotations"))
    kept = f"kept in {shown(memory.path)} once a checkpoint verifies with it"
    for k in verdict.first_use:
        err.print(f"[yellow]warning[/]: trusting log key {shown(k)} on first use (the registry "
                  f"lists it; {kept}; a later key must follow from it by the registry's signed "
                  "rotation; or pin --log-key)", highlight=False, soft_wrap=True)  # fmt: skip
    for k, start, links in verdict.rotated:
        console.print(f"trusting log key {shown(k)}: the registry's signed rotation chain leads "
                      f"to it from the kept key {shown(start)} ({links} link(s))",
                      highlight=False, soft_wrap=True)  # fmt: skip
    for k in verdict.new:  # (--accept-new-key)
        err.print(f"[yellow]--accept-new-key[/]: trusting log key {shown(k)}, which this witness "
                  f"never trusted ({shown(verdict.why)}); {kept}", highlight=False,
                  soft_wrap=True)  # fmt: skip
    keys = [ed25519_key(k) for k in (*verdict.trusted, *verdict.new)]
    if None in keys:
        raise UpstreamError(f"{what} lists a public_key that is not an Ed25519 key")
    return [k for k in keys if k is not None], verdict


def _latest(r: httpx.Response) -> tuple[str, int]:
    """The signed note and tree size of ``GET /v1/ledger/checkpoints/latest``'s answer; else
    ``UpstreamError`` (found 2026-12-04: a list, or a ``tree_size`` of ``[]``, ended the
    witness's loop with a ``TypeError``)."""
    what = "GET /v1/ledger/checkpoints/latest"
    latest = json_object(r, what)
    note, size = latest.get("note"), latest.get("tree_size")
    if not isinstance(note, str) or type(size) is not int or size < 0:
        raise UpstreamError(f"{what}'s answer has no 'note' text and 'tree_size' count")
    return note, size


async def witness_round(
    client: httpx.AsyncClient,
    key: Ed25519PrivateKey,
    name: str,
    state_path: Path,
    origin: str,
    pins: Sequence[bytes] = (),
    wall_clock: Callable[[], float] = time.time,
    memory: LogKeyMemory | None = None,
) -> Round:
    """Read, decide, and if it is consistent, save, cosign and hand in (module docstring);
    the log's keys ``pins``, else those listed as ``memory`` (by default the one in
    ``state_path``'s folder) trusts."""
    r = await _call(client, "GET", "/v1/ledger/checkpoints/latest")
    state = load_state(state_path)
    last = state.get(origin)
    if r.status_code == 404:
        return Round(None, last)
    note, size = _latest(r)
    verdict = None
    if pins:
        keys = list(pins)
    else:
        memory = memory or LogKeyMemory(state_path.parent / KEYS_FILE)
        keys, verdict = await _log_keys(client, origin, memory)
    old = last.size if last is not None else 0
    proof: list[bytes] = []
    if 0 < old < size:
        params = {"first": old, "second": size}
        answer = await _call(client, "GET", "/v1/ledger/proof/consistency", params=params)
        what = "GET /v1/ledger/proof/consistency"
        proof = hex_list(json_object(answer, what), "proof", what)
    decision = decide(last, note, {origin: keys}, old, proof)
    if not decision.ok or decision.checkpoint is None:
        return Round(decision, last, note)
    cp = decision.checkpoint
    line = cosign(key, name, note, int(wall_clock()))
    if verdict is not None and memory is not None:  # a checkpoint verified with them
        memory.keep(origin, verdict)
    state[origin] = Cosigned(cp.tree_size, cp.root_hash, note)
    save_state(state_path, state)  # before the cosignature leaves (tlog-witness: persist first)
    resp = await _call(
        client, "POST", "/v1/ledger/cosignatures",
        json={"tree_size": cp.tree_size, "cosignature": line},
    )  # fmt: skip
    if resp.status_code != 200:
        return Round(decision, last, note, f"refused by the registry ({resp.status_code}): "
                     f"{_error_message(resp)}")  # fmt: skip
    said = json_or_none(resp)  # any shape: the cosignature was taken (200)
    stored = said.get("stored") if isinstance(said, dict) else None
    return Round(decision, last, note, "handed in" if stored else "handed in (had it already)")


def _error_message(resp: httpx.Response) -> str:
    """The message of the registry's OpenAI-shaped error, else its first 300 characters."""
    said = json_or_none(resp)
    error = said.get("error") if isinstance(said, dict) else None
    msg = error.get("message") if isinstance(error, dict) else None
    return msg[:300] if isinstance(msg, str) else resp.text[:300]


# -- the commands' glue ---------------------------------------------------------------


def parse_witness_keys(texts: Sequence[str]) -> list[WitnessKey]:
    """``--witness`` values, each a witness key text; a clear error before anything runs."""
    out: list[WitnessKey] = []
    for t in texts:
        try:
            out.append(parse_vkey(t))
        except BadCosignature as exc:
            raise fail(ValueError(f"--witness: {exc}")) from None
    return out


def check_witnessed(
    signed: Sequence[Checkpoint],
    witnesses: Sequence[WitnessKey],
    needed: int,
    now: float,
    max_age_s: int,
) -> bool:
    """Print which trusted witnesses cosigned the newest of ``signed`` (the checkpoints
    checked, newest first) that ``needed`` of them cosigned; whether that passes
    (``core/witness.witnessed``: the newest checkpoint, or one whose cosignatures are at
    most ``max_age_s`` old; -1: the newest only, for a ledger key taken on the witnesses'
    word: ``cli/ledger_keys.py``)."""
    if not signed:
        err.print(
            "[red]unwitnessed[/]: no signed checkpoint to carry a witness's cosignature yet "
            "(the registry signs one after new entries; verify again later)"
        )
        return False
    seen = witnessed(signed, witnesses, needed, int(now), max_age_s)
    newest = signed[0].tree_size
    cp = seen.checkpoint
    if cp is None:
        found = cosigners(signed[0].note, witnesses, not_after=int(now) + FUTURE_S)
        missing = [wk.name for wk in witnesses if wk.vkey not in found]
        err.print(
            f"[red]unwitnessed[/]: the newest checkpoint (size {newest}) is cosigned by "
            f"{len(found)} of the trusted witnesses, {needed} needed; none valid from "
            f"{shown(', '.join(missing))}, and no earlier checkpoint has enough either. A "
            "witness cosigns only a history consistent with what it cosigned before: a "
            "registry showing this verifier a history its witnesses refused (a split view) "
            "ends here; so does a ledger whose witnesses have not run yet",
            highlight=False,
            soft_wrap=True,
        )
        return False
    for wk in witnesses:
        ts = seen.cosigned.get(wk.vkey)
        if ts is not None:
            when = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            console.print(f"witnessed: checkpoint at size {cp.tree_size} cosigned by "
                          f"{shown(wk.name)} at {when}")  # fmt: skip
    if not seen.ok:
        err.print(
            f"[red]unwitnessed[/]: the newest witnessed checkpoint (size {cp.tree_size}) was "
            f"cosigned {seen.age_s} s ago, "
            + (
                f"more than --witness-max-age {max_age_s} s"
                if max_age_s >= 0
                else "and a ledger key no earlier run trusted needs the newest itself cosigned"
            )
            + ", and "
            f"the registry has signed {seen.newer} checkpoint(s) since (up to size {newest}) "
            "that the trusted witnesses did not cosign: they refused that history (a split "
            "view) or stopped running",
            highlight=False,
            soft_wrap=True,
        )
        return False
    console.print(f"[green]OK[/]: cosigned by {len(seen.cosigned)} of {len(witnesses)} "
                  f"trusted witnesses (needed {needed})")  # fmt: skip
    if seen.newer:
        console.print(
            f"[yellow]not witnessed yet[/]: {seen.newer} newer checkpoint(s), up to size "
            f"{newest} (entries {cp.tree_size}-{newest - 1}); the witnesses' last round was "
            f"{seen.age_s} s ago (at most --witness-max-age {max_age_s} s is accepted)",
            highlight=False,
        )
    return True


LogKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log-key",
        help="a log key to trust: an Ed25519 key in base64 or base64url (for the origin "
        "LLM_MESH_LEDGER_ORIGIN) or a "
        "log's key text <origin>+<key hash>+<base64>; repeatable; default (rounds only): the "
        "keys the registry publishes (GET /v1/ledger/keys); --listen needs at least one",
    ),
]


def parse_log_keys(texts: Sequence[str], origin: str) -> dict[str, list[bytes]]:
    """``--log-key`` values → per origin, the raw Ed25519 keys (a clear error first)."""
    out: dict[str, list[bytes]] = {}
    for k in texts:
        o, raw = origin, ed25519_key(k)  # a raw key (base64 or base64url), else a key text
        if raw is None:
            if "+" not in k:
                raise fail(ValueError(
                    f"--log-key {ed25519_key_problem(k)}; nor is it a log's key text "
                    "<origin>+<key hash>+<base64>: the registry's key is the public_key of "
                    "its GET /v1/ledger/keys"
                ))  # fmt: skip
            try:
                o, raw = parse_log_vkey(k)
            except ValueError as exc:
                raise fail(ValueError(f"--log-key: {exc}")) from None
        out.setdefault(o, []).append(raw)
    return out


def listen_command(
    listen: str, key: Ed25519PrivateKey, wname: str, home: Path, log_keys: dict[str, list[bytes]]
) -> None:
    """``--listen``: serve ``add-checkpoint`` (``witness/server.py``) until interrupted."""
    if not log_keys:
        raise fail(ValueError(
            "--listen needs the keys of the logs it witnesses: --log-key BASE64 (the "
            "registry's, GET /v1/ledger/keys) or --log-key ORIGIN+HASH+BASE64"
        ))  # fmt: skip
    try:
        host, port = parse_listen(listen)
        fd = try_lock(home / LOCK_FILE)
        if fd is None:
            raise MeshError(f"another witness runs on this home ({home / LOCK_FILE} is held)")
        try:
            service = WitnessService(key, wname, home / STATE_FILE, log_keys)
            sock = bind(host, port)
            shown_host = f"[{host}]" if ":" in host else host
            prefix = f"http://{shown_host}:{sock.getsockname()[1]}"
            console.print(
                f"witnessing {shown(', '.join(sorted(log_keys)))}: POST {prefix}/add-checkpoint\n"
                f"a registry pushes to it with LLM_MESH_LEDGER_WITNESS_URLS={prefix} (the "
                "prefix: it adds /add-checkpoint; this machine's name or address for a host "
                "of 0.0.0.0 or ::) and LLM_MESH_LEDGER_WITNESSES=<the witness key above>",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
            serve(service, sock)
        finally:
            os.close(fd)
    except (MeshError, OSError, ValueError) as exc:
        raise fail(exc) from exc


def witness_command(
    registry: RegistryOpt = None,
    log_key: LogKeyOpt = None,
    name: Annotated[
        str | None,
        typer.Option(help="the witness's name in its signature lines (default: from its key)"),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(min=1.0, help="a round every this many seconds (default: one round)"),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help="serve C2SP tlog-witness's POST /add-checkpoint on [HOST:]PORT (host "
            "default 127.0.0.1; port 0: a free one, printed) for registries that push "
            "to it, instead of asking a registry in rounds",
        ),
    ] = None,
    home: HomeOpt = None,
    registry_ca: RegistryCaOpt = None,
    accept_new_key: Annotated[
        bool,
        typer.Option(
            "--accept-new-key",
            help="rounds without --log-key: trust a log key the registry lists that this "
            "witness never trusted and no signed rotation from a trusted key leads to "
            "(said; kept; for the first round that needs it only)",
        ),
    ] = False,
) -> None:
    """Cosign the registry's newest checkpoint if it extends the one cosigned before.

    Rounds (default): ask the registry for its newest checkpoint and a consistency proof,
    hand the cosignature back. --listen: serve C2SP tlog-witness's add-checkpoint; the
    registry pushes each new checkpoint and keeps the cosignature it gets back.

    Rounds without --log-key keep the log keys the registry lists on first use (said) and
    trust a new one only by its signed rotation chain or --accept-new-key; any other is
    refused: nothing cosigned, the rounds go on.

    Exit 0: cosigned and handed in (or nothing signed yet); 1: refused (a split view, a
    rollback, a checkpoint not signed by the registry's key: both notes printed as
    evidence, nothing cosigned; one round: a log key not trusted) or an error; 3: cosigned
    but not handed in (the registry refused the cosignature: its LLM_MESH_LEDGER_WITNESSES
    lacks this key). With --every a round not handed in or failed is said and the rounds go
    on; a refusal ends them (1); SIGTERM or Ctrl-C ends them, says what they came to and
    exits with the last round's status. --listen serves until interrupted (refusals answered
    as C2SP tlog-witness says: 409, 422, 403, ...; the state never goes back). Prints the witness key text verifiers pass to
    `llm-mesh ledger verify --witness` and the registry's operator to
    LLM_MESH_LEDGER_WITNESSES."""
    ca = str(registry_ca.expanduser()) if registry_ca else None
    settings = registry_settings(home, registry, registry_ca=ca)
    if listen is not None and every is not None:
        raise fail(ValueError("--listen serves pushes; --every runs rounds: one or the other"))
    log_keys = parse_log_keys(log_key or (), settings.ledger_origin)
    pins = log_keys.get(settings.ledger_origin, [])
    if accept_new_key and (listen is not None or log_keys):
        raise fail(ValueError("--accept-new-key: for rounds without --log-key only"))
    memory = LogKeyMemory(settings.home / KEYS_FILE, accept_new=accept_new_key)
    try:
        key, made = load_or_create_witness_key(settings.home / KEY_FILE)
        wname = name or default_name(key)
        wk = witness_key(key, wname)
    except (ValueError, OSError, BadCosignature) as exc:
        raise fail(exc) from exc
    if made:
        console.print(f"made the witness key {shown(settings.home / KEY_FILE)}")
    console.print(f"witness key: {wk.vkey}", highlight=False, soft_wrap=True)
    if listen is not None:
        listen_command(listen, key, wname, settings.home, log_keys)
        return
    state_path = settings.home / STATE_FILE

    async def one() -> Round:
        verify = client_ssl_context(settings.registry_ca)  # --registry-ca, as `ask` does
        url = await first_answering(settings.registry_urls, verify, CALL_S)
        async with httpx.AsyncClient(base_url=url, timeout=CALL_S, verify=verify) as client:
            return await witness_round(client, key, wname, state_path, settings.ledger_origin,
                                       pins, memory=memory)  # fmt: skip

    try:
        code = run_witness(state_path, settings.home / LOCK_FILE, one, every)
    except (MeshError, OSError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise registry_fail(exc, settings) from exc
    if code:
        raise typer.Exit(code)
