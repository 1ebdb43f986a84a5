"""No SSRF, the pure part: node URL parsing and which addresses are global."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from LLM_Mesh.core.netguard import (
    NodeUrlError,
    address_refusal,
    addresses_refusal,
    inet_aton,
    parse_address,
    parse_node_url,
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8801", "loopback"),
        ("http://127.8.9.10", "loopback"),
        ("http://[::1]:8801", "loopback"),
        ("http://0.0.0.0:8801", "unspecified"),
        ("http://[::]:8801", "unspecified"),
        ("http://169.254.169.254/latest", "link_local"),  # cloud metadata
        ("http://[fe80::1]", "link_local"),
        ("http://10.0.0.1", "private"),
        ("http://10.255.255.255", "private"),
        ("http://172.16.0.1", "private"),
        ("http://172.31.255.254", "private"),
        ("http://192.168.0.1", "private"),
        ("http://192.168.255.255", "private"),
        ("http://[fc00::1]", "private"),
        ("http://[fd12:3456::1]", "private"),
        ("http://100.64.0.1", "shared"),
        ("http://224.0.0.1", "multicast"),
        ("http://239.1.2.3", "multicast"),
        ("http://[ff02::1]", "multicast"),
        ("http://240.0.0.1", "private"),  # reserved; ipaddress counts it private
        ("http://255.255.255.255", "private"),
        ("http://198.18.0.1", "private"),  # benchmarking
        ("http://192.0.2.1", "private"),  # documentation
        ("http://[fec0::1]", "site_local"),
        # IPv4 inside IPv6
        ("http://[::ffff:127.0.0.1]", "loopback (IPv4-mapped)"),
        ("http://[::ffff:7f00:1]", "loopback (IPv4-mapped)"),
        ("http://[::ffff:10.0.0.1]", "private (IPv4-mapped)"),
        ("http://[::ffff:169.254.169.254]", "link_local (IPv4-mapped)"),
        ("http://[::127.0.0.1]", "loopback (IPv4-compatible)"),
        ("http://[::ffff:0:a00:1]", "private (IPv4-translated)"),
        ("http://[2002:7f00:1::]", "loopback (6to4)"),
        ("http://[2002:c0a8:101::1]", "private (6to4)"),
        ("http://[64:ff9b::7f00:1]", "loopback (NAT64)"),
        ("http://[64:ff9b::a9fe:a9fe]", "link_local (NAT64)"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]", "loopback (Teredo)"),
        # other spellings of 127.0.0.1, as inet_aton (and getaddrinfo) read them
        ("http://2130706433", "loopback"),
        ("http://0x7f000001", "loopback"),
        ("http://0X7F000001:8801", "loopback"),
        ("http://017700000001", "loopback"),
        ("http://127.1", "loopback"),
        ("http://127.0.1", "loopback"),
        ("http://0177.0.0.1", "loopback"),
        ("http://0x7f.0.0.1", "loopback"),
        ("http://0x7f.1", "loopback"),
        ("http://127.000.000.001", "loopback"),
        ("http://127.0.0.1.", "loopback"),
        ("http://2130706433.", "loopback"),  # held 2026-12-05 (attack32b)
        ("http://0x7f.0.0.1.", "loopback"),
        ("http://0", "unspecified"),
        ("http://167772161", "private"),  # 10.0.0.1
        ("http://0xa9fea9fe", "link_local"),  # 169.254.169.254
        ("http://0251.0376.0251.0376", "link_local"),
    ],
)
def test_non_global_addresses_are_refused(url: str, reason: str) -> None:
    node = parse_node_url(url)
    assert node.ip is not None
    assert address_refusal(node.ip) == reason


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "0x7f.1", "017700000001", "127.0.1"],
)
def test_spellings_read_as_getaddrinfo_reads_them(host: str) -> None:
    """The guard reads each numeric spelling as the system resolver does on this machine."""
    answer = {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}
    assert answer == {str(inet_aton(host))}
    assert parse_node_url(f"http://{host}:1").ip == IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8",
        "https://1.1.1.1:8443/prefix",
        "http://[2606:4700:4700::1111]:8801",
        "http://[::ffff:8.8.8.8]",  # mapped global: reaches exactly 8.8.8.8
        "http://[64:ff9b::808:808]",  # NAT64 of 8.8.8.8
        "http://[2002:808:808::1]",  # 6to4 of 8.8.8.8
        "http://0x08080808",  # a global address spelled oddly (refused later as a spelling)
    ],
)
def test_global_addresses_pass(url: str) -> None:
    node = parse_node_url(url)
    assert node.ip is not None
    assert address_refusal(node.ip) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://node.example", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://node.example:70", "scheme"),
        ("HTTP://node.example", "scheme"),
        ("node.example:8801", "scheme"),
        ("http://user:secret@node.example", "userinfo"),
        ("http://user@node.example:8801/", "userinfo"),
        ("http://node.example@127.0.0.1", "userinfo"),
        ("http://[fe80::1%25eth0]:8801", "zone_id"),
        ("http://[fe80::1%eth0]:8801", "zone_id"),
        ("http://node.example\\@127.0.0.1", "userinfo"),  # parsers disagree on its host
        ("http://node.example:8801/?x=1", "malformed"),
        ("http://node.example#frag", "malformed"),
        ("http://node .example", "malformed"),
        ("http://", "malformed"),
        ("http://node.example:0", "malformed"),
        ("http://node.example:65536", "malformed"),
        ("http://node.example:", "malformed"),
        ("http://node..example", "malformed"),
        ("http://bücher.example", "malformed"),
        ("http://[127.0.0.1]", "malformed"),
        ("http://1.2.3.4.5", "malformed"),
        ("http://256.1.1.1", "malformed"),
        ("http://4294967296", "malformed"),
        ("http://08.0.0.1", "malformed"),
        ("http://node.123", "malformed"),
        # held 2026-12-05 (attack32b): what IDNA (NFKC) makes 127.0.0.1 / localhost in the
        # libraries that encode hosts so (socket, yarl): fullwidth digits, ideographic
        # full stops, enclosed letters
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11", "malformed"),
        ("http://127\u30020\u30020\u30021", "malformed"),
        ("http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3", "malformed"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(NodeUrlError) as exc:
        parse_node_url(url)
    assert exc.value.reason == reason


def test_names_parse_without_an_address() -> None:
    node = parse_node_url("https://Node-1.Example.org:8443/mesh")
    assert node.ip is None
    assert node.host == "node-1.example.org"
    assert node.port == 8443
    assert node.prefix == "https://Node-1.Example.org:8443"
    assert node.origin == "https://node-1.example.org:8443"
    assert parse_node_url("http://node_1").port == 80


def test_ipv6_origin_keeps_brackets() -> None:
    node = parse_node_url("http://[2606:4700::1]:8801")
    assert node.ip == IPv6Address("2606:4700::1")
    assert node.origin == "http://[2606:4700::1]:8801"


def test_every_resolved_address_must_be_global() -> None:
    public, private = ip_address("8.8.8.8"), ip_address("10.0.0.7")
    assert addresses_refusal([public]) is None
    assert addresses_refusal([public, private]) == (private, "private")
    assert addresses_refusal([ip_address("fe80::1%eth0")]) == (
        ip_address("fe80::1%eth0"),
        "zone_id",
    )


@pytest.mark.parametrize(
    ("url", "reason", "message"),
    [
        ("ftp://node.example", "scheme", "url: the scheme must be http or https (lower case)"),
        ("http://u@node.example", "userinfo",
         "url: user names and passwords are not allowed in a node URL"),
        ("http://[fe80::1%eth0]", "zone_id", "url: IPv6 zone ids are not allowed in a node URL"),
        ("http://[::1]/a b", "malformed",  # whitespace after a bracketed host: not a zone id
         "url: whitespace, '\\', '%', '?' and '#' are not allowed in a node URL"),
        ("http://[::1", "malformed", "url: not an http(s)://host[:port][/path] URL"),
        ("http://x/<", "malformed", "url: the path has characters a node URL may not have"),
        ("http://x:99999", "malformed", "url: the port must be 1-65535"),
        ("http://[zz]", "malformed", "url: not an IPv6 address in brackets"),
        ("http://a..b", "malformed", "url: the host is empty or has an empty label"),
        ("http://1.2.3.4.5", "malformed", "url: '1.2.3.4.5' is neither a host name nor an IPv4 address"),
        ("http://no_de!.x", "malformed",
         "url: a host name has letters, digits, '-' and '_' only (IDNs in their xn-- form)"),
    ],
)  # fmt: skip
def test_each_refused_url_says_what_is_wrong_in_words(url: str, reason: str, message: str) -> None:
    """The message is what an operator registering the node sees."""
    with pytest.raises(NodeUrlError) as exc:
        parse_node_url(url)
    assert (exc.value.reason, str(exc.value)) == (reason, message)


def test_the_longest_host_name_allowed_is_253_characters() -> None:
    labels = ["a" * 63, "b" * 63, "c" * 63]
    assert parse_node_url("http://" + ".".join([*labels, "d" * 61])).host.endswith("d" * 61)
    with pytest.raises(NodeUrlError):
        parse_node_url("http://" + ".".join([*labels, "d" * 62]))


def test_the_highest_port_is_65535() -> None:
    assert parse_node_url("http://node.example:65535").port == 65535


def test_a_path_may_hold_at_signs_and_scheme_like_text() -> None:
    """Only the authority is checked for user info; the scheme is the first ``://``."""
    for url in ("http://node.example/a@b/c", "http://node.example/a://b/c"):
        node = parse_node_url(url)
        assert (node.scheme, node.host, node.prefix) == (
            "http",
            "node.example",
            "http://node.example",
        )


