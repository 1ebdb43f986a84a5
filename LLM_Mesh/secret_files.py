"""Secret files in ``$LLM_MESH_HOME``: created once with mode 0600, never overwritten.

Used for the node's key (``node.key``, ``LLM_Mesh.node.keys``) and the registry's
admin key (``admin.key``). :func:`create_secret_file` uses ``O_CREAT | O_EXCL``, so
two processes racing to create one cannot both win and an existing file is never
replaced. :func:`admin_key_for`: the admin key a client may send to given registry URLs
(``$LLM_MESH_ADMIN_KEY``; the file's only to the registry that recorded its URLs and its
public key beside it, ``admin.key.registry``, mode 0600: ``core/admin_key_scope.py``, and only once
the URL proved it holds that key: ``admin_proof.py``). :func:`try_lock`: the home's lock files (``settlement.lock``, ``node.key.lock``),
held with ``flock`` while a process runs. :func:`make_private_dir`: the home and the
folders that hold keys, made mode 0700 (found 2026-12-04: made with the umask's 0755, the
home's listing and its readable files open to every user of the machine);
:func:`open_home_warning`: what to say of a home made before, still open to others, owned by
another user, or a symbolic link (left as it is: the user's to change; nothing is ever
changed through a link); :func:`open_files_warning`: the same of its files, those the mesh
makes made private first (:func:`make_own_files_private`, files41); :func:`system_home_refusal`: a folder of the system (``/``,
``/etc``, ...) is never a home. :func:`replace_file`: a small file of the home replaced
whole, even across a power cut (``ledger.checkpoint``, ``settlement.holder``), mode 0600
from its creation, its temporary file made new, never through a link (files41); :func:`create_private_file`: an empty one, 0600, for SQLite to fill
(``registry.db``: its ``-wal`` and ``-shm`` take the database's mode). Found 2026-12-07:
``registry.db`` (the ledger's secret, API-key hashes), its journal, ``admin.key.registry``
and ``ledger.checkpoint`` were made 0644, and a copied backup kept it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from LLM_Mesh.config import Settings
from LLM_Mesh.core.admin_key_scope import (
    KEY_PREFIX,
    file_key_may_go,
    recorded_key,
    registry_origin,
)
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.start_writes import named_error

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # (not on Windows)

ADMIN_KEY_FILE = "admin.key"
#: beside ``admin.key``: the registry URLs its registry was started with, one a line
ADMIN_KEY_REGISTRY_FILE = "admin.key.registry"


#: folders of the system that are never a mesh home: the mesh writes its keys, store and
#: logs there and would have them made private (found 2026-12-04: ``LLM_MESH_HOME=/`` was
#: taken, and its warning advised ``chmod 700 /``)
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys",
    "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/sbin",
    "/usr/share", "/var", "/var/lib", "/var/log", "/var/run", "/var/tmp",
    "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private",
    "/private/etc", "/private/tmp", "/private/var",
})  # fmt: skip


def system_home_refusal(home: Path) -> str | None:
    """Why ``home`` may not be the mesh's home: it is, or leads to (a symbolic link), a
    folder of the system (:data:`SYSTEM_DIRS`); ``None`` otherwise."""
    for where in dict.fromkeys((os.path.abspath(home), os.path.realpath(home))):
        if where in SYSTEM_DIRS:
            led = "" if where == os.path.abspath(home) else f" (it leads to {where})"
            return (
                f"{home}{led} is a folder of the system, not one for the mesh's keys and state "
                "(it would be made private to you): set LLM_MESH_HOME (or --home) to a "
                "dedicated folder, e.g. ~/.llm-mesh"
            )
    return None


def make_private_dir(path: Path) -> Path:
    """``path`` made with its missing parents, each folder made here mode 0700 whatever the
    umask says; a folder that exists already (``/``, the user's own home, a home made
    before: :func:`open_home_warning`) is left as it is, and so is whatever a symbolic link
    leads to: the mode is set on the folder just made, opened without following a link
    (found 2026-12-04: ``chmod`` by name follows one, so a folder swapped for a link
    between the two steps had the link's target made 0700). ``FileExistsError`` when
    ``path`` is a file."""
    missing: list[Path] = []
    here = Path(os.path.abspath(path))
    while not here.is_dir() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process (or a file: below)
            continue
        _chmod_folder(folder, 0o700)  # whatever the umask took away or kept
    if not path.is_dir():
        raise FileExistsError(f"{path} is not a folder")
    return path


def _chmod_folder(folder: Path, mode: int) -> None:
    """``chmod`` the folder itself, never through a symbolic link: ``OSError`` when
    ``folder`` is not a folder (a link put in its place)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
    fd = os.open(folder, flags)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def open_home_warning(home: Path, uid: int | None = None) -> str | None:
    """What to say of the existing ``home`` (it holds keys): a symbolic link (its target
    is where the keys go; nothing is checked or changed through it), a folder another user
    owns (they can read and replace the keys), or one the group or others can read (the
    ``chmod 700`` fix); ``None`` when none of these, or it does not exist. ``uid``: whose
    it should be (default: this process's user)."""
    try:
        st = home.lstat()  # the link itself, not what it leads to
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return (
            f"warning: {home} is a symbolic link (to {os.path.realpath(home)}): the mesh's "
            "keys go where it leads, and its mode is neither checked nor changed through it; "
            "set LLM_MESH_HOME to the folder itself"
        )
    if not stat.S_ISDIR(st.st_mode):
        return None  # (a file: ensure_home refuses it)
    if uid is None:
        uid = os.getuid()
    if st.st_uid != uid:
        return (
            f"warning: {home} belongs to another user (uid {st.st_uid}, you are {uid}), who "
            "can read and replace the mesh's keys; set LLM_MESH_HOME to a folder of your own"
        )
    if not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (
        f"warning: {home} (mode {stat.S_IMODE(st.st_mode):04o}) can be read by other users of this "
        f"machine and holds the mesh's keys: chmod 700 {shlex.quote(str(home))}"
    )


def open_files_warning(home: Path, shown: int = 4) -> str | None:
    """What to say of the files at the top of the existing ``home`` that other users may
    read (group or other permission bits): made by a version before 2026-12-07, when
    ``registry.db``, ``admin.key.registry`` and ``ledger.checkpoint`` were made with the
    umask's 0644, or copied back from a backup that kept it; the mesh's own files are made
    private first (:func:`make_own_files_private`), so what is said is the rest (the user's
    ``node.toml``, files of other names, one of the mesh's it could not change: a hard
    link); one of the mesh's that holds no secret and that others may only read is not
    said (:func:`kept_mode`: its read bits are its owner's choice). Said only of a home private itself
    (:func:`open_home_warning` says what a home open to others needs); left as it is (the
    user's to change); a link is neither followed nor named. ``None``: none."""
    if open_home_warning(home) is not None:
        return None
    try:
        entries = list(os.scandir(home))
    except OSError:
        return None
    names: list[str] = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not (stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)):
            continue
        if entry.name in HOME_FILES and kept_mode(entry.name, st.st_mode) == stat.S_IMODE(
            st.st_mode
        ):
            continue  # (a public one of the mesh's: its read bits kept on purpose)
        names.append(entry.name)
    if not names:
        return None
    names.sort()
    listed = ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )
    return (
        f"warning: {len(names)} file(s) in {home} can be read by other users of this machine "
        f"({listed}; made before 2026-12-07 or copied back from a backup): "
        f"chmod go= {shlex.quote(str(home))}/*"
    )


