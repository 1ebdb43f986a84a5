"""What every ``llm-mesh`` command shares: consoles, option types, settings, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.text import Text

from LLM_Mesh import error_pipe, logs
from LLM_Mesh.bounded_http import answer_object
from LLM_Mesh.cli.options import (  # their home before: the commands import them from here
    EngineOpt as EngineOpt,
)
from LLM_Mesh.cli.options import HomeOpt as HomeOpt
from LLM_Mesh.cli.options import RegistryCaOpt as RegistryCaOpt
from LLM_Mesh.cli.options import RegistryOpt as RegistryOpt
from LLM_Mesh.cli.options import console as console
from LLM_Mesh.cli.options import err as err
from LLM_Mesh.cli.options import reflow_help as reflow_help
from LLM_Mesh.cli.options import version_callback as version_callback
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.client_replicas import ReplicaMemory
from LLM_Mesh.config import Settings
from LLM_Mesh.core.client_retry import CLI_NO_KEY_HINT, NO_KEY_HINT
from LLM_Mesh.core.first_use import exposed_urls
from LLM_Mesh.core.reach_hint import reach_hint
from LLM_Mesh.core.registry_urls import registry_url_list, same_origins, source_words
from LLM_Mesh.errors import MeshError, RegistryUnreachable
from LLM_Mesh.secret_files import (
    SECRET_HOME_FILES,
    make_own_files_private,
    make_private_dir,
    open_files_warning,
    open_home_warning,
    system_home_refusal,
)
from LLM_Mesh.tls import client_ssl_context

if TYPE_CHECKING:
    from LLM_Mesh.client import MeshClient
    from LLM_Mesh.node.config import NodeConfig


def no_registry_answered(
    urls: Sequence[str], exc: Exception, named: bool, *, what: str = "", offline: str = ""
) -> RegistryUnreachable:
    """Nothing answered at ``urls``, in the words every command says it in; ``named``: they
    were given by ``--registry``, so what to check, not to pass one (found 2026-12-05:
    "pass --registry URL" to a user who had); ``what``: what was asked of it; ``offline``:
    how to do without it (``receipt verify``: the keys themselves). A server spoken to
    wrongly (a certificate that failed verification, http to https) is said with
    ``core/reach_hint``'s fix instead (found 2026-12-06, cli36: "is a registry running?"
    beside ``CERTIFICATE_VERIFY_FAILED``)."""
    where = ", ".join(urls)
    asked = f" for {what}" if what else ""
    fix = reach_hint(urls[-1], str(exc)) if urls else None
    if fix is not None:
        return RegistryUnreachable(
            f"the registry at {where}{asked} could not be spoken to ({type(exc).__name__}: "
            f"{exc}); {fix}{offline}"
        )
    hint = (
        f"is a registry running at {where}? (`llm-mesh up`, or `llm-mesh registry serve`; "
        "check the URL)"
        if named
        else "pass --registry URL or set LLM_MESH_REGISTRY_URL"
    )
    return RegistryUnreachable(
        f"no LLM Mesh registry answered at {where}{asked} ({type(exc).__name__}: {exc}); "
        f"{hint}{offline}"
    )


def registry_fail(exc: Exception, settings: Settings) -> typer.Exit:
    """:func:`fail`, with a registry (``settings``') that refused the connection or never
    took it said in :func:`no_registry_answered`'s words (found 2026-12-06: ``ledger
    statement`` said only httpx's "error: All connection attempts failed", no URL, nothing
    to check), and where its URL came from (:func:`registry_source`); so is a client's
    :class:`RegistryUnreachable` (found 2026-12-07, cli42: ``ledger statement --operator``,
    whose first question is ``GET /v1/earnings``, said no URL's source, ``earnings`` did)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        named = settings.registry_source == "--registry"
        said = no_registry_answered(settings.registry_urls, exc, named)
        return fail(RegistryUnreachable(with_source(str(said), settings)))
    return fail(registry_said(exc, settings))


def registry_source(settings: Settings) -> str:
    """Where the registry URL came from (``settings.registry_source``, set where
    ``Settings.from_env``, :func:`settings_from` and :func:`registry_settings` apply their
    order), in words that say what to change: ``--registry``, ``$LLM_MESH_REGISTRY_URL``,
    node.toml's ``registry_url`` (with its path), else the default (found 2026-12-07: in a
    node's home "no LLM Mesh registry answered at URL" and "pass --registry or set
    LLM_MESH_REGISTRY_URL", the URL read from node.toml unsaid; before cli40 the order was
    decided again here, node.toml read again)."""
    return source_words(settings.registry_source)  # (core/registry_urls.py: the node's too)


def registry_said(exc: Exception, settings: Settings | None) -> Exception:
    """``exc``, a registry that did not answer with :func:`registry_source`'s words after
    (``settings``: the registry's; None: none was asked yet, ``exc`` as it is)."""
    if settings is None or not isinstance(exc, RegistryUnreachable):
        return exc
    return RegistryUnreachable(with_source(str(exc), settings))


def with_source(said: str, settings: Settings) -> str:
    """``said`` and, after it in the same sentence, :func:`registry_source`'s words (before
    2026-12-07: "... (the Python API: registry_url=). (the URL came from ...)")."""
    return f"{said.rstrip('. ')}; {registry_source(settings)}"


RegistryPublicKeyOpt = Annotated[
    str | None,
    typer.Option(
        help="Pin the gateway's key (`llm-mesh registry public-key` on the registry's "
        "machine prints it) \\[node.toml registry_public_key]"
    ),
]
AllowHttpFirstUseOpt = Annotated[
    bool,
    typer.Option(
        "--allow-http-first-use",
        help="Without a pinned key, learn it from the first answer of a plain-http registry "
        "on another machine (anyone on the path could answer: a trusted LAN only) "
        "\\[node.toml allow_http_first_use, env LLM_MESH_ALLOW_HTTP_FIRST_USE]",
    ),
]


def replica_memory(settings: Settings) -> ReplicaMemory:
    """Where a command remembers the gateway replica that answered last, for the next
    command to begin at (``$LLM_MESH_HOME/gateway-replica.json``: ``client_replicas.py``)."""
    return ReplicaMemory.in_home(settings.home)


def keyed_client(settings: Settings) -> MeshClient:
    """A client of ``settings``' registry replicas with its API key, as the commands that
    send one ask (``balance``, ``receipt fetch``): the replica that answered last first, its
    CA file; the plain-http warning said by the command (``warn_plain_http``)."""
    from LLM_Mesh.client import MeshClient  # (here, not at import: fast `--version`)
    from LLM_Mesh.plain_http import PlainHttpNotice

    return MeshClient(
        settings.registry_urls,
        api_key=settings.api_key,
        ca_file=settings.registry_ca,
        memory=replica_memory(settings),
        notice=PlainHttpNotice((), quiet=True),  # said by the command (warn_plain_http)
    )


def settings_from(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    """The process's one Settings: the environment, overridden by flags. A value that
    cannot be used (``LLM_MESH_HEARTBEAT_S=abc``, a database path for a URL) is one
    ``error:`` line and exit 1, not a traceback."""
    try:
        settings = Settings.from_env(
            home=home,
            registry_url=registry.rstrip("/") if registry else None,
            registry_source="--registry" if registry else None,  # over the env's
            **kw,
        )
        if settings.home.exists() and not settings.home.is_dir():  # found 2026-12-06 (ux34)
            raise ValueError(
                f"the state directory {settings.home} is a file, not a folder: give a "
                "folder with --home or LLM_MESH_HOME"
            )
        # found 2026-12-06 (ux34): a traceback, read mid-request; only where the command
        # reaches a registry (it takes --registry-ca): a stale LLM_MESH_REGISTRY_CA does not
        # stop an offline command (review34b)
        if settings.registry_ca and "registry_ca" in kw:
            client_ssl_context(settings.registry_ca)
    except ValueError as exc:
        raise fail(exc) from exc
    # a command that sends the API key (it takes --api-key): found 2026-12-05 (newuser32):
    # an operator token was sent, and "incorrect API key" came back
    wrong = _OTHER_CREDENTIALS.get((settings.api_key or "")[:4]) if "api_key" in kw else None
    if wrong is not None:
        named = "--api-key" if kw.get("api_key") else "LLM_MESH_API_KEY"
        raise fail(ValueError(
            f"{named}: that is {wrong}, not an API key; a user's API key is lmk_..., made by "
            "the registry's admin: `llm-mesh registry keys create --name NAME`"
        ))  # fmt: skip
    return settings


def registry_settings(home: Path | None = None, registry: str | None = None, **kw: Any) -> Settings:
    """:func:`settings_from` for a command that reaches a registry (it takes
    ``--registry-ca``): an https registry's CA file is ``--registry-ca``, else
    ``$LLM_MESH_REGISTRY_CA``, else the home's node.toml ``registry_ca``
    (:func:`with_node_ca`), as ``earnings`` and ``node start`` (found 2026-12-06, cli37:
    ``ask``, ``status``, ``ledger verify`` in a node's home failed
    ``CERTIFICATE_VERIFY_FAILED`` with the CA named in node.toml). The registry is
    ``--registry``, else ``$LLM_MESH_REGISTRY_URL``, else node.toml's ``registry_url`` (the
    node's own), else the default (found 2026-12-07, newuser39: ``status`` in the home
    ``./setup-node-operator.sh --registry URL`` set up asked ``http://127.0.0.1:8800``,
    "no LLM Mesh registry answered", while ``earnings`` and ``node plan`` there went to
    node.toml's); which of them, ``registry_source``, said when none answers
    (:func:`registry_source`)."""
    settings = settings_from(home, registry, **kw)
    path = settings.home / "node.toml"  # node/config.py's default_config_path
    named = bool(settings.registry_source)  # --registry or $LLM_MESH_REGISTRY_URL
    if (settings.registry_ca and named) or not path.is_file():
        return settings  # (node.toml not imported: a node home's only)
    from LLM_Mesh.node.config import load_node_config

    try:
        config = load_node_config(path)
        if named:  # its CA only for its own registry (small42): else the system's CAs
            return with_node_ca(settings, config, path, named=True)
        settings = with_node_ca(settings, config, path)
        if not config.registry_url:
            return settings
        urls = registry_url_list(config.registry_url, f"registry_url in {path}")
    except (OSError, ValueError) as exc:  # a node.toml that cannot be used, named
        raise fail(exc) from exc
    if not urls:
        return settings
    return dataclasses.replace(
        settings, registry_url=",".join(urls), registry_urls=urls, registry_source=str(path)
    )


def _own_urls(config: NodeConfig) -> tuple[str, ...]:
    """node.toml's ``registry_url`` as URLs; none when it has none or cannot be read (a
    registry named elsewhere is asked: node.toml's URL is not used, so not refused)."""
    try:
        return registry_url_list(config.registry_url or "", "registry_url")
    except ValueError:
        return ()


def with_node_ca(
    settings: Settings, config: NodeConfig | None, path: Path, named: bool = False
) -> Settings:
    """``settings`` trusting ``config``'s ``registry_ca`` (node.toml at ``path``) when no
    ``--registry-ca`` nor ``$LLM_MESH_REGISTRY_CA`` named a CA file (found 2026-12-06, cli36:
    node.toml had no such key, so ``earnings`` in a node's home needed ``--registry-ca``
    every time); a file that cannot be used is a ``ValueError`` naming node.toml. ``named``:
    the registry asked may be one named elsewhere (``settings.registry_source``:
    ``--registry``, ``$LLM_MESH_REGISTRY_URL``): then the CA is trusted only when every URL
    of ``settings`` is at the scheme, host and port of one of ``config``'s ``registry_url``
    (found 2026-12-07, small42: a CA pinned for node.toml's registry was applied to any
    other one named; the system's CAs are its)."""
    ca = config.ca_file_of(settings.home) if config and not settings.registry_ca else None
    if ca is None or config is None:
        return settings
    if (
        named
        and settings.registry_source
        and not same_origins(settings.registry_urls, _own_urls(config))
    ):
        return settings
    try:
        client_ssl_context(ca)
    except ValueError as exc:
        raise ValueError(f"registry_ca in {path}: {exc}") from None
    return dataclasses.replace(settings, registry_ca=ca)


# credentials that are not API keys, by their prefix (core/identity.py makes them)
_OTHER_CREDENTIALS = {
    "lmo_": "an operator token (a node's credential to register; earnings)",
    "lma_": "the registry's admin key",
}


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="text|json",
        help="Log lines as text or JSON lines (one object per line) \\[env LLM_MESH_LOG_FORMAT, "
        "default text]",
    ),
]
MetricsPublicOpt = Annotated[
    bool,
    typer.Option(
        "--metrics-public",
        help="Serve GET /metrics to anyone (default: loopback clients, or a bearer "
        "LLM_MESH_METRICS_TOKEN) \\[env LLM_MESH_METRICS_PUBLIC]",
    ),
]
NoMetricsOpt = Annotated[
    bool,
    typer.Option("--no-metrics", help="No GET /metrics and no counting \\[env LLM_MESH_METRICS=0]"),
]


