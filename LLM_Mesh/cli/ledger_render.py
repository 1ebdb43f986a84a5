"""What ``llm-mesh ledger verify`` (and ``ledger statement``) prints of a check: the
summary or the findings (:func:`print_report`), and whose balance an API key's check
covered (:func:`say_key_balance`); split from ``cli/ledger_commands.py``."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.cli.common import console, err
from LLM_Mesh.cli.render import shown
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.core.ledger_entry import MINT
from LLM_Mesh.core.plural import counted

__all__ = ["print_report", "say_key_balance"]

_AGAINST_SEEN = frozenset({"rewritten", "root", "truncated"})  # what a remembered audit can find


def print_report(report: Report, seconds: float, seen_path: Path | None = None) -> None:
    issued = -report.balances.get(MINT, 0)
    console.print(
        f"ledger: {counted(report.entries, 'entry', 'entries')}, {counted(report.checkpoints, 'checkpoint')}, "
        f"{report.consistency_proofs} consistency and {report.inclusion_proofs} inclusion "
        f"proofs, {counted(len(report.balances), 'account')}, {issued:,} micro-NetworkTokens issued "
        f"(checked in {seconds:.1f} s)"
    )
    if report.ok:
        signed = report.checkpoint.tree_size if report.checkpoint is not None else 0
        if signed == 0 and report.entries:  # nothing the registry signed covers them yet
            console.print(
                "[green]OK[/]: every hash, chain link and balance checks out, but [yellow]no "
                "signed checkpoint covers these entries yet[/]: nothing here is signed by the "
                "registry (it signs one after new entries; verify again later)"
            )
            return
        console.print("[green]OK[/]: every hash, signature, proof and balance checks out")
        if signed < report.entries:
            # the entries by their index, as `receipt verify` names them ("entries 9, 10 are
            # not in a signed checkpoint yet"; found 2026-12-07: "the newest covers 9" read as
            # covering entry 9)
            covered = "entry 0" if signed == 1 else f"entries 0 to {signed - 1}"
            console.print(
                f"the last {counted(report.entries - signed, 'entry is', 'entries are')} not "
                f"under a signed checkpoint yet (the newest, at size {signed}, covers {covered})"
            )
        return
    for f in report.findings:
        err.print(f"[red]{f.kind}[/]: {shown(f.message)}", markup=True, highlight=False)
    if report.more_findings:
        err.print(f"... and {report.more_findings} more")
    err.print(
        f"[red]MISMATCH[/]: {counted(len(report.findings) + report.more_findings, 'finding')}"
    )
    if seen_path is not None and any(f.kind in _AGAINST_SEEN for f in report.findings):
        err.print(
            f"checked against what an earlier verify of this ledger saw ({seen_path}); if its "
            "operator started it over on purpose, remove that file and verify again",
            markup=False,
            highlight=False,
        )


def say_key_balance(
    ok: bool, read: tuple[str, int, int] | None, named: str | None, flag: str | None = None
) -> None:
    """Whose balance a verify with ``LLM_MESH_API_KEY`` (``flag``: ``--api-key``) checked:
    its account as the registry shows it (a pseudonym, never the key), or why none
    (``named``: a --registry the environment's key was not sent to)."""
    whose = "--api-key's" if flag else "LLM_MESH_API_KEY's"
    if named is not None:
        console.print(
            f"LLM_MESH_API_KEY not sent to {shown(named)} (a --registry: the key goes only to "
            "the registry configured with it; --api-key KEY sends it): its account's "
            "balance not checked"
        )
    elif read is None:
        console.print(
            f"{whose} account: balance not checked (this registry does not show it "
            "with the ledger size it was read at)"
        )
    else:
        account, balance, size = read
        said = "matches the ledger" if ok else "checked against the ledger (findings above)"
        (console if ok else err).print(
            f"{whose} account {shown(account)}: its balance, {balance:,} µNT at "
            f"ledger size {size}, {said}",
            highlight=False,
        )
