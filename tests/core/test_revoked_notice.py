"""A registry's revocation of a node: the re-check schedule and the one message."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.revoked_notice import (
    FIRST_CHECK_S,
    MAX_CHECK_S,
    RevokedRegistries,
    check_delay,
    is_plain_http_refused,
    is_revoked,
    is_token_refused,
    plain_http_waits,
    revoked_message,
)

A, B = "http://r1.test", "http://r2.test"


def test_the_waits_double_from_a_minute_up_to_fifteen() -> None:
    assert [check_delay(n) for n in range(7)] == [60, 120, 240, 480, 900, 900, 900]
    assert check_delay(10**9) == MAX_CHECK_S  # no overflow however long it lasts
    assert check_delay(-1) == FIRST_CHECK_S


@pytest.mark.parametrize(
    ("status", "answer", "revoked"),
    [
        (403, {"error": {"code": "revoked", "message": "node n is revoked"}}, True),
        (403, {"error": {"code": "forbidden", "reason": "revoked"}}, True),
        (403, {"error": {"code": "node_address_refused"}}, False),
        (401, {"error": {"code": "revoked"}}, False),  # only the 403 is a revocation
        (403, {"error": "revoked"}, False),
        (403, None, False),
        (403, ["revoked"], False),
    ],
)
def test_what_a_revocation_looks_like(status: int, answer: object, revoked: bool) -> None:
    assert is_revoked(status, answer) is revoked


def test_the_schedule_per_registry() -> None:
    book = RevokedRegistries()
    assert book.next_check() is None and book.due(1e9) == []
    assert book.heard(A, "node n is revoked", now=100.0)  # news: log it
    assert not book.heard(A, "node n is revoked", now=130.0)  # known: not again
    assert A in book and B not in book and book.allowed([A, B]) == [B]
    assert book.among([B, A]) == [A]
    assert book.due(159.0) == [] and book.due(160.0) == [A]  # a minute after it was heard
    now = 160.0
    waits = []
    for _ in range(6):  # each re-check that does not register: twice the wait, at most 15 min
        book.checked(A, now)
        entry = book.get(A)
        assert entry is not None
        waits.append(entry.next_check - now)
        now = entry.next_check
    assert waits == [120, 240, 480, 900, 900, 900]
    assert book.heard(B, "operator o is revoked", now=now - 10)
    assert book.due(now) == [A] and book.next_check() == now
    assert book.due(now + 60) == [A, B]  # the earliest first
    gone = book.lifted(A)
    assert gone is not None and gone.since == 100.0 and gone.checks == 6
    assert A not in book and book.allowed([A, B]) == [A] and len(book) == 1
    assert book.lifted(A) is None
    book.checked(A, now)  # a registry not revoked: nothing to schedule
    assert A not in book


def test_the_message_says_who_where_and_what_to_do() -> None:
    said = revoked_message(A, "node-a", "node node-a is revoked", [B])
    assert said.startswith(f"the registry at {A} revoked this node (node-a)")
    assert "routes no requests here" in said and "new identity" in said
    assert "llm-mesh node keys init" in said and f"heartbeats now go to {B} only" in said
    assert "1 min" in said and "15 min" in said and "403" not in said
    alone = revoked_message(A, "node-a", "operator acme is revoked")
    assert "this node's operator (operator acme is revoked)" in alone
    assert "new operator token" in alone and "registered with no registry" in alone


def test_an_operators_revocation_heard_after_the_nodes_is_news_again() -> None:
    """Found 2026-12-04 (review): ``operators revoke`` revokes each of its nodes' keys, so a
    running node's heartbeat hears "node n is revoked" (the ERROR: a new identity) and the
    re-check's registration "operator o is revoked" (a new operator token too): that is news,
    the schedule kept; the same again, or back to the node's words, is not."""
    book = RevokedRegistries()
    assert book.heard(A, "node n is revoked", now=100.0)
    book.checked(A, 160.0)
    assert book.heard(A, "operator o is revoked", now=160.0)  # news: log it
    entry = book.get(A)
    assert entry is not None and (entry.said, entry.since, entry.checks) == (
        "operator o is revoked", 100.0, 1)  # fmt: skip
    assert entry.next_check == 160.0 + 120
    assert not book.heard(A, "operator o is revoked", now=280.0)
    assert not book.heard(A, "node n is revoked", now=280.0)
    assert book.heard(A, "operator o is revoked", now=400.0)  # (a flip each re-check at most)


