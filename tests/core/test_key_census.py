"""A registry key new to a store whose registries signed with others: warned unless rotated."""

from __future__ import annotations

from LLM_Mesh.core.key_census import stranger_key


def test_a_key_new_to_a_store_of_other_keys_is_warned() -> None:
    text = stranger_key("NEW=", ["OLD1=", "OLD2="], rotated=False)
    assert text is not None and "NEW=" in text and "the newest OLD2=" in text
    assert "copy the other replicas' registry.key" in text


def test_no_warning_for_a_known_key_a_fresh_store_or_a_rotation() -> None:
    assert stranger_key("K=", ["OLD=", "K="], rotated=False) is None
    assert stranger_key("K=", [], rotated=False) is None
    assert stranger_key("NEW=", ["OLD="], rotated=True) is None


def test_the_warning_names_the_newest_of_the_others_in_full() -> None:
    """(mutation testing, mut31b: the newest is the last listed, the text word for word)"""
    assert stranger_key("k-new", ["k1", "k2", "k3"], rotated=False) == (
        "this registry's key (k-new) is new to this store, whose registries signed with "
        "3 other key(s), the newest k3: replicas of one network share one registry.key "
        "(docs/deploy.md), and nodes that pinned the others' refuse this one's requests. Stop "
        "it and copy the other replicas' registry.key into its LLM_MESH_HOME, unless this is "
        "a registry of its own on a shared database"
    )
