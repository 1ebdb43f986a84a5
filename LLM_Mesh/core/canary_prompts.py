"""The pool of canary prompts: ordinary code and text, as users send them.

A probe draws one of these (the registry's ``canary`` module), so a node sees a
short, everyday completion request, not a fixed test string. The same pool is
what ``benchmarks/bench_canary.py`` measures the comparison rule on.
"""

from __future__ import annotations

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
)