def observability(log_format: str | None, metrics_public: bool, no_metrics: bool) -> dict[str, Any]:
    """The observability flags as ``Settings`` overrides (``None``: the environment's)."""
    return {
        "log_format": log_format,
        "metrics_public": True if metrics_public else None,
        "metrics": False if no_metrics else None,
    }


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """INFO (DEBUG with ``verbose``) to stderr, as text or JSON lines (``LLM_Mesh/logs.py``)."""
    logs.setup_logging(verbose, fmt)


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as a one-line error and return the Exit(1) to raise."""
    # one line however wide (a log keeps it whole); the message is text, never markup
    # and without terminal escapes: it may quote a registry's or a node's words (found
    # 2026-12-03: a registry's error message reached the terminal with its ESC sequences)
    line = said(exc)
    error_pipe.tell(line)  # first: a full disk may refuse stderr's log (``up``'s child)
    err.print(Text.assemble(("error:", "red"), f" {line}"), soft_wrap=True)
    return typer.Exit(1)


def warn_plain_http(urls: Sequence[str], what: str, *, keys: bool = False) -> None:
    """One stderr warning when ``what`` (a credential) is sent, or (``keys``) the keys a
    check trusts are read, over plain http to another machine (``core/first_use
    .exposed_urls``: not https, not loopback): anyone on the network path reads the
    credential and can answer in the registry's place (found 2026-12-05: not a word; a
    node refuses such a registry for its first key, a user's key and checks went on)."""
    exposed = exposed_urls(urls)
    if not exposed:
        return
    where = ", ".join(terminal_text(u)[:200] for u in exposed[:4])
    risk = (
        f"{what} were read over plain http from {where}: anyone on the network path could "
        "have answered with keys of their own, and a receipt or checkpoint made with them "
        "checks out; pass the keys you trust (--key, --keys FILE) or use https"
        if keys
        else f"{what} goes over plain http to {where}: anyone on the network path can read "
        "it, use it, and answer in the registry's place; use https (the registry: "
        "registry serve --tls-cert/--tls-key)"
    )
    err.print(Text.assemble(("warning:", "yellow"), f" {risk}"), soft_wrap=True)


