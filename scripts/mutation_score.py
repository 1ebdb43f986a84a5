"""Print the mutation score of the last `mutmut run` (called by `make mutate`).

Reads mutmut's per-file results (``mutants/**/*.py.meta``) and prints, per
module and in total, how many mutants the tests killed. Killed means a test
failed (or the mutant ran past its time limit, which mutmut also counts as
caught); everything else that was run counts against the score: survived, no
test reached it, suspicious. Skipped mutants (``# pragma: no mutate``) are left
out of the total.

    python scripts/mutation_score.py [mutants-dir]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = {"killed", "timeout", "caught by type check"}
LEFT_OUT = {"skipped", "not checked"}


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path("mutants")
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/: run `mutmut run` first", file=sys.stderr)
        return 1
    total: Counter[str] = Counter()
    print(f"{'module':<40} {'killed':>7} {'total':>6} {'score':>7}  survivors")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        statuses = Counter(status_by_exit_code[code] for code in codes.values())
        total += statuses
        killed, counted = _score(statuses)
        if counted:
            name = str(meta.relative_to(root)).removesuffix(".meta")
            others = {s: n for s, n in statuses.items() if s not in CAUGHT | LEFT_OUT}
            print(
                f"{name:<40} {killed:>7} {counted:>6} {100 * killed / counted:>6.1f}%  "
                + ", ".join(f"{n} {s}" for s, n in sorted(others.items()))
            )
    killed, counted = _score(total)
    if not counted:
        print("no mutants were run", file=sys.stderr)
        return 1
    print(
        f"\nmutation score: {killed}/{counted} killed ({100 * killed / counted:.1f} %); "
        + ", ".join(f"{n} {s}" for s, n in sorted(total.items()))
    )
    return 0


def _score(statuses: Counter[str]) -> tuple[int, int]:
    killed = sum(n for s, n in statuses.items() if s in CAUGHT)
    counted = sum(n for s, n in statuses.items() if s not in LEFT_OUT)
    return killed, counted


if __name__ == "__main__":
    sys.exit(main(sys.argv))
