"""The pool of canary prompts: ordinary code and text, as users send them.

A probe draws one of these (the registry's ``canary`` module), so a node sees a
short, everyday completion request, not a fixed test string. The same pool is
what ``benchmarks/bench_canary.py`` measures the comparison rule on.

This pool is public, so a node can keep it and answer its prompts honestly: the admin
may add a private pool (``LLM_MESH_CANARY_PROMPTS``, a file: :func:`parse_pool`) mixed
with it or replacing it (``LLM_MESH_CANARY_PROMPTS_MODE``: :func:`pool_for`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

PROMPTS: tuple[str, ...] = (
    "def fibonacci(n):",
    "def is_prime(n):\n    ",
    "import json\n\ndef load_config(path):\n    ",
    "class Stack:\n    def __init__(self):\n        ",
    "for i in range(10):\n    ",
    "def reverse_string(s):\n    return",
    "SELECT name, email FROM users WHERE",
    "function add(a, b) {\n  ",
    "#include <stdio.h>\n\nint main(void) {\n    ",
    "def quicksort(items):\n    if len(items) <= 1:\n        ",
    "with open('data.csv') as f:\n    ",
    "// Return the maximum of two integers\nint max(int a, int b) {",
    'def read_lines(path):\n    """Return the lines of a file."""\n    ',
    'git commit -m "',
    "<!DOCTYPE html>\n<html>\n<head>\n  <title>",
    "def factorial(n):\n    if n == 0:\n        return 1\n    ",
    "const express = require('express');\nconst app = ",
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "Water boils at",
    "A healthy breakfast usually includes",
    "The best way to learn a new language is",
    "In computer science, a hash table is",
    "Dear Sir or Madam,\n\nI am writing to",
    "The weather today is",
    "Photosynthesis is the process by which",
    "Here is a list of fruits:\n1. Apple\n2.",
    "The meeting has been moved to",
    "To make a cup of tea, first",
    "The history of the Roman Empire",
    "My favourite book is",
    "def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n    ",
    "def merge(a, b):\n    result = []\n    ",
    "import os\n\nfor name in os.listdir('.'):\n    ",
    "def count_words(text):\n    ",
    "class Point:\n    def __init__(self, x, y):\n        ",
    "import requests\n\nresponse = requests.get(",
    "def celsius_to_fahrenheit(c):\n    return",
    "CREATE TABLE orders (\n    id INTEGER PRIMARY KEY,\n    ",
    "const numbers = [1, 2, 3, 4];\nconst doubled = numbers.map(",
    "public class HelloWorld {\n    public static void main(String[] args) {\n        ",
    "def is_palindrome(s):\n    ",
    "#!/bin/bash\n\nfor file in *.txt; do\n    ",
    "fn main() {\n    let v = vec![1, 2, 3];\n    ",
    "def parse_args():\n    parser = argparse.ArgumentParser(",
    "try:\n    value = int(text)\nexcept ValueError:\n    ",
    "def flatten(nested):\n    ",
    "The largest planet in our solar system is",
    "Thank you for your email. I will",
    "The main ingredients of bread are",
    "A good password should",
    "The human heart has four",
    "Exercise is important because",
    "The first step in solving a problem is",
    "Mount Everest is located in",
    "The difference between a virus and a bacterium is",
    "Here are three tips for better sleep:\n1.",
    "The train to London leaves at",
    "Summary of the meeting:\n-",
    "The recipe calls for two cups of",
    "Electricity is the flow of",
    "Please find attached the",
    "The ocean covers about",
)

POOL_MODES = ("mix", "replace")
"""How an admin's private pool is used: with :data:`PROMPTS` (``mix``) or alone."""
MAX_PROMPT_CHARS = 4000
"""The longest private prompt accepted (a probe is a short everyday request)."""


def parse_pool(text: str, source: str = "the canary prompt file") -> tuple[str, ...]:
    """An admin's private prompts from ``text``: a JSON array of strings, or JSON Lines
    (one JSON string a line; blank lines skipped). Each a non-empty string of at most
    :data:`MAX_PROMPT_CHARS` characters; repeats kept once, in order. Anything else is a
    :class:`ValueError` naming ``source`` and the place."""
    stripped = text.strip()
    items: list[tuple[str, object]] = []
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"{source}: not a JSON array of strings: {exc}") from exc
        if not isinstance(data, list):
            raise ValueError(f"{source}: not a JSON array of strings")
        items = [(f"item {i + 1}", v) for i, v in enumerate(data)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((f"line {n}", json.loads(line)))
            except ValueError as exc:
                raise ValueError(
                    f"{source}: line {n} is not a JSON string (the file holds a JSON array "
                    f"of strings, or one JSON string a line): {exc}"
                ) from exc
    out: dict[str, None] = {}
    for where, value in items:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{source}: {where} is not a non-empty string")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"{source}: {where} has {len(value)} characters; at most {MAX_PROMPT_CHARS}"
            )
        out[value] = None
    if not out:
        raise ValueError(f"{source}: no prompts")
    return tuple(out)


def pool_for(private: Sequence[str], mode: str = "mix") -> tuple[str, ...]:
    """The prompts probes draw from: :data:`PROMPTS` and ``private`` (``mix``; none:
    the public pool), or ``private`` alone (``replace``)."""
    if mode not in POOL_MODES:
        raise ValueError(f"the canary prompt mode must be mix or replace, got {mode!r}")
    if mode == "replace":
        if not private:
            raise ValueError("the canary prompt mode replace needs a prompt file")
        return tuple(dict.fromkeys(private))
    return tuple(dict.fromkeys((*PROMPTS, *private)))


def parse_prompts_mode(value: str | None) -> str:
    """``LLM_MESH_CANARY_PROMPTS_MODE``: ``mix`` or ``replace`` (any case); empty: ``mix``."""
    mode = (value or "").strip().lower() or "mix"
    if mode not in POOL_MODES:
        raise ValueError(f"LLM_MESH_CANARY_PROMPTS_MODE must be mix or replace, got {value!r}")
    return mode