def said(exc: Exception) -> str:
    """``exc``'s message as printable text; one without a message by its kind (found
    2026-12-05: an ``httpx.ReadTimeout`` printed ``error: `` and nothing else)."""
    if text := terminal_text(exc):
        return text.replace(NO_KEY_HINT, CLI_NO_KEY_HINT)  # a gateway's 401: the CLI's words
    if isinstance(exc, httpx.TimeoutException):
        return f"{type(exc).__name__}: no answer within the timeout"
    return type(exc).__name__


def ensure_home(home: Path) -> None:
    """Make the state directory ``home`` and check that it can be written; else the one-line
    error and Exit(1) (not a traceback, nor a failure after the slow start). A folder of
    the system (``/``, ``/etc``, ...) is refused; one made before that others can read,
    another user owns, or a symbolic link is named on stderr and left as it is; in it, the
    files the mesh makes are given ``secret_files.kept_mode`` (a secret one made private, any
    other the group's and others' write taken; said), and any other file others can read is
    named on stderr, left."""
    refuse_system_home(home)
    made = make_own_files_private(home)  # the mesh's own, by name (secret_files)
    if secret := [name for name in made if name in SECRET_HOME_FILES]:
        err.print(
            f"made private (chmod go=) in {home}: {', '.join(secret)} (keys and the store are "
            "kept to their owner alone, a group's read too; readable by other users: made by "
            "a version before 2026-12-07, or copied back from a backup)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if written := [name for name in made if name not in SECRET_HOME_FILES]:
        err.print(
            f"write taken from the group and others (chmod go-w) in {home}: "
            f"{', '.join(written)} (whoever can write them can change the mesh's state; "
            "the read bits are kept)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    for warning in (open_home_warning(home), open_files_warning(home)):  # said, left
        if warning is not None:
            err.print(warning, markup=False, highlight=False, soft_wrap=True)
    try:
        make_private_dir(home)  # mode 0700 when made here
        with tempfile.TemporaryFile(dir=home) as probe:  # a byte: a full disk says so here
            probe.write(b"\0")  # (an empty file takes no space: found 2026-12-07, fulldisk42)
            probe.flush()
    except OSError as exc:
        fix = (  # core/write_refusal.py's words for what to do
            f"free space there (df -h {home}), or give another one with --home or LLM_MESH_HOME"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else "give a writable one with --home or LLM_MESH_HOME"
        )
        raise fail(
            OSError(f"the state directory {home} cannot be written ({exc.strerror or exc}): {fix}")
        ) from None


def refuse_system_home(home: Path) -> None:
    """The one-line error and Exit(1) when ``home`` is a folder of the system."""
    if (refusal := system_home_refusal(home)) is not None:
        raise fail(ValueError(refusal))


def json_object(r: httpx.Response, what: str) -> dict[str, Any]:
    """A registry's answer that must be a 200 with a JSON object; ``MeshError`` naming
    ``what`` (e.g. ``GET /v1/ledger/keys``) otherwise."""
    if r.status_code != 200:
        raise MeshError(f"{what} answered {r.status_code}: {error_said(r)}")
    return answer_object(r, what)  # not JSON, too deep, not an object: UpstreamError


def error_said(r: httpx.Response) -> str:
    """An error answer in words: its OpenAI-shaped ``error.message`` (and ``code``), else
    the start of its text (found 2026-12-05: ``ledger statement`` with a revoked key
    printed the registry's whole JSON body)."""
    try:
        error = answer_object(r, "the answer").get("error")
    except MeshError:
        error = None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and isinstance(error, dict):
        code = error.get("code")
        return message[:200] + (f" ({code[:64]})" if isinstance(code, str) else "")
    return r.text[:200]


async def first_answering(
    urls: Sequence[str], verify: ssl.SSLContext | bool = True, timeout_s: float = 10.0
) -> str:
    """The first of the registry replicas ``urls`` (``--registry URL,URL,...``) that
    answers ``GET /v1/ledger/keys`` at all (any status; its head within ``timeout_s`` of
    silence and 3 × ``timeout_s`` in all, else the next; its body is not read: found 2026-12-03, read whole, a gzip bomb was
    inflated and a byte at a time held ``ledger verify`` / ``witness`` as long as the
    replica liked); the last one when none before it does (the caller's own call then says why). One URL: that
    one, asked nothing here."""
    for url in urls[:-1]:
        try:
            async with (
                asyncio.timeout(3 * timeout_s),
                httpx.AsyncClient(timeout=timeout_s, verify=verify) as client,
                client.stream("GET", url.rstrip("/") + "/v1/ledger/keys"),
            ):
                pass
        except (httpx.TransportError, TimeoutError):
            # refused, no head within the bound, or none at all (found 2026-12-05: a hung
            # replica's httpx.ReadTimeout ended `ledger verify` with an empty "error: ")
            continue
        return url
    return urls[-1]


def begin_at(urls: Sequence[str], answered: str | None) -> list[str]:
    """``urls`` with ``answered`` (the replica that answered the command's previous call)
    first and the others after, in their order: a hung replica it left is not waited on
    again by the next call (found 2026-12-05)."""
    return [u for u in urls if u == answered] + [u for u in urls if u != answered]


def try_line(model: str, registry_url: str, clients_use: tuple[str, ...]) -> str:
    """``up``'s first command to try; with ``--registry`` when the registry is not the one
    clients use by default (found 2026-12-04: ``up --registry-port 18800`` said to try
    ``llm-mesh ask ...``, which asked http://127.0.0.1:8800: another registry, or none)."""
    flag = "" if registry_url.rstrip("/") in clients_use else f" --registry {registry_url}"
    return f'Try: llm-mesh ask "def fibonacci(n):" --model {shown(model)}{flag}\n'
