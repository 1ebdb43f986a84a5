"""``BeatTokens``: tokens any replica of the registry takes, and who sends them back."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.beat_mac import BeatMac
from LLM_Mesh.registry.beat_tokens import TOKEN_LIFETIME_HEARTBEATS, BeatTokens
from tests.registry.node_auth_mesh import Wall


def test_tokens_hold_per_node_until_they_expire_and_the_table_forgets() -> None:
    wall = Wall()
    tokens = BeatTokens()
    tokens.use(BeatMac.random(), wall, heartbeat_expiry_s=30.0)
    assert tokens.lifetime_s == TOKEN_LIFETIME_HEARTBEATS * 30.0
    first, second = tokens.issue("a"), tokens.issue("b")
    assert len(tokens) == 0 and not tokens.sends("a")  # nothing said yet
    assert not tokens.matches("a", second) and not tokens.matches("b", first)
    assert not tokens.matches("a", None) and not tokens.matches("a", "")
    assert len(tokens) == 0
    assert tokens.matches("a", first) and tokens.sends("a") and len(tokens) == 1
    wall.now += tokens.lifetime_s
    assert not tokens.matches("b", second)  # expired
    tokens.issue("a", sends=False)  # registered again, saying nothing: an older node
    assert not tokens.sends("a")
    tokens.issue("a", sends=True)  # its registration says it sends them
    tokens.issue("a")
    assert tokens.sends("a")
    tokens.forget("a")
    assert len(tokens) == 0 and not tokens.sends("a")


def test_every_process_with_the_registry_key_takes_the_others_tokens() -> None:
    wall, key = Wall(), Ed25519PrivateKey.generate()
    one, two, other, unkeyed = BeatTokens(), BeatTokens(), BeatTokens(), BeatTokens(wall_clock=wall)
    one.use(BeatMac.of_registry_key(key), wall, 30.0)
    two.use(BeatMac.of_registry_key(key), wall, 30.0)
    other.use(BeatMac.of_registry_key(Ed25519PrivateKey.generate()), wall, 30.0)
    token = one.issue("a")
    assert two.matches("a", token)
    assert not other.matches("a", token) and not unkeyed.matches("a", token)
    # before the key is known a process's tokens are its own
    assert unkeyed.matches("a", unkeyed.issue("a")) and not one.matches("a", unkeyed.issue("a"))
