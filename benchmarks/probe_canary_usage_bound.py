"""How far above a text's true token count a text-only answer's usage bound lies.

``core/canary_usage.covering_entries`` is the most tokens an honest engine spells a text
with, given the reference's tokens (the evidence of a stream or a request without
``logprobs``). Since ws34 every whitespace byte may be a token of its own (an honest engine
may split the reference's whitespace more finely): the bound is looser, and a node may
state up to it on text-only answers unflagged. This probe measures by how much, on
gemma-3-270m's own tokenization (its GGUF's vocabulary only, no generation) of text files:
each file's first 20,000 characters cut into spans of ``--span`` tokens, each span taken
as both the reference's tokens and the node's text; the ratio is the sum of the bounds over
the sum of the tokens, this tree's rule, ``--baseline-tree``'s (its module loaded by
path) and a candidate (:func:`_lone_space_kept`). A tokenization of a file is not a model's sampled text: a figure of the rule, not of
traffic. Run::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_canary_usage_bound.py \\
        --baseline-tree DIR FILE...
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary_usage import covering_entries
from LLM_Mesh.node.model_files import resolve_model

Rule = Callable[[str, Sequence[str]], "int | None"]


def _baseline_rule(tree: Path) -> Rule:
    spec = importlib.util.spec_from_file_location(
        "baseline_canary_usage", tree / "LLM_Mesh" / "core" / "canary_usage.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    rule: Rule = module.covering_entries
    return rule


def _lone_space_kept(text: str, tokens: Sequence[str]) -> int | None:
    """A candidate, not built (docs/security.md): this tree's rule, but a lone space
    between two other characters (``"▁The"``) never taken as split off its word."""
    from LLM_Mesh.core import canary_usage as cu

    n = cu._spelling(cu._squeeze(text), tokens)
    if n is None:
        return None
    lone = len(re.findall(r"(?<=\S) (?=\S)", text)) + (1 if re.match(r" \S", text) else 0)
    counted = tokens[:n]
    spaces = max(cu._spaces(text), sum(cu._spaces(t) for t in counted)) - lone
    return cu._pieces(text, counted) + spaces


def main() -> None:
    ap = argparse.ArgumentParser(description="a text-only usage bound over true tokens")
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="the other checkout")
    ap.add_argument("--span", type=int, default=32, help="tokens a span (a probe's length)")
    args = ap.parse_args()
    from llama_cpp import Llama

    model = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    llm = Llama(model_path=str(model.path), vocab_only=True, verbose=False)
    rules: dict[str, Rule] = {
        "this": covering_entries,
        "baseline": _baseline_rule(args.baseline_tree),
        "candidate": _lone_space_kept,
    }
    for name in args.files:
        text = name.read_text()[:20000]
        ids = llm.tokenize(text.encode(), add_bos=False)
        pieces = [llm.detokenize([i]).decode("utf-8", "replace") for i in ids]
        n = args.span
        spans = [pieces[i : i + n] for i in range(0, len(pieces) - n + 1, n)]
        tokens = sum(len(s) for s in spans)
        ratios = {}
        for label, rule in rules.items():
            bounds = [rule("".join(s), s) for s in spans]
            assert all(b is not None for b in bounds)
            ratios[label] = sum(b for b in bounds if b is not None) / tokens
        print(
            f"{name}: {len(spans)} spans of {n} tokens: bound / tokens "
            f"this {ratios['this']:.3f}, baseline {ratios['baseline']:.3f}, "
            f"candidate {ratios['candidate']:.3f}"
        )


if __name__ == "__main__":
    main()
