"""``llm-mesh ask --save DIR``: the answer's receipt kept for ``ledger statement``.

Each answer's receipt and the ids mapping it to the request
(``core/receipt_verify.saved_form``: no prompt, no answer text) go to a new file of
``DIR``, one a request, that ``ledger statement --receipts DIR`` and ``receipt verify
FILE`` read. A file is made with ``O_EXCL`` (never over another) and mode 0600; ``DIR``,
if missing, is made 0700.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

__all__ = ["save_receipt"]


def save_receipt(folder: Path, form: dict[str, Any], *, now: float | None = None) -> Path:
    """Write ``form`` to a new file of ``folder``; its path. Raises ``OSError``."""
    folder = folder.expanduser()
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        folder.chmod(0o700)  # whatever the umask
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    path = folder / f"receipt-{stamp}-{secrets.token_hex(6)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            json.dump(form, f, separators=(",", ":"))
            f.write("\n")
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)  # no half-written receipt left behind
        raise
    return path