def test_plain_http_waits_count_a_registration_and_leave_a_recheck_alone() -> None:
    assert plain_http_waits(0, plain=True, recheck=False) == (1, 60.0)
    assert plain_http_waits(4, plain=True, recheck=False) == (5, 900.0)
    assert plain_http_waits(4, plain=False, recheck=False) == (0, None)  # other words
    assert plain_http_waits(3, plain=True, recheck=True) == (3, None)  # its own schedule
    assert plain_http_waits(3, plain=False, recheck=True) == (3, None)


@pytest.mark.parametrize(
    ("status", "answer", "refused"),
    [
        (403, {"error": {"code": "forbidden", "reason": "plain_http_remote"}}, True),
        (403, {"error": {"reason": "plain_http_remote"}}, True),
        (403, {"error": {"code": "plain_http_remote"}}, False),  # the reason says it
        (403, {"error": {"reason": "revoked"}}, False),
        (403, {"error": {}}, False),
        (400, {"error": {"reason": "plain_http_remote"}}, False),  # only the 403
        (404, {"error": {"reason": "plain_http_remote"}}, False),
        (403, {"error": "plain_http_remote"}, False),
        (403, {"reason": "plain_http_remote"}, False),  # inside the error only
        (403, None, False),
        (403, ["plain_http_remote"], False),
    ],
)
def test_what_a_plain_http_refusal_looks_like(status: int, answer: object, refused: bool) -> None:
    assert is_plain_http_refused(status, answer) is refused


def test_the_nodes_revocation_message_word_for_word() -> None:
    """Since 2026-12-07 (newuser45) "ask that registry's admin": "ask that registry's
    operator", to a node's operator (told of "this node's operator" just before), named
    someone else's role by its own word."""
    assert revoked_message(A, "node-a", "node node-a is revoked", [B, "http://r3.test"]) == (
        f"the registry at {A} revoked this node (node-a): it routes no requests here, "
        "credits nothing and refuses this node's messages; ask that registry's admin (who "
        "revoked it: `llm-mesh registry nodes revoke`); a revoked key stays revoked, so to join again the node needs a new identity "
        "(`llm-mesh node keys init` in a new home). Heartbeats to it stopped (heartbeats now "
        f"go to {B}, http://r3.test only); the node asks it again once in 1 min, then at "
        "doubling waits up to 15 min"
    )


def test_the_operators_revocation_message_word_for_word() -> None:
    assert revoked_message(A, "node-a", "operator acme is revoked", iter(())) == (
        f"the registry at {A} revoked this node's operator (operator acme is revoked): it "
        "routes no requests here, credits nothing and refuses this node's messages; ask that "
        "registry's admin (who revoked it: `llm-mesh registry operators revoke`); to join again the node needs a new operator token from them "
        "(operator_token in node.toml), and a new identity (`llm-mesh node keys init` in a "
        "new home) only if this key registered under the revoked operator before (revoked "
        "with it; a key stays with the operator that first registered it). Heartbeats to it "
        "stopped (this node is now registered with no registry); the node asks it again once "
        "in 1 min, then at doubling waits up to 15 min"
    )


def test_a_key_the_revoked_operator_never_registered_is_not_told_to_start_over() -> None:
    """Found 2026-12-07 (newuser41): a new node (its key made that minute) started with the
    token of an operator the admin had revoked was told it "needs ... a new identity
    (`llm-mesh node keys init` in a new home)"; the same key then registered at once under
    another operator's token. Only a key that registered under the revoked operator was
    revoked with it: the message says so, and a new token alone is the fix otherwise."""
    said = revoked_message(A, "node-a", "operator acme is revoked")
    assert "needs a new operator token" in said
    assert "(operator_token in node.toml) and a new identity" not in said, said
    assert "only if this key registered under the revoked operator before" in said


def test_only_a_401_invalid_credential_is_a_token_refused_for_good() -> None:
    """The node stops (exit ``TOKEN_REFUSED_EXIT``) on this answer alone; any other keeps
    it retrying (mut34: no core test)."""
    refused = {"error": {"code": "invalid_credential", "message": "unknown operator token"}}
    assert is_token_refused(401, refused)
    assert not is_token_refused(403, refused)  # another status: not this refusal
    assert not is_token_refused(500, refused)
    for other in (
        {"error": {"code": "rate_limited"}},
        {"error": "invalid_credential"},  # no error object
        {"code": "invalid_credential"},  # not inside "error"
        {"error": {"type": "invalid_credential"}},
        "invalid_credential",
        None,
    ):
        assert not is_token_refused(401, other)