def test_an_address_literal_is_parsed_into_every_field() -> None:
    node = parse_node_url("https://8.8.8.8:81/x")
    assert (node.scheme, node.host, node.port, node.ip, node.prefix) == (
        "https", "8.8.8.8", 81, IPv4Address("8.8.8.8"), "https://8.8.8.8:81",
    )  # fmt: skip
    v6 = parse_node_url("http://[2606:4700::ABCD]/x")
    assert (v6.host, v6.port, v6.prefix) == ("2606:4700::abcd", 80, "http://[2606:4700::ABCD]")


def test_a_label_starting_0x_that_is_not_hex_is_a_host_name() -> None:
    assert parse_node_url("http://a.0xg1").ip is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0X7F000001", "127.0.0.1"),
        ("0XA9.0XFE.1.2", "169.254.1.2"),
        ("0xAbCdEf12", "171.205.239.18"),
        ("1.2.65535", "1.2.255.255"),
        ("1.2.65536", None),  # the last part is at most 16 bits after two others
        ("1.2.3.4.5", None),
        ("1.2.3.4.0", None),  # five parts, whatever the fifth
        ("1X", None),  # a letter X in a decimal, octal or hex part
        ("01X", None),
        ("0x1X", None),
        ("1..2", None),
        ("1.0xg", None),
        ("019", None),  # 9 is not an octal digit
        ("1a", None),
    ],
)
def test_inet_aton_reads_as_the_c_library_does(host: str, address: str | None) -> None:
    try:
        system: str | None = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        system = None
    assert system == address  # the expectation is the C library's
    assert inet_aton(host) == (None if address is None else IPv4Address(address))


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("::2", "private (IPv4-compatible)"),  # 0.0.0.2 in the deprecated ::/96 form
        ("::8.8.8.8", "not_global (IPv4-compatible)"),  # deprecated: never routed
        ("::ffff:0:808:808", "not_global (IPv4-translated)"),
        ("4000::1", "reserved"),
    ],
)
def test_deprecated_and_reserved_ipv6_forms_are_refused(addr: str, reason: str) -> None:
    assert address_refusal(ip_address(addr)) == reason  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link_local"),  # AWS, GCP, Azure, OpenStack
        ("fd00:ec2::254", "private"),  # AWS's IPv6 metadata endpoint
        ("100.100.100.200", "shared"),  # Alibaba Cloud's metadata
        ("169.254.170.2", "link_local"),  # AWS ECS task credentials
        ("::ffff:a9fe:a9fe", "link_local"),  # 169.254.169.254, IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "link_local"),  # the same through NAT64
    ],
)
def test_cloud_metadata_addresses_are_refused(address: str, reason: str) -> None:
    refusal = address_refusal(parse_address(address))
    assert refusal is not None and refusal.startswith(reason)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", None),
        ("127.8.9.10", None),  # all of 127.0.0.0/8 is this machine
        ("::1", None),
        ("10.0.0.5", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "link_local"),  # cloud metadata
        ("0.0.0.0", "unspecified"),  # reaches loopback on Linux, but is not a loopback address
        ("::ffff:127.0.0.1", "loopback (IPv4-mapped)"),
        ("2002:7f00:1::", "loopback (6to4)"),  # leaves the machine for a 6to4 relay
        ("64:ff9b::7f00:1", "loopback (NAT64)"),
        ("fe80::1", "link_local"),
        ("100.64.0.1", "shared"),
    ],
)
def test_allowing_loopback_lets_127_8_and_1_through_and_nothing_else(
    address: str, refused: str | None
) -> None:
    """``up --allow-local-nodes``: the guard's one allow rule, matched whole."""
    addr = ip_address(address)
    assert addresses_refusal([addr], allow=("loopback",)) == (
        None if refused is None else (addr, refused)
    )
    assert addresses_refusal([addr]) is not None  # without the rule: all refused
    mixed = [ip_address("127.0.0.1"), addr]  # one loopback answer does not carry another
    assert addresses_refusal(mixed, allow=("loopback",)) == (
        None if refused is None else (addr, refused)
    )


def test_an_empty_hex_part_reads_as_zero_and_never_raises() -> None:
    """``0x`` alone: the C library refuses it (the resolver then looks the host up as a
    name); the guard reads it as 0, so a host spelled with one is refused as an address
    (the safe side: recorded in docs/testing.md), never a ``ValueError`` of ``int``."""
    assert inet_aton("0x") == IPv4Address("0.0.0.0")
    assert inet_aton("0x.0.0.1") == IPv4Address("0.0.0.1")
    assert parse_node_url("http://0x.0.0.1").ip == IPv4Address("0.0.0.1")
