"""``llm-mesh registry operators|nodes|keys ...``: admin commands acting on the registry's store.

llm-mesh registry operators add NAME        a new operator; prints its token once
llm-mesh registry operators list            operators and their nodes
llm-mesh registry operators set NAME --uptime-nodes N|default
                                            the operator's uptime cap: N nodes' worth per
                                            reward period (0: none; default: the registry's
                                            LLM_MESH_REWARD_UPTIME_NODES)
llm-mesh registry operators revoke NAME     the operator and all its nodes are refused
llm-mesh registry nodes revoke NODE_ID      one node key is refused
llm-mesh registry nodes trust|untrust|clear NODE_ID
                                            mark / unmark a canary verifier, lift
                                            quarantines (cli/canary_commands.py)
llm-mesh registry grant ACCOUNT AMOUNT      AMOUNT micro-NetworkTokens from the mint to
                                            ACCOUNT (an operator's name or a ledger account)
llm-mesh registry keys create [--name N] [--rpm N] [--tpm N] [--avoid-regions eu,us] [--strict-regions]
                              [--trusted-only]
                                            a client API key; prints it once
llm-mesh registry keys list                 keys, limits, regions, whether revoked
llm-mesh registry keys revoke ID_OR_NAME    the key is refused (401) within a second
llm-mesh registry public-key                the gateway's public key (registry.key), for
                                            nodes to pin: registry_public_key in node.toml

All but ``public-key`` open the store directly (``--database-url``, ``$LLM_MESH_DATABASE_URL``, else the
SQLite file in ``$LLM_MESH_HOME``), so they work while registries run on it (a running
registry takes a revoked node out of routing within a second). Each needs the store's
admin key: ``$LLM_MESH_ADMIN_KEY`` or ``$LLM_MESH_HOME/admin.key`` (see ``registry/admin.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from LLM_Mesh.cli.common import HomeOpt, console, err, fail, refuse_system_home, settings_from
from LLM_Mesh.cli.render import fitted_table, shown
from LLM_Mesh.config import Settings
from LLM_Mesh.errors import InvalidCredential, MeshError
from LLM_Mesh.secret_files import make_private_dir

operators_app = typer.Typer(help="Node operators: who may register nodes.", no_args_is_help=True)
nodes_app = typer.Typer(help="Registered nodes (admin).", no_args_is_help=True)
keys_app = typer.Typer(help="Clients' API keys: limits, priority, regions.", no_args_is_help=True)

DbOpt = Annotated[
    str | None,
    typer.Option(
        help="The store's database URL \\[env LLM_MESH_DATABASE_URL, default SQLite in home]"
    ),
]
_T = TypeVar("_T")


def _settings(home: Any, database_url: str | None) -> Settings:
    settings = settings_from(home, database_url=database_url)
    if settings.database_url is None:
        refuse_system_home(settings.home)
        make_private_dir(settings.home)
        refuse_a_store_nobody_serves(settings.home)
        say_a_new_store(settings.home)
    return settings


def say_a_new_store(home: Path) -> None:
    """A note on stderr when this command is about to make a new SQLite store in ``home``.

    Found 2026-12-07 (newuser45): an admin whose registry ran with another home (``up --home
    X``) ran ``registry operators add NAME`` in a new shell, in the default home: a new store
    was made there, the token printed, exit 0; the running registry refused it as unknown."""
    if (home / "registry.db").exists():
        return
    err.print(
        f"note: no store was in {home}: made a new one, {home}/registry.db, which only a "
        f"registry started on it serves (`llm-mesh registry serve --home {home}`, or `llm-mesh "
        f"up --home {home}`). If your registry runs already, run this command with its home "
        "(--home or LLM_MESH_HOME) or its --database-url: it does not know what is put here "
        "(a token made here is refused there as unknown)",
        markup=False,
        highlight=False,
    )


def refuse_a_store_nobody_serves(home: Path) -> None:
    """Refuse to make a new SQLite store in a home whose registry serves another one.

    A registry's start leaves ``ledger.checkpoint`` in its home; one on PostgreSQL leaves no
    ``registry.db``. Found 2026-12-07 (newuser43): ``registry operators add NAME`` in a
    PostgreSQL replica's home without its database URL made a new SQLite store there and
    put the operator in it, exit 0: the registry then refused the token as unknown."""
    from LLM_Mesh.registry.ledger_mark import MARK_FILE

    mark = home / MARK_FILE
    if (home / "registry.db").exists() or not mark.exists():
        return
    raise fail(
        ValueError(
            f"{home}/registry.db does not exist, yet a registry ran in this home ({mark}): it "
            "serves another store, e.g. PostgreSQL; give this command that store's URL "
            "(--database-url or LLM_MESH_DATABASE_URL, as the registry has it), else it would "
            "make a new SQLite store no registry serves. To start a new SQLite store here on "
            f"purpose, move {mark} aside first"
        )
    )


def with_admin_store(settings: Settings, fn: Callable[[Any], Awaitable[_T]]) -> _T:
    """Open the store, check the admin key (made on a store that has none), run ``fn``."""
    from LLM_Mesh.registry.admin import ensure_admin_key
    from LLM_Mesh.registry.store import SqlStore

    async def go() -> _T:
        store = SqlStore(settings.effective_database_url)
        await store.open()
        try:
            status = await ensure_admin_key(settings, store, env_rotates=False)
            if status.created and status.key is not None:
                err.print(
                    f"made this store's admin key (shown once; kept in {settings.home}/admin.key, "
                    f"mode 0600): {status.key}"
                )
            if not status.matches_store:
                raise InvalidCredential(
                    "this needs the store's admin key: set LLM_MESH_ADMIN_KEY, or run where "
                    "$LLM_MESH_HOME/admin.key holds it"
                )
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except (MeshError, OSError, ValueError) as exc:
        raise fail(exc) from exc


@operators_app.command("add")
def operators_add(
    name: Annotated[str, typer.Argument(help="Operator name (e.g. a person or a team)")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add an operator; prints its token once (the store keeps only its hash)."""
    from LLM_Mesh.registry.admin import add_operator

    token = with_admin_store(_settings(home, database_url), lambda s: add_operator(s, name))
    if token is None:
        err.print(
            f"[red]error:[/] operator {shown(repr(name))} exists (revoke it, or pick another name)"
        )
        raise typer.Exit(1)
    console.print(f"operator [bold]{shown(name)}[/] added. Its token (shown once, keep it secret):")
    console.print(token, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "A node registers with it: llm-mesh node start --operator-token TOKEN, "
        "operator_token in node.toml, or LLM_MESH_OPERATOR_TOKEN."
    )


