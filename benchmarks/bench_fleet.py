"""The fleet simulator's scenarios × strategies: success rate and latency percentiles.

Method: ``LLM_Mesh.simulator.run_scenario`` (discrete-event, virtual clock, the
real ``core.balancer.Router`` for ``ours`` and ``core.selection.pick_least_loaded``
for ``least-loaded``); see ``LLM_Mesh/simulator/scenarios.py`` for each scenario.
``least-loaded`` on the 10,000-node scenario is O(N) per decision and runs
only with ``--include-slow`` (about 2 minutes).

    .venv/bin/python benchmarks/bench_fleet.py [--seed 1] [--include-slow]
"""

from __future__ import annotations

import sys

from LLM_Mesh.simulator.cli import main

if __name__ == "__main__":
    print(__doc__)
    sys.exit(main(sys.argv[1:]))
