"""docs/deploy.md's rate-limit loops ("Checking a deployment") show a 429 at the default
``--anonymous-rpm`` on an ordinary machine, not only on a fast one.

Found 2026-12-06 (ratelimit38, from a new user's walk in session 38): the loop sent 70
requests one after another and promised "~60 200, the rest 429"; the anonymous limit is a
bucket of 60 refilled at 1 a second (``core/ratelimit.Bucket``), so at 0.15 s a request or
slower the bucket never empties and all 70 were 200 (the walk saw 70 × 200). N requests
at ``t`` seconds each empty it only when ``N * (1 - t) > 60``; each loop must do so at
:data:`SLOW_S` a request (a replica over https from another machine), and say what to expect.
"""

from __future__ import annotations

import re

from LLM_Mesh.config import DEFAULT_ANONYMOUS_RPM
from tests.test_docs_names import REPO

SLOW_S = 0.3  # seconds a request the loops must still refuse at
_LOOP = re.compile(r"for i in \$\(seq (\d+)\); do (for r in \$R1 \$R2; do )?curl")


def loops(doc: str) -> list[int]:
    """The requests each ``curl`` loop of ``doc`` sends to ``/v1/chat/completions``
    (``seq N``; sent to R1 and R2 in turn: twice N)."""
    found = []
    for m in _LOOP.finditer(doc):
        end = doc.find("done", m.end())
        if "/v1/chat/completions" in doc[m.end() : end]:
            found.append(int(m.group(1)) * (2 if m.group(2) else 1))
    return found


def empties_the_bucket(requests: int, rpm: int = DEFAULT_ANONYMOUS_RPM) -> bool:
    return requests * (1 - SLOW_S) > rpm


def test_the_check_tells_a_short_loop_from_a_long_one() -> None:
    short = "for i in $(seq 70); do curl -d x $R1/v1/chat/completions; done"
    both = "for i in $(seq 75); do for r in $R1 $R2; do curl $r/v1/chat/completions; done; done"
    assert loops(short) == [70] and loops(both) == [150]
    assert not empties_the_bucket(70) and empties_the_bucket(150)


def test_the_deploy_guides_rate_limit_loops_reach_a_429() -> None:
    doc = (REPO / "docs" / "deploy.md").read_text()
    counts = loops(doc)
    assert len(counts) >= 2, counts  # one replica, then R1 and R2 in turn
    assert all(empties_the_bucket(n) for n in counts), counts
    assert "about 60 + S are 200" in doc  # what to expect, with the loop's own time