@operators_app.command("list")
def operators_list(database_url: DbOpt = None, home: HomeOpt = None) -> None:
    """Operators, whether revoked, and their nodes (a revoked node says so)."""

    async def go(s: Any) -> tuple[list[Any], set[str]]:
        ops = await s.list_operators()
        keys = [await s.get_node_key(n) for op in ops for n in op.nodes]
        return ops, {k.node_id for k in keys if k is not None and k.revoked_at is not None}

    ops, revoked = with_admin_store(_settings(home, database_url), go)
    rows = [
        [
            shown(op.name),
            _when(op.created_at),
            _when(op.revoked_at) if op.revoked_at else "",
            "default" if op.uptime_nodes is None else str(op.uptime_nodes or "no cap"),
            "\n".join(shown(n) + (" (revoked)" if n in revoked else "") for n in op.nodes) or "-",
        ]
        for op in ops
    ]  # a node id a line: each whole, to copy into ``registry nodes revoke|trust|untrust|clear``
    columns = ("operator", "added", "revoked", "uptime cap", "nodes")
    table = fitted_table(columns, rows, keys={"operator", "nodes"}, width=console.width)
    console.print(table if ops else "no operators yet: llm-mesh registry operators add NAME")


_MAX_CAP = 999_999  # nodes' worth an operator's uptime cap may name


