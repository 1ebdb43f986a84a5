"""``llm-mesh registry serve --workers 2`` whose start cannot write a file of its home (a full
disk: ``errno.ENOSPC`` injected into the workers' ``settlement.holder`` write), with real
processes on PostgreSQL (``registry/workers.py``, ``start_writes.py``).

Checked 2026-12-07 (fulldisk43; fulldisk42 left it untested): worker 0, which starts alone,
says the one line and exits 1; the supervisor starts no other worker, says once that worker
0 could not start, and exits 1 (``docs/operations.md``: a start that fails). No traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.e2e.replica_mesh import replica_env
from tests.waiting import START_S, scaled

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

#: loaded by each process at its start (``sitecustomize``): a full disk for one file only
FULL_DISK = """\
import errno, os
_replace = os.replace
def replace(src, dst, *args, **kw):
    if os.fspath(dst).endswith("settlement.holder"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _replace(src, dst, *args, **kw)
os.replace = replace
"""


def test_a_worker_start_that_cannot_write_its_home_is_one_line_and_exit_1(
    tmp_path: Path, pg_database_url: str
) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FULL_DISK)
    home = tmp_path / "registry"
    env = replica_env(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(inject), env.get("PYTHONPATH")]))
    args = ["registry", "serve", "--host", "127.0.0.1", "--port", str(free_port()),
            "--database-url", pg_database_url, "--workers", "2"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", *args],
        env=env, capture_output=True, text=True, timeout=scaled(START_S) + 60,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    line = (
        f"error: the registry could not write {home}/settlement.holder (no space left on its "
        f"disk): free space there (df -h {home}), or give another home with --home or "
        "LLM_MESH_HOME (or the file's own option)"
    )
    assert said.splitlines().count(line) == 1, said
    assert "Traceback" not in said and "Application startup failed" not in said
    assert "worker 0 could not start (exit code 1)" in said
    assert "worker 1 started" not in said  # the others wait for worker 0, which failed
