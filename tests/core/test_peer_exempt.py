"""Which peers a node does not count against its per-peer cap (``core/peer_exempt.py``).

Found 2026-12-03 (review): the gateway is one peer to a node; several replicas behind one
IPv4 address or in one IPv6 /64 shared the cap and a busy node reset their connections.
"""

from __future__ import annotations

import pytest

from LLM_Mesh.core.peer_exempt import (
    PeerExemption,
    canonical_address,
    parse_trusted_peers,
    registry_hosts,
)
from LLM_Mesh.slow_clients import peer_key


def test_a_registrys_exact_address_is_exempt_not_its_64_nor_its_ipv4_neighbour() -> None:
    rule = PeerExemption(registry_addrs=["198.51.100.7", "2001:db8::10", "not an address"])
    assert rule("198.51.100.7")
    assert rule("::ffff:198.51.100.7")  # the same peer on a dual-stack socket
    assert rule("2001:db8::10")
    assert rule("2001:db8:0:0::10%eth0")
    assert not rule("198.51.100.8")
    # same /64, so the same peer_key as the registry, but not the registry: still counted
    assert peer_key("2001:db8::11") == peer_key("2001:db8::10")
    assert not rule("2001:db8::11")
    assert not rule(None) and not rule("") and not rule("nonsense")


def test_loopback_stays_exempt_and_can_be_counted_when_asked() -> None:
    assert PeerExemption()("127.0.0.1") and PeerExemption()("::1")
    assert not PeerExemption(loopback=False)("127.0.0.2")
    assert not PeerExemption()("203.0.113.9")  # nothing else by default (trusted_peers empty)


def test_re_resolving_replaces_the_registry_addresses() -> None:
    rule = PeerExemption(registry_addrs=["198.51.100.7"])
    assert rule.set_registry_addrs(["198.51.100.9"])
    assert not rule("198.51.100.7") and rule("198.51.100.9")
    assert not rule.set_registry_addrs(["::ffff:198.51.100.9"])  # same address: no change


def test_trusted_peers_are_addresses_or_cidr_blocks() -> None:
    rule = PeerExemption(parse_trusted_peers("203.0.113.0/28, 2001:db8:5::/48,192.0.2.1"))
    assert rule("203.0.113.15") and not rule("203.0.113.16")
    assert rule("2001:db8:5:ffff::1") and not rule("2001:db8:6::1")
    assert rule("192.0.2.1") and rule("::ffff:192.0.2.1") and not rule("192.0.2.2")
    assert parse_trusted_peers(["::ffff:10.0.0.0/104"]) == parse_trusted_peers("10.0.0.0/8")
    assert parse_trusted_peers(None) == parse_trusted_peers(" , ") == ()
    with pytest.raises(ValueError, match=r"trusted_peers: 'gateway\.example'"):
        parse_trusted_peers("10.0.0.0/8,gateway.example")


def test_registry_hosts_come_from_every_url_once() -> None:
    urls = ["https://gw.example:8800", "http://[2001:db8::10]:8800/", "https://GW.example/x", ""]
    assert registry_hosts(urls) == ("gw.example", "2001:db8::10")
    assert canonical_address("[2001:db8::10]") == "2001:db8::10"


def test_an_address_is_read_without_its_whole_zone_and_nothing_else_is_one() -> None:
    assert canonical_address(" [fe80::1%eth0] ") == "fe80::1"
    assert canonical_address("fe80::1%a%b") == "fe80::1"  # everything after the first %
    assert canonical_address("10.0.0.1X") is None
    assert canonical_address("X10.0.0.1") is None


def test_empty_parts_are_skipped_not_the_end_of_the_list() -> None:
    assert parse_trusted_peers(" ,10.0.0.1,,2001:db8::/32") == parse_trusted_peers(
        ["10.0.0.1", "2001:db8::/32"]
    )
    assert len(parse_trusted_peers(["", "10.0.0.1"])) == 1


def test_a_block_written_with_host_bits_is_the_block() -> None:
    rule = PeerExemption(parse_trusted_peers("10.1.2.3/8"))
    assert rule("10.200.0.1") and not rule("11.0.0.1")
    mapped = PeerExemption(parse_trusted_peers("::ffff:10.1.2.3/104"))
    assert mapped("10.200.0.1") and not mapped("11.0.0.1")


def test_the_mapped_block_of_all_ipv4_is_every_ipv4_peer() -> None:
    rule = PeerExemption(parse_trusted_peers("::ffff:0:0/96"), loopback=False)
    assert rule("203.0.113.9") and rule("::ffff:198.51.100.1")
    assert not rule("2001:db8::1")
    assert parse_trusted_peers("::ffff:10.0.0.1/128") == parse_trusted_peers("10.0.0.1")


def test_a_refused_trusted_peer_is_named_word_for_word() -> None:
    with pytest.raises(ValueError) as refused:
        parse_trusted_peers(["10.0.0.0/33"])
    assert (
        str(refused.value) == "trusted_peers: '10.0.0.0/33' is neither an address nor a CIDR block"
    )


def test_registry_hosts_skip_an_unparsable_url_and_go_on() -> None:
    assert registry_hosts(["http://[::1", "https://gw.example"]) == ("gw.example",)
