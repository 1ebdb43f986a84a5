"""``llm-mesh registry serve``: the registry + gateway, one process or ``--workers N``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from LLM_Mesh.cli.common import (
    HomeOpt,
    LogFormatOpt,
    MetricsPublicOpt,
    NoMetricsOpt,
    ensure_home,
)
from LLM_Mesh.cli.common import fail as _fail
from LLM_Mesh.cli.common import observability as _observability
from LLM_Mesh.cli.common import settings_from as _settings
from LLM_Mesh.cli.common import setup_logging as _setup_logging
from LLM_Mesh.config import DEFAULT_REGISTRY_PORT, Settings
from LLM_Mesh.core.first_use import loopback_host
from LLM_Mesh.core.trusted_proxies import FORWARDED_ENV, ignored_environment, parse_trusted_proxies
from LLM_Mesh.core.worker_restart import DEFAULT_WORKER_TIMEOUT_S, MIN_WORKER_TIMEOUT_S
from LLM_Mesh.errors import MeshError

__all__ = ["MAX_WORKERS", "registry_serve", "worker_args"]

MAX_WORKERS = 64  # each holds its own PostgreSQL connections (up to 8 in the store's pool)


def registry_serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = DEFAULT_REGISTRY_PORT,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="The store's database URL \\[env LLM_MESH_DATABASE_URL, default SQLite in home]"
        ),
    ] = None,
    home: HomeOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug log lines")] = False,
    allow_private_nodes: Annotated[
        bool,
        typer.Option(
            "--allow-private-nodes",
            help="Accept nodes on loopback/private/link-local addresses (a LAN, tests) "
            "\\[env LLM_MESH_ALLOW_PRIVATE_NODES; default: global addresses only]",
        ),
    ] = False,
    allow_private_node: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-private-node",
            metavar="URL",
            help="Accept this one node origin (http://host:port) even if private, and in plain "
            "http if so named; repeatable",
        ),
    ] = None,
    allow_loopback_nodes: Annotated[
        bool,
        typer.Option(
            "--allow-loopback-nodes",
            help="Accept nodes on this machine's loopback addresses (127.0.0.0/8, ::1) too, "
            "no other private address. Any operator who reaches the registry can then point "
            "the gateway at this machine's local services: only with a loopback --host "
            "(127.0.0.1, the default, or ::1)",
        ),
    ] = False,
    local_mesh: Annotated[
        str | None,
        typer.Option(
            "--local-mesh",
            envvar="LLM_MESH_LOCAL_MESH",  # how `up` sets it: a registry of an older tree ignores it
            hidden=True,
            metavar="COMMAND",
            help="`llm-mesh up` (1, as `up` sets it, or up) or `llm-mesh demo` (demo) started this",
        ),
    ] = None,
    anonymous_rpm: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="N",
            help="Requests a minute per client address without an API key; 0: no limit "
            "\\[env LLM_MESH_ANONYMOUS_RPM, default 60]",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis for rate-limit buckets shared by every replica, e.g. "
            "redis://127.0.0.1:6379/0 \\[env LLM_MESH_REDIS_URL; default: per process]",
        ),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESSES",
            envvar="LLM_MESH_TRUSTED_PROXIES",
            show_envvar=False,
            help="Balancers on other machines whose X-Forwarded-For names the client: IP "
            "addresses or networks, comma-separated, never '*' (loopback is always one; "
            "$FORWARDED_ALLOW_IPS is ignored) \\[env LLM_MESH_TRUSTED_PROXIES; default: loopback]",
        ),
    ] = None,
    canary_prompts: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Private canary prompts (a JSON array of strings, or one JSON string a line), "
            "mixed with the public pool \\[env LLM_MESH_CANARY_PROMPTS; default: none]",
        ),
    ] = None,
    canary_prompts_mode: Annotated[
        str | None,
        typer.Option(
            metavar="MODE",
            help="mix: probes draw from the public pool and --canary-prompts together, "
            "or replace: from the file alone \\[env LLM_MESH_CANARY_PROMPTS_MODE, default mix]",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve https with this PEM certificate (with --tls-key)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM private key")] = None,
    require_tls: Annotated[
        bool,
        typer.Option(
            "--require-tls",
            help="Refuse nodes that are not https (403) \\[env LLM_MESH_REQUIRE_TLS]",
        ),
    ] = False,
    allow_plain_http_nodes: Annotated[
        bool,
        typer.Option(
            "--allow-plain-http-nodes",
            help="Accept http:// nodes on other machines too (a private network, a lab): "
            "their prompts and answers cross the network unencrypted \\[env "
            "LLM_MESH_ALLOW_PLAIN_HTTP_NODES; default: https unless on this machine's loopback]",
        ),
    ] = False,
    accept_ledger_rollback: Annotated[
        bool,
        typer.Option(
            "--accept-ledger-rollback",
            help="Start even though the store's ledger is behind the checkpoint this registry "
            "published (kept in ledger.checkpoint in its home: a restored older backup): new "
            "checkpoints then fork the public ledger; only when the lost entries cannot be "
            "restored (docs/deploy.md) \\[env LLM_MESH_ACCEPT_LEDGER_ROLLBACK]",
        ),
    ] = False,
    log_format: LogFormatOpt = None,
    metrics_public: MetricsPublicOpt = False,
    no_metrics: NoMetricsOpt = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            envvar="LLM_MESH_REGISTRY_WORKERS",
            show_envvar=False,
            show_default=False,
            help=f"Processes sharing this port's one socket, at most {MAX_WORKERS}, each a "
            "replica on the shared store: more than 1 needs a PostgreSQL --database-url \\[env "
            "LLM_MESH_REGISTRY_WORKERS, default 1]",
        ),
    ] = 1,
    worker_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",  # no min=: its "[x>=0]" would narrow every option's help
            envvar="LLM_MESH_REGISTRY_WORKER_TIMEOUT",
            show_envvar=False,
            show_default=False,
            help="With --workers N: a worker hung this long (its event loop sent no heartbeat, "
            "one a second) is killed and started again; 0: never, else at least "
            f"{MIN_WORKER_TIMEOUT_S:g} \\[env "
            f"LLM_MESH_REGISTRY_WORKER_TIMEOUT, default {DEFAULT_WORKER_TIMEOUT_S:g}]",
        ),
    ] = DEFAULT_WORKER_TIMEOUT_S,
    worker_index: Annotated[
        int | None, typer.Option(hidden=True, help="one of --workers N: its index")
    ] = None,
) -> None:
    """Run the registry + gateway (OpenAI API under /v1, Prometheus metrics at /metrics)."""
    from LLM_Mesh.registry.app import serve
    from LLM_Mesh.registry.canary_scheduler import load_pool
    from LLM_Mesh.server_process import inherited_socket

    if (tls_cert is None) != (tls_key is None):
        raise _fail(ValueError("--tls-cert and --tls-key go together"))
    if not (worker_timeout == 0 or worker_timeout >= MIN_WORKER_TIMEOUT_S):  # nan neither
        raise typer.BadParameter(  # about a beat (1 s) would kill healthy workers
            f"{worker_timeout:g}: 0, or {MIN_WORKER_TIMEOUT_S:g} seconds or more",
            param_hint="--worker-timeout",
        )
    if allow_loopback_nodes and not loopback_host(host):
        raise _fail(
            ValueError(
                f"--allow-loopback-nodes with --host {host}: anyone who reaches the registry "
                "there could register a node at this machine's loopback and have the gateway "
                "call its local services; serve on 127.0.0.1 or ::1 with it (or, on a trusted "
                "LAN, use --allow-private-nodes)"
            )
        )

    try:
        settings = _settings(
            home,
            database_url=database_url,
            allow_private_nodes=True if allow_private_nodes else None,
            private_node_origins=tuple(allow_private_node) if allow_private_node else None,
            allow_loopback_nodes=True if allow_loopback_nodes else None,
            local_mesh=_local_mesh(local_mesh),
            anonymous_rpm=anonymous_rpm,
            require_tls=True if require_tls else None,
            allow_plain_http_nodes=True if allow_plain_http_nodes else None,
            accept_ledger_rollback=True if accept_ledger_rollback else None,
            redis_url=redis_url,
            canary_prompts=canary_prompts,
            canary_prompts_mode=canary_prompts_mode.strip().lower()
            if canary_prompts_mode
            else None,
            **_observability(log_format, metrics_public, no_metrics),
        )
        settings.check_node_transport()  # not both --require-tls and the opt-out
        proxies = parse_trusted_proxies(trusted_proxies)  # '*' refused (core/trusted_proxies)
        load_pool(settings.canary_prompts, settings.canary_prompts_mode)  # said before serving
    except ValueError as exc:
        raise _fail(exc) from exc
    _setup_logging(verbose, settings.log_format)
    said = ignored_environment(os.environ.get(FORWARDED_ENV), proxies)
    if said is not None and worker_index is None:  # said once, not by each worker too
        logging.getLogger("LLM_Mesh.registry").warning("%s", said)
    ensure_home(settings.home)
    if workers > 1 and worker_index is None:
        raise typer.Exit(
            _supervise(ctx, workers, settings, host, port, tls_cert, tls_key, worker_timeout)
        )
    try:
        # a worker of --workers N serves the one socket its supervisor bound (handed down)
        sock = inherited_socket() if worker_index is not None else None
        serve(
            settings, host=host, port=port,
            tls_cert=str(tls_cert) if tls_cert else None, tls_key=str(tls_key) if tls_key else None,
            sock=sock, trusted_proxies=proxies,
        )  # fmt: skip
    except (MeshError, ValueError) as exc:  # a taken port, a database it cannot write, a
        raise _fail(exc) from exc  # certificate and key that are no pair: before serving


def _local_mesh(value: str | None) -> str | None:
    """``--local-mesh``: the command that started this registry, ``up`` or ``demo``."""
    command = (value or "").strip().lower()
    if command in ("", "0", "false"):
        return None
    if command in ("1", "true", "up"):  # `up` sets 1: a registry with the older boolean flag
        return "up"  # parses it too (a benchmark's --baseline-tree)
    if command == "demo":
        return "demo"
    raise ValueError(f"--local-mesh / LLM_MESH_LOCAL_MESH must be up or demo, got {value!r}")


def worker_args(
    ctx: typer.Context, skip: tuple[str, ...] = ("workers", "worker_index", "worker_timeout")
) -> list[str]:
    """The options given to this command on its command line, as arguments again (those
    from the environment or defaults are left out: a worker inherits the environment)."""
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if param.param_type_name != "option" or name is None or name in skip:
            continue
        source = ctx.get_parameter_source(name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        if getattr(param, "is_flag", False):
            flags = param.opts if value else param.secondary_opts  # --x, or --no-x
            args += flags[:1]
        elif param.multiple:
            for item in value or ():
                args += [param.opts[0], str(item)]
        elif value is not None:
            args += [param.opts[0], str(value)]
    return args


def _supervise(
    ctx: typer.Context,
    workers: int, settings: Settings, host: str, port: int,
    tls_cert: Path | None, tls_key: Path | None, worker_timeout_s: float,
) -> int:  # fmt: skip
    """``--workers N``: checked here, then :class:`~LLM_Mesh.registry.workers.WorkerSupervisor`."""
    from LLM_Mesh.metrics_http import WORKERS_METRICS_ENV
    from LLM_Mesh.registry.ledger_mark import store_behind
    from LLM_Mesh.registry.store_checks import checks_retry, store_unusable
    from LLM_Mesh.registry.workers import WorkerSupervisor
    from LLM_Mesh.server_process import shared_socket
    from LLM_Mesh.tls import REGISTRY_PAIR_HINT, check_server_pair

    url = settings.effective_database_url
    try:
        if workers > MAX_WORKERS:
            raise ValueError(f"--workers {workers}: at most {MAX_WORKERS} (each holds its own "
                             "database connections)")  # fmt: skip
        if port == 0:
            raise ValueError(f"--workers {workers} needs a fixed --port: with 0 each worker "
                             "would listen on a port of its own")  # fmt: skip
        if not url.startswith("postgresql"):
            raise ValueError(
                f"--workers {workers} needs a PostgreSQL store (--database-url "
                "postgresql://USER@HOST/DB or LLM_MESH_DATABASE_URL): the workers are replicas "
                "that share the network's state through it; SQLite is one process's store"
            )
        if tls_cert is not None and tls_key is not None:
            check_server_pair(str(tls_cert), str(tls_key), hint=REGISTRY_PAIR_HINT)
        problem = store_unusable(url)  # the server, a newer llm-mesh's schema
        if problem is not None:
            raise ValueError(f"{problem} (--database-url)")
        behind = asyncio.run(  # a restored older backup; a lost connection waited for
            checks_retry(url).run("reading its ledger", lambda: store_behind(settings))
        )
        if behind is not None:
            raise ValueError(behind)
        # bound once, here: every worker (and every one restarted) serves this socket
        sock = shared_socket(host, port, ": stop what serves there, or serve on another port")
    except (MeshError, ValueError) as exc:
        raise _fail(exc) from exc
    shutdown_s = settings.registry_shutdown_s  # 0: no bound, none here either (not 10 s)
    base = [sys.executable, "-m", "LLM_Mesh.cli", "registry", "serve",
            *worker_args(ctx)]  # fmt: skip
    # the workers' metric values, summed by each one's /metrics (prometheus-client's
    # multiprocess mode, chosen at its import in each worker): a directory of this run's
    # own (mode 0700, empty), removed when the supervisor ends
    with sock, tempfile.TemporaryDirectory(prefix="llm-mesh-metrics-") as metrics_dir:
        env = dict(os.environ)
        env.pop("prometheus_multiproc_dir", None)  # the old spelling, which it also reads
        if settings.metrics:
            env["PROMETHEUS_MULTIPROC_DIR"] = env[WORKERS_METRICS_ENV] = metrics_dir
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            env.pop(WORKERS_METRICS_ENV, None)
        supervisor = WorkerSupervisor(
            workers,
            lambda i: [*base, "--workers", "1", "--worker-index", str(i)],
            host,
            port,
            stop_timeout_s=shutdown_s + 10.0 if shutdown_s > 0 else None,
            worker_timeout_s=worker_timeout_s,
            env=env,
            sock=sock,
        )
        return supervisor.run()
