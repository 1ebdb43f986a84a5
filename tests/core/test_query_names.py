"""``core/query_names.py`` purely: the unknown names of a query, each once in the order given,
and the 400's message word for word (its names quoted, cut, counted; its noun; what the
route accepts). Written against the module's mutants (mut42, 2026-12-07): it had no core
test (its pure test was in ``tests/registry/test_ledger_unknown_params.py``)."""

from __future__ import annotations

from LLM_Mesh.core.query_names import NAME_SHOWN, SHOWN, unknown_names, unknown_query_message

TAIL = (
    " (an unknown one is refused, not ignored: a mistyped filter would otherwise answer the "
    "unfiltered list)"
)


def test_unknown_names_each_once_in_the_order_first_given() -> None:
    assert unknown_names(["b", "a", "c", "b", "c", "d"], ["a"]) == ["b", "c", "d"]
    assert unknown_names(iter(["x", "x"]), iter(["y"])) == ["x"]  # iterables read once
    assert unknown_names(["a", "a"], ["a", "b"]) == []
    assert unknown_names([], []) == []


def test_one_unknown_name_in_the_singular_with_what_the_route_accepts_sorted() -> None:
    msg = unknown_query_message(["acount"], ["limit", "account", "after"], "GET /v1/ledger")
    assert msg == (
        "unknown query parameter 'acount': GET /v1/ledger accepts only account, after, limit" + TAIL
    )


def test_a_route_without_parameters_says_it_takes_none() -> None:
    msg = unknown_query_message(["al", "x"], [], "GET /v1/models")
    assert (
        msg == "unknown query parameters 'al', 'x': GET /v1/models takes no query parameter" + TAIL
    )


def test_at_most_shown_names_are_said_the_rest_counted() -> None:
    said = [f"n{i}" for i in range(SHOWN)]
    quoted = ", ".join(repr(n) for n in said)
    assert unknown_query_message(said, ["a"], "GET /x") == (
        f"unknown query parameters {quoted}: GET /x accepts only a" + TAIL
    )  # exactly SHOWN: nothing counted
    msg = unknown_query_message([*said, "m1"], ["a"], "GET /x")
    assert msg == f"unknown query parameters {quoted} and 1 more: GET /x accepts only a" + TAIL


def test_a_name_is_cut_after_name_shown_characters_and_escaped() -> None:
    exact = "z" * NAME_SHOWN
    assert f"parameter {exact!r}:" in unknown_query_message([exact], [], "GET /y")
    longer = "y" * NAME_SHOWN + "tail"
    msg = unknown_query_message([longer], [], "GET /y")
    assert f"parameter {'y' * NAME_SHOWN + '…'!r}:" in msg and "tail" not in msg
    odd = unknown_query_message(["a'\n\x00"], [], "GET /y")
    assert odd.startswith('unknown query parameter "a\'\\n\\x00": GET /y'), odd
