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
traffic; it is what a sampled probe (no kept tokens) is held to. ``below`` counts the spans
where a rule's bound + the slack of 2 is below the span's own tokens + the end token: an
honest node stating exactly the reference's tokens fails there.

``--prompts N`` (canary35) also measures a greedy probe's bound: gemma-3-270m (the whole
model, llama.cpp, CPU) answers the first N prompts of the public pool greedily, ``--span``
tokens, top 5 log-probabilities; each answer is both the reference and the node's text;
the bound with its kept tokens (``canary_usage.kept_tokens`` at the greedy text rule's
``stream_tie_margin``), without (ws34's), the baseline's and the candidate's. Run::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_canary_usage_bound.py \\
        --baseline-tree DIR [--prompts 64] FILE...
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary import DEFAULT_RULE, answer_from_openai
from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_usage import covering_entries, kept_tokens
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


def _report(label: str, n: int, rules: dict[str, Rule], spans: list[list[str]]) -> None:
    tokens = sum(len(s) for s in spans)
    out = []
    for name, rule in rules.items():
        bounds = [rule("".join(s), s) for s in spans]
        assert all(b is not None for b in bounds)
        total = sum(b for b in bounds if b is not None)
        below = sum(
            1 for b, s in zip(bounds, spans, strict=True) if b is not None and b + 2 < len(s) + 1
        )
        out.append(f"{name} {total / tokens:.3f} (below {below})")
    print(f"{label}: {len(spans)} spans of {n} tokens: bound / tokens " + ", ".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description="a text-only usage bound over true tokens")
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="the other checkout")
    ap.add_argument("--span", type=int, default=32, help="tokens a span (a probe's length)")
    ap.add_argument("--prompts", type=int, default=0, help="greedy answers of the pool")
    args = ap.parse_args()
    from llama_cpp import Llama

    model = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    llm = Llama(model_path=str(model.path), vocab_only=True, verbose=False)
    rules: dict[str, Rule] = {
        "this": covering_entries,
        "baseline": _baseline_rule(args.baseline_tree),
        "candidate": _lone_space_kept,
    }
    n = args.span
    for name in args.files:
        text = name.read_text()[:20000]
        ids = llm.tokenize(text.encode(), add_bos=False)
        pieces = [llm.detokenize([i]).decode("utf-8", "replace") for i in ids]
        spans = [pieces[i : i + n] for i in range(0, len(pieces) - n + 1, n)]
        _report(str(name), n, rules, spans)
    if not args.prompts:
        return
    llm = Llama(model_path=str(model.path), n_ctx=2048, logits_all=True, verbose=False)
    kept: dict[str, int] = {}
    answers = []
    for prompt in PROMPTS[: args.prompts]:
        body = llm.create_completion(prompt, max_tokens=n, temperature=0.0, logprobs=5)
        ref = answer_from_openai(dict(body))  # type: ignore[arg-type]
        toks = [t.token for t in ref.tokens]
        if not toks or "".join(toks) != ref.text:
            continue  # a text that is not what its tokens spell: no such probe to judge
        kept["".join(toks)] = kept_tokens(ref.tokens, DEFAULT_RULE.stream_tie_margin)
        answers.append(toks)
        text = "".join(toks)
        print(
            f"  {len(answers)}: {len(toks)} tokens, kept {kept[text]}, bound "
            f"{covering_entries(text, toks, kept[text])}, ws34 {covering_entries(text, toks)}",
            file=sys.stderr,
        )
    greedy: Rule = lambda text, tokens: covering_entries(text, tokens, kept[text])  # noqa: E731
    share = sum(kept.values()) / max(1, sum(len(a) for a in answers))
    print(f"greedy pool answers (kept tokens {share:.3f} of all):", end=" ")
    _report(f"{len(answers)} prompts", n, {"this greedy": greedy, **rules}, answers)


if __name__ == "__main__":
    main()
