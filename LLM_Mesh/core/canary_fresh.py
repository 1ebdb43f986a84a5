"""Canary prompts made fresh per probe, so a node cannot remember them.

The pool (``core/canary_prompts.py``) is finite and each of its prompts is sent again and
again: a node can keep the public list, or remember every prompt it has seen, answer
those honestly and lie to the new ones users send (docs/security.md, probes' tell (c)).
:func:`fresh_prompt` composes a new prompt from an injected RNG instead: one of several
families (code to complete in Python, JavaScript, SQL, C, Go, Rust, a shell script, a
config file, a test; questions, e-mails, word problems, lists and notes in prose), each
with structure drawn too (which parts come, in which order, where the text stops, the
indentation, the naming style) and fresh identifiers, literals, names and numbers.

Never repeating, in practice: every family draws identifiers or names of two or three
words of :data:`WORDS` (256 words: 8 bits a word), literals and structure; counted over
its uniform draws (``tests/core/test_canary_fresh.py``, a counting RNG), each path to a
prompt has a chance below 2^-52 (the least seen, SQL's, about 2^-57), so any one prompt,
allowing 16 paths that spell the same text, a chance below 2^-48 (:data:`MIN_BITS`). Two
draws are then the same with a chance below 2^-48, and over a million probes (about a
century at one probe per model an hour) a repeat anywhere has a chance below
(10^6)^2 / 2 · 2^-48 < 0.002.

Plausible as user traffic: identifiers are everyday programming words, in the naming
style of their language, literals as users write them; prose names people, places,
dates and amounts. What remains a tell: the generator is public, so its vocabulary and
families are too; a node can ask of any prompt whether this module could have made it
(every word from :data:`WORDS`, a skeleton of one family) and answer just those
honestly (docs/security.md, tell (c), what remains).

Pure: the RNG is passed in; the same seed gives the same prompt.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import overload

__all__ = [
    "DEFAULT_FRESH_SHARE",
    "FAMILIES",
    "MAX_CHARS",
    "MIN_BITS",
    "WORDS",
    "FreshTurns",
    "fresh_prompt",
    "parse_fresh_share",
]

DEFAULT_FRESH_SHARE = 0.5
"""The share of probes whose prompt is made fresh (``LLM_MESH_CANARY_FRESH_SHARE``);
the rest draw from the pool. Each fresh probe is a reference the verifier answers anew
(the pool's are cached; measured in docs/benchmarks.md, 2026-12-06 ``fresh35``)."""
MAX_CHARS = 1200
"""The longest fresh prompt (a short everyday request)."""
MIN_BITS = 48
"""A lower bound of the bits of chance in every fresh prompt (module docstring)."""

WORDS: tuple[str, ...] = tuple(
    """account active address agent admin age alert amount api archive area asset audit
    author backup balance base batch bill block body book border bound branch bucket
    budget buffer build cache call card cart case cell change channel chart check child
    city claim class client clock code color column comment config contact content
    context count country coupon course credit cursor customer data date day deal delay
    device diff discount document domain draft driver due edge email employee end entry
    error event export factor feature feed field file filter flag folder format frame
    friend group guest hash header height history host hour image index input invoice
    issue item job key label language layer layout length level limit line link list
    load local location lock log mail manager map mark match member message meta method
    metric mode model module month name network node note number offset order owner
    package page panel parent part path payload payment peer period phone photo pixel
    plan player point policy pool port post price product profile project prompt queue
    quota range rate reader record region report request result retry review role room
    route row rule sale sample scale schedule score screen search section seed server
    session setting shape share sheet shift size slot source space stage state status
    step stock store stream student style subject summary table tag task team temp
    template tenant test text theme thread ticket time title token topic total track
    trade user value vendor version video view visit volume vote wallet warning week
    weight widget window word worker year zone""".split()  # noqa: SIM905 - a word list
)
"""Everyday programming words identifiers are made of (256: 8 bits each)."""

VERBS = tuple(
    """add apply build check clean compute convert count create decode delete encode fetch
    filter find format get group load make merge normalize parse print process read
    remove render reset resolve save scan send sort split store sum update validate
    write""".split()  # noqa: SIM905 - a word list
)
NAMES = tuple(
    """Aisha Alex Amara Ana Ben Carlos Chen Chloe Daniel David Elena Emma Fatima Felix
    Grace Hana Hugo Ines Ivan James Jonas Julia Kai Karim Lara Leo Lina Lucas Maya Mei
    Mohammed Nadia Noah Nora Olga Omar Paul Priya Rahul Rosa Sam Sara Sofia Tom Yuki Zoe""".split()  # noqa: SIM905 - a word list
)
PLACES = tuple(
    """Amsterdam Athens Berlin Bogota Boston Cairo Chicago Dublin Hanoi Lagos Lima Lisbon
    London Lyon Madrid Manila Milan Montreal Mumbai Nairobi Osaka Oslo Paris Porto
    Prague Seoul Sydney Toronto Vienna Warsaw Zurich""".split()  # noqa: SIM905 - a word list
)
THINGS = tuple(
    """apples books boxes bricks candles chairs cookies cups eggs flowers lamps notebooks
    oranges pencils plates shirts stamps tickets tiles towels""".split()  # noqa: SIM905 - a word list
)
MONTHS = tuple(
    """January February March April May June July August September October November
    December""".split()  # noqa: SIM905 - a word list
)
TYPES_PY = ("int", "str", "float", "bool", "list[int]", "dict[str, int]", "list[str]", "bytes")


def words(rng: random.Random, lo: int = 2, hi: int = 3) -> list[str]:
    """``lo``…``hi`` words of :data:`WORDS` (at least 16 bits for two)."""
    return [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]


def snake(rng: random.Random, verb: bool = False) -> str:
    parts = words(rng)
    return "_".join([rng.choice(VERBS), *parts] if verb else parts)


def camel(rng: random.Random, verb: bool = False) -> str:
    parts = words(rng)
    head = rng.choice(VERBS) if verb else parts.pop(0)
    return head + "".join(p.capitalize() for p in parts)


def pascal(rng: random.Random) -> str:
    return "".join(p.capitalize() for p in words(rng))


def number(rng: random.Random) -> str:
    """A literal as users write them: small, round, large, a float (≥ 10 bits)."""
    kind = rng.randrange(4)
    if kind == 0:
        return str(rng.randint(2, 4095))
    if kind == 1:
        return str(rng.randint(1, 1023) * 100)
    if kind == 2:
        return f"{rng.randint(1, 9999) / 100:.2f}"
    return str(rng.randint(10_000, 9_999_999))


def sentence(rng: random.Random) -> str:
    """A docstring's or comment's sentence: ``Verb the x y of the z.``"""
    obj = " ".join(words(rng))
    tail = rng.choice(("", f" for each {rng.choice(WORDS)}", f" from the {rng.choice(WORDS)}",
                       f" by {rng.choice(WORDS)}", f" and return the {rng.choice(WORDS)}"))  # fmt: skip
    return f"{rng.choice(VERBS).capitalize()} the {obj}{tail}."


def third(verb: str) -> str:
    """``verb`` as in "it ...s": fetches, processes, sorts."""
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + ("es" if verb.endswith(("ch", "sh", "ss", "x")) else "s")


def py_function(rng: random.Random) -> str:
    """≥ 16 (name) + 16 (an argument) + 10 (a literal) + structure bits."""
    ind = rng.choice(("    ", "  ", "\t"))
    hints = rng.random() < 0.5
    args = [
        snake(rng) if rng.random() < 0.7 else rng.choice(WORDS) for _ in range(rng.randint(1, 3))
    ]
    args[0] = snake(rng)
    sig = ", ".join(f"{a}: {rng.choice(TYPES_PY)}" if hints else a for a in args)
    if rng.random() < 0.3:
        sig += f", {rng.choice(WORDS)}={number(rng)}"
    ret = f" -> {rng.choice(TYPES_PY)}" if hints and rng.random() < 0.7 else ""
    head: list[str] = []
    if rng.random() < 0.5:
        head += [f"import {rng.choice(('os', 'json', 're', 'math', 'csv', 'time', 'logging'))}"]
        if rng.random() < 0.5:
            head += [f"from {snake(rng)} import {pascal(rng)}"]
        head += [""]
    if rng.random() < 0.4:
        head += [f"{'_'.join(words(rng)).upper()} = {number(rng)}", ""]
    if rng.random() < 0.2:
        head += [rng.choice(("@staticmethod", "@lru_cache(maxsize=None)", "@property"))]
    lines = [*head, f"def {snake(rng, verb=rng.random() < 0.7)}({sig}){ret}:"]
    if rng.random() < 0.6:
        q = rng.choice(('"""', "'''"))
        lines.append(f"{ind}{q}{sentence(rng)}{q}")
    body = [
        f"{ind}{rng.choice(WORDS)} = {number(rng)}",
        f"{ind}if {args[0]} is None:\n{ind * 2}return {rng.choice(('None', '[]', '0', '{}'))}",
        f"{ind}for {rng.choice(WORDS)} in {args[-1]}:",
        f"{ind}{snake(rng)} = {{}}",
        f"{ind}# {sentence(rng)}",
    ]
    rng.shuffle(body)
    lines += body[: rng.randint(0, 2)]
    return "\n".join(lines) + "\n" + ind * rng.randint(0, 1) + ("" if rng.random() < 0.5 else ind)


def py_class(rng: random.Random) -> str:
    ind = rng.choice(("    ", "  "))
    name = pascal(rng)
    fields = [snake(rng) for _ in range(rng.randint(2, 4))]
    if rng.random() < 0.5:
        lines = ["from dataclasses import dataclass", "", "", "@dataclass", f"class {name}:"]
        lines += [f"{ind}{f}: {rng.choice(TYPES_PY)}" for f in fields[:-1]]
        lines += [
            f"{ind}{fields[-1]}: {rng.choice(TYPES_PY[:4])} = {number(rng)}",
            "",
            f"{ind}def ",
        ]
        return "\n".join(lines)
    base = rng.choice(("", "(Exception)", f"({pascal(rng)})", "(object)"))
    lines = [f"class {name}{base}:"]
    if rng.random() < 0.5:
        lines.append(f'{ind}"""{sentence(rng)}"""\n')
    lines.append(f"{ind}def __init__(self, {', '.join(fields)}):")
    lines += [f"{ind * 2}self.{f} = {f}" for f in fields[: rng.randint(1, len(fields))]]
    return "\n".join(lines) + "\n" + ind * 2


def py_test(rng: random.Random) -> str:
    fn, module = snake(rng, verb=True), snake(rng)
    lines = [rng.choice(("import pytest\n", "")) + f"from {module} import {fn}", "", ""]
    lines.append(
        f"def test_{fn}_{rng.choice(('works', 'empty', 'returns_' + rng.choice(WORDS)))}():"
    )
    for _ in range(rng.randint(1, 2)):
        lines.append(f"    assert {fn}({number(rng)}) == {number(rng)}")
    return "\n".join(lines) + "\n    "


def js(rng: random.Random) -> str:
    ind = rng.choice(("  ", "    "))
    fn, arg = camel(rng, verb=True), camel(rng)
    items = ", ".join(number(rng) for _ in range(rng.randint(2, 4)))
    kind = rng.randrange(3)
    decl = rng.choice(("const", "let"))
    if kind == 0:
        head = f"{rng.choice(('', 'export ', 'async '))}function {fn}({arg}, {camel(rng)}) {{"
    elif kind == 1:
        head = f"{rng.choice(('', 'export '))}const {fn} = ({arg}) => {{"
    else:
        head = f"{decl} {camel(rng)} = [{items}];\n\nfunction {fn}({arg}) {{"
    top = f"// {sentence(rng)}\n" if rng.random() < 0.5 else ""
    body = rng.choice(
        (
            f"{ind}if (!{arg}) {{\n{ind * 2}return null;\n{ind}}}\n{ind}",
            f"{ind}const {camel(rng)} = ",
            ind,
        )
    )
    return f"{top}{head}\n{body}"


def sql(rng: random.Random) -> str:
    table, cols = (
        snake(rng),
        [snake(rng) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(2, 4))],
    )
    cols[0] = snake(rng)
    kind = rng.randrange(3)
    if kind == 0:
        where = f"{cols[0]} {rng.choice(('>', '<', '=', '>='))} {number(rng)}"
        order = (
            f"\nORDER BY {rng.choice(cols)} {rng.choice(('DESC', 'ASC'))}"
            if rng.random() < 0.5
            else ""
        )
        text = f"SELECT {', '.join(cols)}\nFROM {table}\nWHERE {where}{order}"
        return text + rng.choice(("\nLIMIT ", "\n", " AND ", ";\n\n-- "))
    if kind == 1:
        lines = [f"CREATE TABLE {table} (", "    id INTEGER PRIMARY KEY,"]
        lines += [
            f"    {c} {rng.choice(('TEXT', 'INTEGER', 'REAL', 'VARCHAR(255)', 'TIMESTAMP'))},"
            for c in cols
        ]
        return "\n".join(lines) + "\n    "
    values = ", ".join(number(rng) for _ in cols)
    return f"INSERT INTO {table} ({', '.join(cols)})\nVALUES ({values});\nSELECT "


