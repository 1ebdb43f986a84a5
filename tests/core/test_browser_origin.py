"""Whether a loopback request is the machine's own (core/browser_origin.py): DNS
rebinding and CSRF against the loopback-only endpoints of a node and a registry."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.browser_origin import (
    FOREIGN_PAGE,
    is_loopback_host,
    loopback_refusal,
    parse_local_names,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:8801", True), ("127.0.0.1", True), ("127.9.9.9:1", True), ("localhost", True),
     ("LOCALHOST:8801", True), ("localhost.", True), ("node.localhost:8801", False),
     ("[::1]:8801", True), ("[::1]", True), ("[::ffff:127.0.0.1]:80", True),
     ("evil.example:8801", False), ("localhost.evil.example", False), ("10.0.0.1:8801", False),
     ("[::2]:8801", False), ("[::1", False), ("[::1]x", False), ("[::1]:x", False),
     ("::1", False), ("", False), (None, False), (":8801", False), ("localhost:", False),
     ("127.0.0.1:²", False), ("mybox:8801", False), ("0.0.0.0:8801", False),
     ("testserver", False), ("127.1", False), ("2130706433", False),
     ("[::1]:1", True), ("[::1]:²", False), ("[::1]:x1", False), ("[::1]]", False),
     ("::1:8801", False), ("0:0:0:0:0:0:0:1:8801", False)],
)  # fmt: skip
def test_loopback_host_header(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_an_own_name_is_the_machines_only_when_configured() -> None:
    own = parse_local_names(" MyBox. , mybox.lan,")
    assert own == ("mybox", "mybox.lan")
    assert is_loopback_host("mybox:8801", own) and is_loopback_host("MYBOX.LAN.", own)
    assert not is_loopback_host("mybox:8801")
    assert not is_loopback_host("evil.mybox:8801", own)  # the name exactly, not below it
    assert not is_loopback_host("[mybox]:8801", own)


@pytest.mark.parametrize(
    "value", ["http://mybox", "mybox:8801", "my box", "-mybox", "a..b", "mybox/", "[::1]", "é.lan"]
)
def test_local_names_are_host_names_only(value: str) -> None:
    with pytest.raises(ValueError, match="LLM_MESH_LOCAL_NAMES"):
        parse_local_names(value)


@pytest.mark.parametrize(
    "headers",
    [{"host": "127.0.0.1:8801"},  # the CLI, curl, Prometheus: no browser headers
     {"host": "localhost:8801"},
     {"host": "[::1]:8801"},
     {"host": "127.0.0.1:8801", "sec-fetch-site": "none"},  # the operator types the URL
     {"host": "localhost:8801", "origin": "http://localhost:3000", "sec-fetch-site": "same-site"},
     {"host": "[::1]:8801", "origin": "http://[::1]:8801", "sec-fetch-site": "same-origin"},
     {"host": "127.0.0.1:8801", "origin": "http://127.0.0.1:8801"}],
)  # fmt: skip
def test_programs_and_the_operators_own_pages_pass(headers: dict[str, str]) -> None:
    assert loopback_refusal(headers) is None


@pytest.mark.parametrize(
    "headers",
    [  # CSRF: another site's page posts to the node (a form post: no preflight)
     {"host": "127.0.0.1:8801", "origin": "https://evil.example", "sec-fetch-site": "cross-site"},
     {"host": "127.0.0.1:8801", "origin": "https://evil.example"},  # an older browser
     {"host": "127.0.0.1:8801", "origin": "null"},  # a sandboxed iframe, a data: URL
     {"host": "127.0.0.1:8801", "origin": "http://localhost.evil.example"},
     {"host": "127.0.0.1:8801", "origin": "file://"},
     # DNS rebinding: the page's own name now resolves to 127.0.0.1, same-origin
     {"host": "rebind.evil.example:8801", "sec-fetch-site": "same-origin"},
     {"host": "rebind.evil.example:8801", "origin": "http://rebind.evil.example:8801"},
     # ... from a browser that sends no fetch metadata (Safari before 16.4): a plain GET
     {"host": "rebind.evil.example:8801"},
     {"host": "rebind.evil.example"},
     {"host": "node.test"},
     # a *.localhost name: a resolver on the path could answer for it where the system
     # does not keep it from DNS
     {"host": "rebind.localhost:8801"},
     {"host": "127.0.0.1:8801", "origin": "http://app.localhost:3000"},
     {"origin": "http://127.0.0.1:8801", "sec-fetch-site": "same-origin"},  # no Host
     {}],
)  # fmt: skip
def test_another_sites_page_and_a_rebound_name_are_refused(headers: dict[str, str]) -> None:
    assert loopback_refusal(headers) is not None


def test_an_own_name_passes_and_its_pages_too() -> None:
    own = ("mybox",)
    assert loopback_refusal({"host": "mybox:8801"}, own) is None
    assert loopback_refusal({"host": "mybox:8801", "origin": "http://mybox:3000"}, own) is None
    why = loopback_refusal({"host": "mybox:8801"})
    assert why is not None  # says what to do, and where: the server's own setting
    assert "LLM_MESH_LOCAL_NAMES where this server runs" in why and "restart" in why
    assert loopback_refusal({"host": "mybox:8801", "origin": "http://evil.example"}, own)
    dev = parse_local_names("app.localhost")  # a *.localhost name, listed by its operator
    assert loopback_refusal({"host": "app.localhost:8801"}, dev) is None


def test_a_page_of_the_machine_over_https_passes_a_malformed_origin_does_not() -> None:
    host = {"host": "localhost:8801"}
    assert loopback_refusal({**host, "origin": "https://localhost:3000"}) is None
    assert loopback_refusal({**host, "origin": "HTTPS://127.0.0.1"}) is None
    for origin in ("http://[::1", "http://[127.0.0.1]", "ftp://localhost", "localhost"):
        assert loopback_refusal({**host, "origin": origin}) == FOREIGN_PAGE


def test_local_names_skip_empty_parts_and_take_dns_names_to_their_limits() -> None:
    assert parse_local_names("a,, b ,") == ("a", "b")
    assert parse_local_names("my-box.x-1.lan") == ("my-box.x-1.lan",)
    assert parse_local_names("a.b.c") == ("a.b.c",)  # labels of one character
    label63 = "a" * 63
    longest = ".".join([label63] * 3 + ["b" * 61])  # 253 characters
    assert parse_local_names(label63) == (label63,)
    assert parse_local_names(longest) == (longest,)
    for bad in ("a" * 64, longest + "b", "mybox-", "my-box.lan-", "my_box"):
        with pytest.raises(ValueError) as exc:
            parse_local_names(bad)
        assert str(exc.value) == (
            f"LLM_MESH_LOCAL_NAMES: {bad!r} is not a host name (names only, ','-separated: "
            "no scheme, port or address)"
        )


def test_another_sites_page_is_told_by_fetch_metadata_else_by_its_origin() -> None:
    from LLM_Mesh.core.browser_origin import another_sites_page

    def foreign(**h: str) -> bool:
        return another_sites_page({k.replace("_", "-"): v for k, v in h.items()})

    assert not foreign()  # a program: neither header
    assert not foreign(sec_fetch_site="same-origin", origin="https://elsewhere.example")
    assert not foreign(sec_fetch_site=" None ")
    assert foreign(sec_fetch_site="cross-site")
    assert foreign(sec_fetch_site="same-site", host="gw.example")
    # no fetch metadata: the Origin must be this Host (default ports left out, any case)
    assert not foreign(origin="https://GW.example", host="gw.example:443")
    assert not foreign(origin="http://gw.example:8800", host="gw.example:8800")
    assert not foreign(origin="http://[::1]:8800", host="[::1]:8800")
    assert foreign(origin="http://gw.example:8801", host="gw.example:8800")
    assert foreign(origin="https://gw.example.evil.example", host="gw.example")
    assert foreign(origin="null", host="gw.example")
    assert foreign(origin="file://", host="gw.example")
    assert foreign(origin="ftp://gw.example", host="gw.example")
    assert foreign(origin="http://gw.example")  # no Host at all
