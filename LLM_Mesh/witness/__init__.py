"""A cosigning witness's own files and its ``add-checkpoint`` server (``llm-mesh ledger witness``).

``state.py``: its key and its per-log state, durable; ``server.py``: C2SP
``tlog-witness``'s push API (``--listen``), the decision ``core/tlog_witness.py``'s.
"""

from __future__ import annotations

__all__: list[str] = []
