"""Receipts of versions 1 to 3 are laid out by ``core/receipt_old.py`` only, which the
registry and the node never import: their code cannot lay out, and sign, an old receipt
(found 2026-12-07, money43: ``receipt_bytes(..., version=2)`` made the bytes of a receipt
that signs no amounts, for any code holding the registry key to sign). Old receipts still
verify (``tests/core/test_receipt_verify*.py``, ``make_receipt(version=...)``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from LLM_Mesh.core.receipt import (
    VERSION,
    Part,
    PartStatus,
    Receipt,
    ReceiptBody,
    ReceiptSigner,
    receipt_bytes,
)
from LLM_Mesh.core.receipt_old import OLD_VERSIONS, OldReceipt, old_receipt_bytes
from LLM_Mesh.core.receipt_verify import Found, parse_receipt, verify
from tests.core.receipt_verify_fixtures import KEYS, REGISTRY_KEY, make_receipt

HASH = "ab" * 32
PART = Part("n1", "k1", PartStatus.SIGNED, 3, 4, HASH, "sig")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", [1, 2])
def test_the_signing_module_lays_out_no_old_receipt(version: int) -> None:
    """Before: ``receipt_bytes(..., version=N)`` gave version N's bytes, and a ``Receipt`` of
    version N its ``signed_bytes``; a registry's code could sign either with its key."""
    body = ReceiptBody("reg", "req", "m", 5, 6, 4, HASH, (PART,))
    with pytest.raises(TypeError):
        receipt_bytes(body, version=version)  # type: ignore[call-arg]
    old = Receipt("reg", "req", "m", 5, 6, 4, HASH, (PART,), signature="", version=version)
    with pytest.raises(ValueError, match="receipt_old"):
        old.signed_bytes()
    with pytest.raises(ValueError, match="receipt_old"):  # nor given the receipt itself
        receipt_bytes(old)
    with pytest.raises(ValueError, match="receipt_old"):
        _ = old.receipt_hash
    # the verifier's module lays them out (the same bytes as before, old data to check)
    assert version in OLD_VERSIONS
    laid = old_receipt_bytes(body, version)
    read = OldReceipt("reg", "req", "m", 5, 6, 4, HASH, (PART,), signature="", version=version)
    assert read.signed_bytes() == laid


def test_the_signer_makes_only_the_current_version() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    receipt, receipt_hash = signer.countersign("req", "m", 6, 4, HASH, [PART])
    assert receipt.version == VERSION == 4 and type(receipt) is Receipt
    assert receipt.receipt_hash == receipt_hash


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_old_receipt_still_verifies(version: int) -> None:
    made = make_receipt(version=version)
    parsed = parse_receipt(made)
    assert isinstance(parsed, OldReceipt) and parsed.version == version
    assert parsed.receipt_hash == made["receipt_hash"]
    assert verify(Found(made), KEYS).receipt_hash == made["receipt_hash"]
    assert type(parse_receipt(make_receipt())) is Receipt  # the current version: not an old one


@pytest.mark.parametrize("package", ["LLM_Mesh.registry", "LLM_Mesh.node"])
def test_the_registry_and_the_node_never_import_the_old_layouts(package: str) -> None:
    """What the import-linter contract in pyproject.toml holds, read from the same graph:
    nothing the registry or the node imports, directly or not, is ``core.receipt_old``."""
    graph = grimp.build_graph("LLM_Mesh", cache_dir=None)
    reached = graph.find_upstream_modules(package, as_package=True)
    assert "LLM_Mesh.core.receipt" in reached  # (the graph is the real one)
    assert "LLM_Mesh.core.receipt_old" not in reached
    contract = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'forbidden_modules = ["LLM_Mesh.core.receipt_old"]' in contract


@pytest.mark.parametrize(
    "source",
    [
        "from LLM_Mesh.core.receipt import _layout\n",
        "from LLM_Mesh.core import receipt\n\nx = receipt._layout\n",
        # its fields' form (money45: countersign's, with no ReceiptBody), banned the same
        "from LLM_Mesh.core.receipt import _layout_fields\n",
        "from LLM_Mesh.core import receipt\n\nx = receipt._layout_fields(b'', 2)\n",
    ],
)
def test_the_registry_may_not_reach_the_layout_of_any_version(source: str) -> None:
    """The layout of any version (``receipt._layout``, which ``receipt_old`` uses, and
    ``receipt._layout_fields``, the same of the fields themselves) is a banned API for ruff (TID251, pyproject.toml) outside ``core/receipt_old.py``: imported
    or reached as an attribute from registry code, ``make lint`` fails (review43b: the
    import-linter contract kept ``receipt_old`` out, but not ``_layout`` itself)."""
    ruff = Path(sys.executable).with_name("ruff")
    for name, banned in (
        ("LLM_Mesh/registry/probe.py", True),
        ("LLM_Mesh/core/receipt_old.py", False),
    ):
        run = subprocess.run(
            [str(ruff), "check", "--no-cache", "--select", "TID251", "--stdin-filename", name, "-"],
            input=source, capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert ("TID251" in run.stdout) is banned, (name, run.stdout, run.stderr)