#: the files the mesh makes at the top of a home, by name: each 0600 from its creation
#: now; ``node.toml`` is not one (the user's own, written by hand or by a setup script)
HOME_FILES = frozenset({
    "registry.db", "registry.db-wal", "registry.db-shm", "registry.db-journal",
    "admin.key", ADMIN_KEY_REGISTRY_FILE, "ledger.checkpoint", "ledger_seen.json",
    "registry.key", "registry.key.previous", "registry.key.rotations",
    "registry.key.next", "registry.key.previous.since",  # rot41's (review41)
    "settlement.holder", "settlement.lock", "node.key", "node.key.lock",
    "node-tls.crt", "node-tls.key", "gateway.pin", "gateway-replica.json", "served.jsonl",
    "witness.key", "witness.lock", "witness_state.json", "witness_keys.json",
})  # fmt: skip


#: the files of :data:`HOME_FILES` that hold a secret: a private key, the store (the
#: ledger's secret, the API keys' hashes) and its journals, the admin key, what a node
#: served; kept to their owner alone (``chmod go=``), a group's read too, as OpenSSH
#: refuses a private key others can read. Every other one (a public key or certificate, a
#: pin, a checkpoint, a lock) keeps the read bits its owner gave; only the group's and
#: others' write is taken away (``chmod go-w``): whoever could write one could change the
#: mesh's state (files42: a group mode given on purpose was taken at every start)
SECRET_HOME_FILES = frozenset({
    "registry.db", "registry.db-wal", "registry.db-shm", "registry.db-journal",
    "admin.key", "registry.key", "registry.key.previous", "registry.key.next",
    "node.key", "node-tls.key", "witness.key", "served.jsonl",
})  # fmt: skip


