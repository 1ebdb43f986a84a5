"""The ledger keys a verifying command trusts, remembered from run to run.

``ledger verify`` and ``ledger statement`` (without ``--key``) check checkpoints, and
``receipt verify`` (without ``--key``/``--keys``) countersignatures, with the keys
``GET /v1/ledger/keys`` lists, as judged by ``core/ledger_keys.py`` against those an
earlier clean run of this ledger kept in ``$LLM_MESH_HOME/ledger_seen.json``: on first
use each is trusted and said so; later, a key not remembered counts only when the
registry's signed rotation chain (``key_rotations``) leads to it from a remembered key,
or with ``--accept-new-key`` (said), or for a ``ledger verify --witness`` run (the
witnesses' cosignatures must then hold); otherwise the run stops with one line, exit 1
(found 2026-12-05: any key the registry listed was taken, so a new key signing a forged
extension of the log passed). The keys trusted are kept by the clean run's ``save_seen``
(``receipt verify``: ``remember_keys``, once the receipt checks out).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from LLM_Mesh.cli.common import console
from LLM_Mesh.cli.ledger_seen import load_keys
from LLM_Mesh.cli.render import shown, terminal_text
from LLM_Mesh.core.ledger_keys import judge_keys
from LLM_Mesh.core.plural import counted
from LLM_Mesh.errors import MeshError

__all__ = ["AcceptNewKeyOpt", "KeyMemory", "KeyRefused", "LedgerApiKeyOpt"]

# the environment's key goes only to the registry configured with it; a key given here is
# the user's choice for the registry named, --registry too, as `ask` and `balance` send it
# (found 2026-12-06, ux34: `ledger statement --api-key` was "No such option")
LedgerApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="Your API key, sent to a --registry too \\[env LLM_MESH_API_KEY: sent only "
        "to the registry configured with it]",
    ),
]

AcceptNewKeyOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new-key",
        help="trust a ledger key the registry lists that no earlier run trusted and no "
        "signed rotation from a trusted key leads to (said; kept after a clean run)",
    ),
]


class KeyRefused(MeshError):
    """A published ledger key this verifier does not trust (the message says why)."""


class KeyMemory:
    """Judges the published keys for one ledger (``source``, as ``ledger_seen`` files it)
    and holds the ones trusted, for the clean run to keep."""

    def __init__(
        self, path: Path, source: str, *, accept_new: bool = False, witnessed: bool = False
    ) -> None:
        self.path, self.source = path, source
        self.accept_new, self.witnessed = accept_new, witnessed
        self.trusted: list[str] = []  # filled by :meth:`judge`: what a clean run keeps
        # new keys taken on the witnesses' word (``witnessed``): the newest checkpoint must
        # then carry their cosignatures itself, not ride on an older one's (ledger verify)
        self.on_witness: list[str] = []

    def judge(self, published: list[str], chain: object) -> list[str]:
        """The keys to check checkpoints with; :class:`KeyRefused` for a key not trusted."""
        remembered = load_keys(self.path, self.source)
        verdict = judge_keys(published, remembered, chain)
        for key in verdict.first_use:
            console.print(
                f"trusting key {shown(key)} on first use (a ledger key the registry lists; "
                f"kept in {shown(self.path)} after a clean run, later keys must follow from it by "
                "signed rotation)",
                highlight=False,
            )
        for key, start, links in verdict.rotated:
            console.print(
                f"trusting key {shown(key)}: the registry's signed rotation chain leads to it "
                f"from the remembered key {shown(start)} ({counted(links, 'link')})",
                highlight=False,
            )
        trusted = list(verdict.trusted)
        if verdict.new:
            new = ", ".join(shown(k) for k in verdict.new)
            if self.accept_new:
                console.print(
                    f"--accept-new-key: trusting key {new}, which no earlier run trusted "
                    f"({shown(verdict.why)}); kept after a clean run",
                    highlight=False,
                )
            elif self.witnessed:
                console.print(
                    f"key {new}: not remembered ({shown(verdict.why)}); trusted for this run only "
                    "if the newest checkpoint itself carries the --witness cosignatures, and "
                    "kept then",
                    highlight=False,
                )
                self.on_witness = list(verdict.new)
            else:
                raise KeyRefused(_refusal(verdict.new, verdict.why, remembered or (), self.path))
            trusted += verdict.new
        self.trusted = trusted
        return trusted


def _refusal(new: Sequence[str], why: str, remembered: Sequence[str], path: Path) -> str:
    keys = ", ".join(terminal_text(k) for k in new)
    return (
        f"the registry lists ledger key {keys}, which no earlier run trusted ({why}; trusted: "
        f"{', '.join(remembered)}, in {path}): a forged log, or a key "
        "replaced without a rotation statement; ask the registry's operator, then run "
        "again with --accept-new-key (or --key KEY)"
    )
