"""``python -m LLM_Mesh.cli`` is ``llm-mesh``."""

from LLM_Mesh.cli.main import main

main()
