"""``--trusted-proxies``: whose ``X-Forwarded-For`` a replica believes (attack35b)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.trusted_proxies import (
    LOOPBACK_PROXIES,
    ignored_environment,
    parse_trusted_proxies,
    uvicorn_names,
)


@pytest.mark.parametrize("text", [None, "", " , "])
def test_nothing_named_is_loopback_only(text: str | None) -> None:
    assert parse_trusted_proxies(text) == LOOPBACK_PROXIES == ("127.0.0.1", "::1")


def test_addresses_and_networks_after_loopback_each_once() -> None:
    got = parse_trusted_proxies(" 10.0.0.5 ,10.1.0.0/16, 2001:db8::1, 10.0.0.5, 127.0.0.1")
    assert got == ("127.0.0.1", "::1", "10.0.0.5", "10.1.0.0/16", "2001:db8::1")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("*", "every client could then name any address"),
        ("10.0.0.5,*", "every client could then name any address"),
        ("0.0.0.0/0", "is every address"),
        ("::/0", "is every address"),
        ("lb.example", "not an IP address or network"),
        ("10.0.0.5/24", "host bits set"),  # uvicorn: a literal that never matches, silently
    ],
)
def test_anyone_or_what_uvicorn_would_take_for_a_literal_is_refused(text: str, said: str) -> None:
    with pytest.raises(ValueError, match="--trusted-proxies") as exc:
        parse_trusted_proxies(text)
    assert said in str(exc.value) and "\n" not in str(exc.value)


def test_the_environments_variable_is_said_to_be_ignored() -> None:
    assert ignored_environment(None, LOOPBACK_PROXIES) is None
    assert ignored_environment(" ", LOOPBACK_PROXIES) is None
    said = ignored_environment("*", LOOPBACK_PROXIES)
    assert said is not None
    assert said.startswith("$FORWARDED_ALLOW_IPS='*' is ignored (* would let any client")
    assert "127.0.0.1, ::1 only" in said and "--trusted-proxies" in said
    said = ignored_environment("10.0.0.5", LOOPBACK_PROXIES)
    assert said is not None and "would let" not in said


def test_uvicorn_gets_each_ipv4_name_as_a_dual_stack_socket_shows_it_too() -> None:
    """review35c: ``--workers N --host ::`` shows an IPv4 peer as ``::ffff:a.b.c.d``."""
    import ipaddress

    got = uvicorn_names(parse_trusted_proxies("10.0.0.5, 10.9.0.0/16, 2001:db8::/32"))
    assert got[:5] == ["127.0.0.1", "::1", "10.0.0.5", "10.9.0.0/16", "2001:db8::/32"]
    mapped = {ipaddress.ip_network(n) for n in got[5:]}
    assert mapped == {ipaddress.ip_network(n) for n in
                      ("::ffff:127.0.0.1/128", "::ffff:10.0.0.5/128", "::ffff:10.9.0.0/112")}  # fmt: skip
    assert uvicorn_names(("::1",)) == ["::1"]


def test_the_warning_word_for_word() -> None:
    """What an operator reads at start, with and without a ``*`` in the variable."""
    trusted = parse_trusted_proxies("10.0.0.5")
    assert ignored_environment(" 10.0.0.9 ", trusted) == (
        "$FORWARDED_ALLOW_IPS='10.0.0.9' is ignored: X-Forwarded-For is believed from "
        "127.0.0.1, ::1, 10.0.0.5 only; name a balancer on another machine with "
        "--trusted-proxies or LLM_MESH_TRUSTED_PROXIES"
    )
    assert ignored_environment("10.0.0.9,*", LOOPBACK_PROXIES) == (
        "$FORWARDED_ALLOW_IPS='10.0.0.9,*' is ignored (* would let any client name any "
        "address): X-Forwarded-For is believed from 127.0.0.1, ::1 only; name a balancer on "
        "another machine with --trusted-proxies or LLM_MESH_TRUSTED_PROXIES"
    )


def test_uvicorn_gets_an_address_as_an_address_and_a_network_as_a_network() -> None:
    """The names as uvicorn's own parser takes them: an address (no ``/``) a host it looks
    up, a network one it tests membership of; a dual-stack peer in either is believed."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    got = uvicorn_names(parse_trusted_proxies("10.0.0.5, 10.9.0.0/16"))
    assert got == ["127.0.0.1", "::1", "10.0.0.5", "10.9.0.0/16",
                   "::ffff:7f00:1", "::ffff:a00:5", "::ffff:a09:0/112"]  # fmt: skip
    hosts = _TrustedHosts(got)
    for peer in ("::ffff:10.0.0.5", "::ffff:10.9.200.7", "::ffff:127.0.0.1", "10.9.0.1"):
        assert peer in hosts, peer
    for peer in ("::ffff:10.0.0.6", "::ffff:10.10.0.1", "10.0.0.6"):
        assert peer not in hosts, peer


def test_an_empty_part_is_skipped_not_the_end_of_the_list() -> None:
    """``10.0.0.5,,10.0.0.6`` or a trailing comma (a list built by a script): every address
    after the empty part is still believed."""
    assert parse_trusted_proxies("10.0.0.5,, 10.0.0.6") == (
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "10.0.0.6",
    )
    assert parse_trusted_proxies(" ,10.1.0.0/16,") == ("127.0.0.1", "::1", "10.1.0.0/16")