def typed(rng: random.Random) -> str:
    """A C, Go, Rust or Java function's start."""
    lang = rng.randrange(4)
    a, b, c = snake(rng), snake(rng), snake(rng, verb=True)
    n = number(rng).split(".")[0]
    if lang == 0:
        return f"#include <stdio.h>\n\n#define {a.upper()} {n}\n\n/* {sentence(rng)} */\nint {c}(int {b}) {{\n    "
    if lang == 1:
        return f"package {rng.choice(WORDS)}\n\n// {camel(rng, True)} {sentence(rng).lower()}\nfunc {camel(rng, True)}({camel(rng)} int) (int, error) {{\n\t"
    if lang == 2:
        return f"/// {sentence(rng)}\npub fn {c}({b}: &[u64]) -> u64 {{\n    let {a} = {n};\n    "
    return f"public class {pascal(rng)} {{\n    private static final int {a.upper()} = {n};\n\n    public int {camel(rng, True)}(int {camel(rng)}) {{\n        "


def shell(rng: random.Random) -> str:
    d, f, n = snake(rng), snake(rng), number(rng).split(".")[0]
    lines = ["#!/bin/bash", rng.choice(("set -euo pipefail", "set -e", "")), ""]
    lines += [
        f'{d.upper()}="/var/{rng.choice(WORDS)}/{d}"',
        f"MAX_{rng.choice(WORDS).upper()}={n}",
        "",
    ]
    lines.append(rng.choice((f'for f in "${d.upper()}"/*.{rng.choice(("log", "csv", "json"))}; do',
                             f'if [ ! -d "${d.upper()}" ]; then', f"# {sentence(rng)}")))  # fmt: skip
    return "\n".join(lines) + f"\n    {rng.choice(('', 'echo ', 'cp ', f'{f} '))}"


