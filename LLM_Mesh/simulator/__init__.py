"""The fleet simulator: the real routing code against thousands of simulated nodes.

Discrete-event on a virtual clock (``events``), nodes whose behaviour is hidden
from the router (``fleet``), a gateway that fails over by running the real one's
policy code, :mod:`LLM_Mesh.core.failover`, with its defaults (``gateway``: 10
failovers after refused nodes, 3 attempts for work, the same budgets and backoff),
the strategies compared (``strategies``) and the scenarios
(``scenarios``). ``main`` prints the comparison table.
"""

from LLM_Mesh.simulator.cli import format_table, main
from LLM_Mesh.simulator.scenarios import SCENARIOS, Report, Scenario, run_scenario
from LLM_Mesh.simulator.strategies import STRATEGIES

__all__ = ["SCENARIOS", "STRATEGIES", "Report", "Scenario", "format_table", "main", "run_scenario"]
