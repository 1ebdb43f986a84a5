"""``python -m LLM_Mesh.simulator``."""

import sys

from LLM_Mesh.simulator.cli import main

sys.exit(main())