def config(rng: random.Random) -> str:
    keys = [snake(rng) for _ in range(rng.randint(2, 4))]
    vals = [number(rng) for _ in keys]
    kind = rng.randrange(3)
    if kind == 0:
        inner = ",\n".join(f'  "{k}": {v}' for k, v in zip(keys, vals, strict=True))
        return "{\n" + inner + ',\n  "'
    if kind == 1:
        return (
            f"{snake(rng)}:\n"
            + "".join(f"  {k}: {v}\n" for k, v in zip(keys, vals, strict=True))
            + "  "
        )
    return (
        f"[{snake(rng)}]\n"
        + "".join(f"{k} = {v}\n" for k, v in zip(keys, vals, strict=True))
        + "\n["
    )


def question(rng: random.Random) -> str:
    lang = rng.choice(("Python", "JavaScript", "SQL", "Go", "Rust", "bash", "Java", "C"))
    a, b = " ".join(words(rng)), " ".join(words(rng))
    forms = (
        f"How do I {rng.choice(VERBS)} a {a} in {lang}?",
        f"What is the difference between a {a} and a {b}?",
        f"My {a} function returns {number(rng)} instead of {number(rng)}. Why?",
        f"Can you explain how {a} works in {lang}, with an example?",
        f"Write a {lang} function that {third(rng.choice(VERBS))} the {a} of each {b}.",
        f"Is it better to {rng.choice(VERBS)} the {a} or the {b} first? I have about {rng.randint(100, 99999)} rows.",
    )
    text = rng.choice(forms)
    if rng.random() < 0.3:
        text = rng.choice(("Hi! ", "Quick question: ", "Hey, ", "")) + text
    return text + rng.choice(("", "\n", " Thanks!"))