def kept_mode(name: str, mode: int) -> int:
    """The permission bits a start leaves on the home file ``name`` of mode ``mode``
    (:data:`SECRET_HOME_FILES`: the owner's alone; any other: without the group's and
    others' write)."""
    taken = (
        stat.S_IRWXG | stat.S_IRWXO if name in SECRET_HOME_FILES else stat.S_IWGRP | stat.S_IWOTH
    )
    return stat.S_IMODE(mode) & ~taken


def make_own_files_private(home: Path, uid: int | None = None) -> list[str]:
    """The files of :data:`HOME_FILES` at the top of ``home`` whose mode gives the group or
    others more than :func:`kept_mode` keeps, changed to it (a secret one ``chmod go=``,
    0600; any other ``chmod go-w``, its read bits kept); their names, sorted.
    Found 2026-12-07 (files41): one made 0644 by a version before that day (or copied back
    from a backup that kept it) stayed so, only warned of (:func:`open_files_warning`).
    Only what is surely the mesh's own: a home that is a folder of ``uid``'s (default: this
    process's user), not a symbolic link; in it, a regular file of ``uid``'s with no other
    name (a hard link's other names share its mode), opened without following a link and
    changed through that descriptor. Anything else is left as it is (and warned of)."""
    if uid is None:
        uid = os.geteuid()
    try:
        folder = os.open(home, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
    except OSError:  # missing, a link, not a folder
        return []
    made: list[str] = []
    try:
        if os.fstat(folder).st_uid != uid:
            return []
        for name in sorted(HOME_FILES):
            if _made_private(name, folder, uid):
                made.append(name)
    finally:
        os.close(folder)
    return made


def _made_private(name: str, folder: int, uid: int) -> bool:
    """``name`` in the open ``folder`` given :func:`kept_mode` if it is a regular file of
    ``uid``'s, with one name, whose mode gives others more (:func:`make_own_files_private`)."""
    try:  # (O_NONBLOCK: a FIFO put at the name is opened without waiting, then left)
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:  # missing, a link, not readable
        return False
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_nlink == 1):
            return False
        kept = kept_mode(name, st.st_mode)
        if kept != stat.S_IMODE(st.st_mode):
            os.fchmod(fd, kept)
        return kept != stat.S_IMODE(st.st_mode)
    except OSError:
        return False
    finally:
        os.close(fd)


def create_secret_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file readable by its owner only; ``False`` if it exists.
    A folder made for it is mode 0700 (:func:`make_private_dir`)."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a full disk names no file: this one named (start_writes.py)
        path.unlink(missing_ok=True)
        raise named_error(exc, path) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)  # whatever the umask said
    return True


def create_private_file(path: Path) -> bool:
    """``path`` made empty, mode 0600 (whatever the umask says), unless something is there
    already (left as it is); whether it was made. For a file another library fills and
    would make with the umask's mode: SQLite's database (its ``-wal`` and ``-shm`` journal
    files take the database's mode)."""
    try:  # (a link, even a dangling one, exists: :func:`dangling_link_refusal`)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)  # (a umask can only take bits away; none kept beyond these)
    finally:
        os.close(fd)
    return True


