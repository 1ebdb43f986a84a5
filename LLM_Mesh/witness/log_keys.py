"""The registry's log keys a witness in rounds trusts, kept in ``$LLM_MESH_HOME/witness_keys.json``.

Without ``--log-key``, ``llm-mesh ledger witness`` in rounds reads the keys that sign the
log's checkpoints from ``GET /v1/ledger/keys``. Until 2026-12-05 it took them as listed,
each round: a compromised registry, or a man in the middle on plain http, listing a key
of its own had the witness cosign a checkpoint it signed over a forged log, and every
verifier's ``--witness`` then vouched for it. Now they are judged as ``ledger verify``
judges its keys (``core/ledger_keys.judge_keys``, the one decision): on first use the
keys listed are trusted (the witness says so as a warning) and kept once a checkpoint
verified with them; later a key not kept counts only when the registry's signed rotation
chain (``key_rotations``: each old ``registry.key`` signing the next) leads to it from a
kept key, or with ``--accept-new-key`` (said; spent by the first round it lets through).
Otherwise :class:`LogKeyRefused`: the round cosigns nothing and the witness's state is
left as it was.

The file: per log origin, the keys as listed (standard base64), none ever forgotten;
written whole, synced and renamed into place (``secret_files.replace_file``), mode 0600.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from LLM_Mesh.core.ledger_keys import KeyTrust, judge_keys
from LLM_Mesh.errors import MeshError
from LLM_Mesh.secret_files import make_private_dir, replace_file
from LLM_Mesh.witness.state import read_logs

__all__ = ["KEYS_FILE", "KEYS_FORMAT", "LogKeyMemory", "LogKeyRefused", "load_log_keys"]

KEYS_FILE = "witness_keys.json"
KEYS_FORMAT = "llm-mesh/witness-keys/v1"


class LogKeyRefused(MeshError):
    """A log key the registry lists that this witness does not trust (the message says why)."""


def _read(path: Path) -> dict[str, list[str]]:
    return {
        str(o): [k for k in keys if isinstance(k, str)]
        for o, keys in read_logs(path, KEYS_FORMAT).items()
        if isinstance(keys, list)
    }


def load_log_keys(path: Path, origin: str) -> list[str] | None:
    """The keys kept for ``origin`` (``None``: none yet, a first use)."""
    return _read(path).get(origin) or None


class LogKeyMemory:
    """Judges the listed keys of a log against those kept in ``path``, and keeps them."""

    def __init__(self, path: Path, *, accept_new: bool = False) -> None:
        self.path, self.accept_new = path, accept_new

    def judge(self, origin: str, published: Sequence[str], chain: object) -> KeyTrust:
        """``published`` (``GET /v1/ledger/keys``) judged against the keys kept for
        ``origin`` and the registry's rotation chain; :class:`LogKeyRefused` for a key
        neither kept nor reached by the chain, unless ``accept_new`` (then it is in the
        verdict's ``new``, to be trusted)."""
        kept = load_log_keys(self.path, origin)
        verdict = judge_keys(published, kept, chain)
        if verdict.new and not self.accept_new:
            keys = ", ".join(verdict.new)
            raise LogKeyRefused(
                f"the registry lists log key {keys} for {origin!r}, which this witness never "
                f"trusted ({verdict.why}; trusted: {', '.join(kept or ())}, in {self.path}): "
                "a forged log, or a key replaced without a rotation statement; nothing "
                "cosigned. Ask the registry's operator, then run once with --accept-new-key "
                "(or pin --log-key KEY)"
            )
        return verdict

    def keep(self, origin: str, verdict: KeyTrust) -> None:
        """Keep the keys ``verdict`` trusted (and its ``new`` ones, accepted) for
        ``origin``, beside those kept: once a checkpoint verified with them, before the
        cosignature leaves. An accepted key spends ``accept_new``."""
        logs = _read(self.path)
        kept = logs.get(origin, [])
        logs[origin] = kept + [k for k in (*verdict.trusted, *verdict.new) if k not in kept]
        if logs[origin] != kept:
            make_private_dir(self.path.parent)
            data = {"format": KEYS_FORMAT, "logs": logs}
            replace_file(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        if verdict.new:
            self.accept_new = False
