"""``BeatMac``: beat tokens bound to the node id, the expiry and the registry key."""

from __future__ import annotations

import math

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import decode, encode
from LLM_Mesh.core.beat_mac import (
    PREVIOUS_KEY_TOKENS_S,
    TOKEN_CHARS,
    BeatMac,
    previous_tokens_until,
)
from LLM_Mesh.core.previous_window import PREVIOUS_KEY_TOKENS_TOP_S, check_previous_window
from LLM_Mesh.node.beat_token import _FORM

NOW = 1_800_000_000.0


def test_a_token_holds_for_its_node_until_its_expiry() -> None:
    mac = BeatMac.random()
    token = mac.make("node-a", NOW + 60)
    assert len(token) == TOKEN_CHARS and _FORM.fullmatch(token)  # a node keeps and sends it
    assert mac.holds("node-a", token, NOW) and mac.holds("node-a", token, NOW + 59.9)
    assert not mac.holds("node-a", token, NOW + 60)  # expired
    assert not mac.holds("node-b", token, NOW)  # another node's
    assert not mac.holds("node-a", None, NOW) and not mac.holds("node-a", "", NOW)


def test_a_token_holds_only_under_its_registry_key() -> None:
    key = Ed25519PrivateKey.generate()
    token = BeatMac.of_registry_key(key).make("node-a", NOW + 60)
    assert BeatMac.of_registry_key(key).holds("node-a", token, NOW)  # another replica
    assert not BeatMac.of_registry_key(Ed25519PrivateKey.generate()).holds("node-a", token, NOW)
    assert not BeatMac.random().holds("node-a", token, NOW)


def test_a_changed_token_does_not_hold() -> None:
    mac = BeatMac.random()
    raw = decode(mac.make("node-a", NOW + 60))
    assert raw is not None
    later = raw[:1] + (int(NOW) + 10**6).to_bytes(5, "big") + raw[6:]  # a later expiry
    version = bytes([2]) + raw[1:]
    cut = raw[:-1]
    for changed in (later, version, cut, raw + b"\0"):
        assert not mac.holds("node-a", encode(changed), NOW)
    for text in ("x" * TOKEN_CHARS, "!" * TOKEN_CHARS, "y" * 5000, encode(raw) + "="):
        assert not mac.holds("node-a", text, NOW)


def test_the_secret_is_long_enough() -> None:
    with pytest.raises(ValueError):
        BeatMac(b"short")


def test_a_rotated_key_takes_the_previous_keys_tokens_and_makes_its_own() -> None:
    """A rotation (beatrot40): the previous key's tokens are taken, for their node and
    until their expiry only; tokens are made under the new key, which the old key's
    replicas do not take."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    behind, rotated = BeatMac.of_registry_key(old), BeatMac.of_registry_key(new, old, NOW + 900)
    token = behind.make("node-a", NOW + 60)
    assert rotated.holds("node-a", token, NOW)
    assert not rotated.holds("node-b", token, NOW) and not rotated.holds("node-a", token, NOW + 60)
    made = rotated.make("node-a", NOW + 60)
    assert BeatMac.of_registry_key(new).holds("node-a", made, NOW)
    assert not behind.holds("node-a", made, NOW)  # it cannot know the new key
    stranger = BeatMac.of_registry_key(Ed25519PrivateKey.generate()).make("node-a", NOW + 60)
    assert not rotated.holds("node-a", stranger, NOW)
    assert not BeatMac.of_registry_key(new).holds("node-a", token, NOW)  # previous removed


def test_the_previous_keys_tokens_are_taken_until_its_window_ends() -> None:
    """rot41: a leaked previous key's tokens are not taken for as long as the file stays."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    until = previous_tokens_until(NOW, NOW)
    assert until == NOW + PREVIOUS_KEY_TOKENS_S
    rotated = BeatMac.of_registry_key(new, old, until)
    token = BeatMac.of_registry_key(old).make("node-a", until + 60)
    assert rotated.holds("node-a", token, until - 1)
    assert not rotated.holds("node-a", token, until)  # over: as any other key's
    own = rotated.make("node-a", until + 60)
    assert rotated.holds("node-a", own, until)  # the current key's: unchanged
    # a "since" ahead of the clock (a wrong clock at a write) extends nothing
    assert previous_tokens_until(NOW + 10**6, NOW) == until
    with pytest.raises(ValueError, match="previous_until"):
        BeatMac.of_registry_key(new, old)


def test_a_staged_key_s_tokens_are_taken_and_none_made() -> None:
    """rot41: a replica still on the old key given ``registry.key.next`` takes the switched
    replicas' tokens; it makes its own under its current key; an expired one holds under
    none."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    behind = BeatMac.of_registry_key(old, staged=new)
    switched = BeatMac.of_registry_key(new)
    token = switched.make("node-a", NOW + 60)
    assert behind.holds("node-a", token, NOW) and not behind.holds("node-b", token, NOW)
    assert not behind.holds("node-a", token, NOW + 60)
    made = behind.make("node-a", NOW + 60)
    assert BeatMac.of_registry_key(old).holds("node-a", made, NOW)
    assert not switched.holds("node-a", made, NOW)  # made under the current key, not staged
    third = BeatMac.of_registry_key(Ed25519PrivateKey.generate()).make("node-a", NOW + 60)
    assert not behind.holds("node-a", third, NOW)


def test_a_since_not_kept_opens_no_window_and_the_window_is_bounded() -> None:
    """rot42: ``since`` None (a home that cannot keep it) takes no previous-key token; the
    window is the setting's, more than 0 and at most a day."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    until = previous_tokens_until(None, NOW)
    assert until == NOW
    token = BeatMac.of_registry_key(old).make("node-a", NOW + 60)
    assert not BeatMac.of_registry_key(new, old, until).holds("node-a", token, NOW)
    assert previous_tokens_until(NOW - 30, NOW, 60.0) == NOW + 30
    assert previous_tokens_until(NOW, NOW, PREVIOUS_KEY_TOKENS_TOP_S) == NOW + 86400
    for bad in (0.0, -1.0, PREVIOUS_KEY_TOKENS_TOP_S + 1, math.inf, math.nan):
        with pytest.raises(ValueError, match="previous_key_window_s must be"):
            previous_tokens_until(NOW, NOW, bad)
    assert check_previous_window(60) == 60.0
