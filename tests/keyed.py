"""The keyed ledger accounts of the tests' ledgers: every ledger made in the test process
gets :data:`TEST_ACCOUNT_KEY` (``tests/conftest.py``: ``fixed_account_key``), so a test
names ``operator_account("alice")`` before its ledger exists."""

from __future__ import annotations

from LLM_Mesh.core.ledger_entry import Pseudonyms

TEST_ACCOUNT_KEY = b"llm-mesh tests' ledger account key"
KEYED = Pseudonyms(TEST_ACCOUNT_KEY)


def operator_account(name: str) -> str:
    return KEYED.operator(name)


def node_account(node_id: str) -> str:
    return KEYED.node(node_id)


def held_account(node_id: str) -> str:
    return KEYED.held(node_id)
