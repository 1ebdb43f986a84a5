"""``llm-mesh ask --save DIR``: the answer's receipt kept for ``ledger statement``.

The writing is ``LLM_Mesh/receipt_files.py``'s (the seed API's too): a new file of
``DIR`` a request, mode 0600, ``DIR`` made 0700; a keyed ``ask`` keeps it in the key's
own folder by default (``--no-save``: not at all).
"""

from __future__ import annotations

from LLM_Mesh.receipt_files import save_receipt

__all__ = ["save_receipt"]
