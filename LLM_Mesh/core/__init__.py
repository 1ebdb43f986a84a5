"""Pure decision code: no web framework, HTTP client or database driver here.

Everything in ``core`` takes plain data (and a clock where time matters) and
returns plain data, so it can be tested without sockets and driven by the fleet
simulator at thousands of nodes.
"""