@operators_app.command("set")
def operators_set(
    name: Annotated[str, typer.Argument(help="Operator name")],
    uptime_nodes: Annotated[
        str,
        typer.Option(
            "--uptime-nodes",
            help="The operator's uptime cap: nodes' worth of uptime credited per reward "
            "period, split over its nodes (0 to 999999; 0: no cap; 'default': the registry's "
            "LLM_MESH_REWARD_UPTIME_NODES, 4 unless set)",
        ),
    ],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Set an operator's uptime cap (the registries read it at their next period's close)."""
    raw = uptime_nodes.strip().lower()
    if raw == "default":
        nodes: int | None = None
    elif raw.isascii() and raw.isdigit() and len(raw) <= 7 and int(raw) <= _MAX_CAP:
        nodes = int(raw)
    else:
        err.print(
            f"[red]error:[/] --uptime-nodes takes a whole number up to {_MAX_CAP} (0: no cap) "
            f"or 'default', got {shown(repr(uptime_nodes))}"
        )  # the limit said (found 2026-12-05: 9999999 was "not a whole number")
        raise typer.Exit(2)
    done = with_admin_store(
        _settings(home, database_url), lambda s: s.set_operator_uptime_nodes(name, nodes)
    )
    if not done:
        err.print(f"[red]error:[/] no operator {shown(repr(name))}")
        raise typer.Exit(1)
    if nodes is None:  # in words (found 2026-12-05: "uptime cap none per reward period")
        said = (
            "uptime cap: the registry's LLM_MESH_REWARD_UPTIME_NODES (4 nodes' worth per reward "
            "period unless set)"
        )
    else:
        said = f"uptime cap {nodes} nodes' worth per reward period" if nodes else "no uptime cap"
    console.print(f"operator {shown(name)}: {said}")


@operators_app.command("revoke")
def operators_revoke(
    name: Annotated[str, typer.Argument(help="Operator name")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke an operator: its token and every node it registered are refused from now on."""
    from LLM_Mesh.registry.held import revoke_and_forfeit

    at = datetime.now(timezone.utc)

    async def go(s: Any) -> tuple[list[str] | None, dict[str, int]]:
        ids = await s.revoke_operator(name, at)
        return ids, ({} if ids is None else await revoke_and_forfeit(s, ids))

    ids, forfeited = with_admin_store(_settings(home, database_url), go)
    if ids is None:
        err.print(f"[red]error:[/] no operator {shown(repr(name))}")
        raise typer.Exit(1)
    console.print(
        f"operator {shown(name)} revoked; nodes revoked: {shown(', '.join(ids) or 'none')}"
    )
    _print_forfeited(forfeited)


def _print_forfeited(forfeited: dict[str, int]) -> None:
    for node_id, amount in sorted(forfeited.items()):
        console.print(
            f"node {node_id}'s held earnings, {amount} µNT, forfeited to the network "
            "(ledger entry: forfeit)"
        )