def dangling_link_refusal(path: Path) -> str | None:
    """Why ``path`` may not be used: a symbolic link that leads nowhere, whose target the
    library opening it (SQLite) would make with the umask's mode (0644: readable by every
    user), wherever it leads, a folder of another user's included (found 2026-12-07,
    files41; :func:`create_private_file`'s ``O_EXCL`` refuses the link, so nothing made it
    0600 first). ``None`` otherwise: a link to a file that exists is the user's placement
    (a database on another disk), used as it is."""
    try:
        if not stat.S_ISLNK(path.lstat().st_mode) or path.exists():
            return None
        target = os.readlink(path)
    except OSError:
        return None
    return (
        f"the database {path} is a symbolic link to {target}, which does not exist: SQLite would "
        "make that file, readable by other users, wherever the link leads; remove the link "
        "(a new database is made at the path itself, mode 0600), or make the file it leads "
        "to first, mode 0600"
    )


def too_open(path: Path) -> bool:
    """Can the group or others read ``path``?"""
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def admin_key_path(settings: Settings) -> Path:
    return settings.home / ADMIN_KEY_FILE


def read_admin_key(settings: Settings) -> str | None:
    """The admin key: ``$LLM_MESH_ADMIN_KEY``, else ``$LLM_MESH_HOME/admin.key``, else None.

    For the store's own use (``registry/admin.py``); what a client sends over the network
    is :func:`admin_key_for`'s."""
    if settings.admin_key:
        return settings.admin_key
    path = admin_key_path(settings)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    return text or None


def record_admin_key_registry(
    settings: Settings, served: Sequence[str] = (), public_key: str | None = None
) -> None:
    """Write beside ``admin.key`` the registry URLs this registry was started with
    (``settings.registry_urls``; ``llm-mesh up`` starts its registry with its own URL) and
    those it serves on (``served``: ``registry serve``'s ``--host``/``--port``), and the
    public key it signs with (``public_key``, base64url; a ``key=`` line): the file's key
    goes to those URLs only, once one proved it holds that key (:func:`admin_key_for`).
    Replaced whole."""
    path = settings.home / ADMIN_KEY_REGISTRY_FILE
    make_private_dir(path.parent)
    urls = dict.fromkeys((*settings.registry_urls, *served))  # in order, once each
    lines = [*urls, *([KEY_PREFIX + public_key] if public_key else [])]
    replace_file(path, "".join(line + "\n" for line in lines).encode())  # mode 0600


@dataclass(frozen=True)
class AdminKey:
    """The admin key a client may send, and the proof it needs first: ``registry_key``, the
    public key (base64url) a URL must prove it holds before ``key`` goes there
    (``admin_proof.py``); ``None`` for ``$LLM_MESH_ADMIN_KEY``, the user's explicit choice."""

    key: str = field(repr=False)
    registry_key: str | None


