"""The fleet simulator: the real routing code against thousands of simulated nodes.

Discrete-event on a virtual clock (``events``), nodes whose behaviour is hidden
from the router (``fleet``), a gateway that fails over by running the real one's
policy code, :mod:`LLM_Mesh.core.failover`, with its defaults (``gateway``: 10
failovers after refused nodes, 3 attempts for work, the same budgets and backoff),
the strategies compared (``strategies``) and the scenarios
(``scenarios``); requests keyed (with an API key) or anonymous, served in a node's line by
:mod:`LLM_Mesh.core.priority` and held to the gateway's anonymous share by
:mod:`LLM_Mesh.core.anonymous_share`. ``main`` prints the comparison table (and one per
class where a run has classes).
"""

from LLM_Mesh.simulator.cli import format_table, main
from LLM_Mesh.simulator.scenarios import SCENARIOS, ClassReport, Report, Scenario, run_scenario
from LLM_Mesh.simulator.strategies import STRATEGIES

__all__ = [
    "SCENARIOS",
    "STRATEGIES",
    "ClassReport",
    "Report",
    "Scenario",
    "format_table",
    "main",
    "run_scenario",
]