@nodes_app.command("revoke")
def nodes_revoke(
    node_id: Annotated[str, typer.Argument(help="The node's id")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke one node's key: it leaves routing and every message it sends is refused."""
    from LLM_Mesh.registry.held import revoke_and_forfeit

    at = datetime.now(timezone.utc)

    async def go(s: Any) -> tuple[bool, dict[str, int]]:
        done = await s.revoke_node(node_id, at)
        return done, (await revoke_and_forfeit(s, [node_id]) if done else {})

    done, forfeited = with_admin_store(_settings(home, database_url), go)
    if not done:
        err.print(f"[red]error:[/] no node key for {shown(repr(node_id))}")
        raise typer.Exit(1)
    console.print(f"node {shown(node_id)} revoked")
    _print_forfeited(forfeited)


@keys_app.command("create")
def keys_create(
    name: Annotated[str | None, typer.Option(help="A name to know the key by (unique)")] = None,
    rpm: Annotated[
        int | None, typer.Option(min=1, help="Requests a minute \\[default: no limit]")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(min=1, help="Tokens a minute (prompt + completion) \\[default: no limit]"),
    ] = None,
    avoid_regions: Annotated[
        str | None,
        typer.Option(
            help="Regions never to route this key's requests to, e.g. eu,us "
            "(eu also covers eu-west, eu-west-1, ...)"
        ),
    ] = None,
    strict_regions: Annotated[
        bool, typer.Option("--strict-regions", help="Also avoid nodes of unknown region")
    ] = False,
    trusted_only: Annotated[
        bool,
        typer.Option("--trusted-only", help="Route only to nodes whose trust score is high enough"),
    ] = False,
    allow_prompt_keeping: Annotated[
        bool,
        typer.Option(
            "--allow-keep",
            help="Also route to nodes that may keep prompts (keeps_no_prompts false; "
            "held out by default)",
        ),
    ] = False,
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make a client API key; prints it once (the store keeps only its hash)."""
    from LLM_Mesh.registry.api_keys import create_api_key, parse_regions

    regions = parse_regions(avoid_regions)
    made = with_admin_store(
        _settings(home, database_url),
        lambda s: create_api_key(
            s,
            name=name,
            rpm=rpm,
            tpm=tpm,
            avoid_regions=regions,
            strict_regions=strict_regions,
            trusted_only=trusted_only,
            allow_prompt_keeping=allow_prompt_keeping,
        ),
    )
    if made is None:
        err.print(
            f"[red]error:[/] a key named {shown(repr(name))} exists (revoke it, or pick another name)"
        )
        raise typer.Exit(1)
    key, rec = made
    label = f" ({shown(rec.name)})" if rec.name else ""
    console.print(
        f"API key [bold]{rec.key_id}[/]{label} made. The key (shown once, keep it secret):"
    )
    console.print(key, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "Use it as an OpenAI API key: OpenAI(base_url=.../v1, api_key=KEY), "
        "llm-mesh ask --api-key KEY, or LLM_MESH_API_KEY."
    )
    console.print(
        "Requests with it are paid from its user's balance, 0 for now: "
        f"llm-mesh registry grant {shown(rec.name or rec.key_id)} AMOUNT (micro-NetworkTokens)."
    )


@keys_app.command("list")
def keys_list(database_url: DbOpt = None, home: HomeOpt = None) -> None:
    """API keys: id, name, limits, avoided regions, whether revoked (never the keys)."""
    keys = with_admin_store(_settings(home, database_url), lambda s: s.list_api_keys())
    rows = []
    for k in keys:
        regions = ", ".join(k.avoid_regions) + (" (strict)" if k.strict_regions else "")
        regions += " (trusted nodes only)" if k.trusted_only else ""
        regions += " (nodes keeping prompts allowed)" if k.allow_prompt_keeping else ""
        rows.append([
            k.key_id, shown(k.name or ""), _limit(k.rpm), _limit(k.tpm),
            shown(regions.strip() or "-"), _when(k.created_at),
            _when(k.revoked_at) if k.revoked_at else "",
        ])  # fmt: skip
    columns = ("id", "name", "rpm", "tpm", "avoid regions", "made", "revoked")
    table = fitted_table(columns, rows, keys={"id", "name"}, width=console.width)
    console.print(table if keys else "no API keys yet: llm-mesh registry keys create")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id (key_...) or name")],
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke an API key: every registry on this store refuses it (401) within a second."""
    at = datetime.now(timezone.utc)
    rec = with_admin_store(_settings(home, database_url), lambda s: s.revoke_api_key(key, at))
    if rec is None:
        err.print(f"[red]error:[/] no API key with id or name {shown(repr(key))}")
        raise typer.Exit(1)
    console.print(f"API key {rec.key_id} revoked")


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


def grant_command(
    account: Annotated[
        str,
        typer.Argument(
            help="an API key's name or id, an operator's name, a ledger account "
            "(pool, user:..., ...), or probe:1 to probe:4 (what keyed-class canary probes "
            "are paid from)"
        ),
    ],
    amount: Annotated[int, typer.Argument(help="micro-NetworkTokens (a whole number >= 1)")],
    grant_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="this grant's id (public, on the ledger as grant-ID): run again with the same "
            "id, it grants once (the earlier entry is said)",
        ),
    ] = None,
    database_url: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Grant AMOUNT micro-NetworkTokens from the mint: a ledger entry of kind ``grant``."""
    from LLM_Mesh.registry.ledger_grant import grant

    if amount < 1:  # found 2026-12-07 (money41b): -5 was "No such option: -5"
        raise fail(
            ValueError(
                f"AMOUNT {amount}: a grant's amount must be positive (a whole number of "
                "micro-NetworkTokens >= 1; a grant only adds)"
            )
        )
    entry, new = with_admin_store(
        _settings(home, database_url), lambda s: grant(s, account, amount, grant_id)
    )
    said = "granted" if new else f"already granted (grant id {grant_id!r}):"
    # the name given and its account (found 2026-12-05: only "user:a781..." was said)
    to = entry.to_account
    if account != entry.to_account:
        to = f"{shown(account)}, account {to}"
    console.print(
        f"{said} {entry.amount:,} micro-NetworkTokens to {to} (ledger entry {entry.seq})",
        markup=False,
        highlight=False,
    )


def public_key_command(home: HomeOpt = None) -> None:
    """Print this registry's gateway public key (from $LLM_MESH_HOME/registry.key) for nodes
    to pin: registry_public_key in their node.toml, or node start --registry-public-key."""
    from LLM_Mesh.core.gateway_auth import registry_id_for
    from LLM_Mesh.core.identity import encode_public_key, public_key_of
    from LLM_Mesh.registry.gateway_key import load_existing_registry_key, registry_key_path

    try:
        settings = settings_from(home)
        path = registry_key_path(settings)
        key = load_existing_registry_key(path)
    except (OSError, ValueError) as exc:
        raise fail(exc) from exc
    if key is None:
        raise fail(
            ValueError(
                f"no {path}: run this on the registry's machine, with its LLM_MESH_HOME "
                "(--home); the registry makes the key at its first start"
            )
        )
    raw = public_key_of(key)
    text = encode_public_key(raw)
    err.print(
        f"gateway {registry_id_for(raw)}: a node pins it with registry_public_key = "
        f'"{text}" in its node.toml (or node start --registry-public-key)',
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(text)