def email(rng: random.Random) -> str:
    to, sender = rng.choice(NAMES), rng.choice(NAMES)
    day = f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"
    topic = " ".join(words(rng))
    opener = rng.choice((f"Hi {to},", f"Dear {to},", f"Hello {to},", f"{to},"))
    line = rng.choice((
        f"Thanks for sending the {topic} report. Before {day} I would like to",
        f"I am writing about order #{rng.randint(10000, 999999)}, which was due on {day}. It",
        f"Could we move our call about the {topic} to {day} at {rng.randint(8, 17)}:{rng.choice(('00', '15', '30', '45'))}? I",
        f"The {topic} budget for {rng.choice(PLACES)} is now {number(rng)} euros, so",
    ))  # fmt: skip
    tail = rng.choice(("", f"\n\nBest,\n{sender}\n\nP.S. ", ""))
    return f"{opener}\n\n{line}{tail}"


def word_problem(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    n, m, p = rng.randint(3, 999), rng.randint(2, 99), rng.randint(1, 999)
    thing = rng.choice(THINGS)
    text = rng.choice((
        f"{a} has {n} {thing} and gives {m} to {b}. Then {a} buys {p} more. How many {thing} does {a} have now?",
        f"A train leaves {rng.choice(PLACES)} at {rng.randint(5, 22)}:{rng.randint(0, 59):02d} and travels {n} km at {m} km/h. When does it arrive?",
        f"{a} saves {m} dollars a week for {n} weeks and spends {p}. How much is left?",
        f"If {n} {thing} cost {p}.{rng.randint(0, 99):02d} dollars, how much do {m} {thing} cost?",
    ))  # fmt: skip
    return text + rng.choice(("", "\nAnswer:", "\n\nLet's think step by step.", " Explain."))


def listing(rng: random.Random) -> str:
    n = rng.randint(3, 12)
    topic = " ".join(words(rng))
    head = rng.choice((
        f"{n} ideas for a {topic} in {rng.choice(PLACES)}:",
        f"Checklist for the {topic} ({rng.randint(1, 28)} {rng.choice(MONTHS)}):",
        f"Top {n} mistakes people make with {topic} {rng.choice(WORDS)}s:",
        f"Meeting notes, {rng.choice(MONTHS)} {rng.randint(1, 28)}\nAttendees: {', '.join(rng.sample(NAMES, 3))}\nTopic: {topic}",
    ))  # fmt: skip
    return head + rng.choice(("\n1.", "\n-", "\n\n1. ", "\n* "))


FAMILIES: tuple[tuple[Callable[[random.Random], str], int], ...] = (
    (py_function, 6),
    (py_class, 3),
    (py_test, 2),
    (js, 3),
    (sql, 2),
    (typed, 2),
    (shell, 1),
    (config, 1),
    (question, 3),
    (email, 1),
    (word_problem, 1),
    (listing, 1),
)
"""Each family and its weight: code (the model is a code model) more often than prose."""


def fresh_prompt(rng: random.Random) -> str:
    """A new prompt drawn from ``rng`` (a family by weight, then its parts), at most
    :data:`MAX_CHARS` characters."""
    makers = [make for make, _ in FAMILIES]
    make = rng.choices(makers, weights=[weight for _, weight in FAMILIES])[0]
    return make(rng)[:MAX_CHARS]


class FreshTurns(Sequence[str]):
    """Fresh prompts as a pool to draw a fresh probe's earlier chat turns from
    (``core/canary_shape.choose``'s ``pool``): each item read is a new prompt made then
    from ``rng``, so no turn is the public pool's (found 2026-12-06, review36: they were,
    and told a node keeping the list that a fresh chat probe was a probe) and no two turns
    of a probe are alike. Read one at a time (``rng.choice``); a slice is refused."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __len__(self) -> int:
        return 1 << 20

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            raise TypeError("FreshTurns is read one item at a time")
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return fresh_prompt(self.rng)


def parse_fresh_share(raw: str | None, default: float = DEFAULT_FRESH_SHARE) -> float:
    """``LLM_MESH_CANARY_FRESH_SHARE``: a number from 0 to 1; unset or blank: ``default``."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"LLM_MESH_CANARY_FRESH_SHARE must be a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails both
        raise ValueError(f"LLM_MESH_CANARY_FRESH_SHARE must be from 0 to 1, got {raw!r}")
    return value