def _home_registry_key(settings: Settings) -> str | None:
    """The public half of ``$LLM_MESH_HOME/registry.key`` (for a record written before
    registries recorded their key), or ``None``."""
    try:
        key = load_pem_private_key((settings.home / "registry.key").read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return encode_public_key(public_key_of(key)) if isinstance(key, Ed25519PrivateKey) else None


def admin_key_for(settings: Settings, urls: Sequence[str]) -> AdminKey | None:
    """The admin key a client may send to ``urls``: ``$LLM_MESH_ADMIN_KEY`` (the user's
    explicit choice, to whatever URLs are configured, no proof asked), else
    ``$LLM_MESH_HOME/admin.key`` only if every one of ``urls`` is a URL its registry recorded
    (:func:`record_admin_key_registry`), with the registry key each URL must prove it holds
    first: the recorded one, or for a record without one (written by an older registry)
    the public half of the home's ``registry.key``; ``None`` if neither: a remote gateway,
    or a program listening where the registry was, is never handed the local mesh's key."""
    if settings.admin_key:
        return AdminKey(settings.admin_key, None)
    try:
        recorded = (settings.home / ADMIN_KEY_REGISTRY_FILE).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    if not file_key_may_go(urls, recorded):
        return None
    registry_key = recorded_key(recorded) or _home_registry_key(settings)
    key = read_admin_key(settings)
    if key is None or registry_key is None:
        return None
    return AdminKey(key, registry_key)


def admin_key_home_urls(settings: Settings) -> list[str]:
    """The registry URLs ``$LLM_MESH_HOME/admin.key`` was recorded for, when the home has
    that key (else none): what :func:`admin_key_missing` names."""
    try:
        if not admin_key_path(settings).read_text(encoding="utf-8").strip():
            return []
        recorded = (settings.home / ADMIN_KEY_REGISTRY_FILE).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return []
    return [w for w in recorded if not w.startswith(KEY_PREFIX) and registry_origin(w)]


def admin_key_missing(urls: Sequence[str], home_urls: Sequence[str] = ()) -> str:
    """What to say when :func:`admin_key_for` gives ``None`` for ``urls``; ``home_urls``:
    :func:`admin_key_home_urls`, the registry the home's admin key is for (found
    2026-12-07, newuser44: after ``llm-mesh up --registry-port 18544``, ``registry canary
    run`` in its home without ``--registry`` went to the default ``:8800`` and said only to
    set LLM_MESH_ADMIN_KEY, as if the home had no key for the mesh it runs)."""
    wanted = ", ".join(registry_origin(u) or "?" for u in urls)
    mine = list(dict.fromkeys(o for o in map(registry_origin, home_urls) if o))
    home = (
        f"this home's admin.key is for the registry at {' or '.join(mine)}, not {wanted}: "
        f"for that one, give its URL (--registry {mine[0]}, or LLM_MESH_REGISTRY_URL; the "
        "Python API: registry_url=); for "
        if mine
        else "set LLM_MESH_ADMIN_KEY to the admin key of "
    )
    return (
        f"an admin operation: {home}the registry at {wanted}"
        + (", set LLM_MESH_ADMIN_KEY to its admin key" if mine else "")
        + " ($LLM_MESH_HOME/admin.key is sent only to the registry that "
        f"made it, at the URLs and with the key in $LLM_MESH_HOME/{ADMIN_KEY_REGISTRY_FILE})"
    )


def try_lock(path: Path) -> int | None:
    """``path`` opened (mode 0600; it and its folder made if missing) and locked with
    ``flock`` without waiting: the descriptor to close when done (that releases it, as the
    process's exit does), or ``None`` when another process holds it. ``OSError`` if it
    cannot be opened; ``ImportError`` where there is no ``flock``."""
    import fcntl

    make_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another process
        os.close(fd)
        return None
    return fd


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename into it) durable; skipped where a directory
    cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - not every filesystem syncs a directory
        pass
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` whole: written to a new temporary file beside it
    (:func:`_new_temporary`, mode ``mode`` from its creation), ``fsync``, renamed over
    ``path``, the folder synced. After a crash or a power cut the file holds the old
    content or the new, never a part (found 2026-12-05: ``settlement.holder`` was written
    in place, and a torn one stopped the next start)."""
    try:
        fd, tmp = _new_temporary(path, mode)
    except OSError as exc:  # named as the file meant, not its temporary one (start_writes)
        raise named_error(exc, path) from exc
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask took away (review40)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk: no temporary file left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # os.write names no file: the one meant named
            raise named_error(exc, path) from exc
        raise
    fsync_dir(path.parent)


def _new_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """A temporary file made here for :func:`replace_file`, opened for writing: never one
    that was there (``O_EXCL``), never through a symbolic link (``O_NOFOLLOW``; with
    ``O_EXCL`` a link, even a dangling one, is refused as existing). Found 2026-12-07
    (files41): ``<name>.<pid>.tmp`` was opened with ``O_TRUNC`` and followed a link planted
    at that name, in a folder others can write (a SQLite URL or a key path under /tmp): its
    target, any file of the user's, was overwritten, made 0600 and renamed as the link
    itself over ``path``. That name first; a regular file of this user's there is a stale
    one of ours (a process of this pid killed mid-write, e.g. a container's registry, which
    runs as the same pid each time): removed (a name, never followed) and made anew. Anything
    else there (a link, another user's file) is left as it is, and a name no one can guess
    is taken instead (``tempfile.mkstemp``: ``O_EXCL | O_NOFOLLOW`` too)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    for _ in range(2):
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            try:
                st = tmp.lstat()
            except FileNotFoundError:
                continue  # gone meanwhile: the name tried again
            if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()):
                break
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # a stale one of ours (unlink never follows a link)
    fd, name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    return fd, Path(name)
