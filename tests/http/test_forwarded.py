"""Proxy headers, sans-IO: which client and scheme a request gets (peregrine.http.forwarded)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from peregrine.http.forwarded import (
    TrustedProxies,
    make_proxy_hooks,
    parse_forwarded,
    split_node,
)
from peregrine.http.headers import Headers
from peregrine.http.request import Request

from ..helpers import ServerProcess, read_response, run_peregrine

PID_APP = "tests.process.apps:Pid"


def request(*headers: tuple[str, str], client: tuple[str, int] = ("10.0.0.1", 5000)) -> Request:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return Request("GET", b"/", b"", "1.1", Headers(raw), client=client)


def apply(allow: str, req: Request, family: str = "auto") -> Request:
    is_trusted, hook = make_proxy_hooks(allow, family)
    assert req.client is not None
    if is_trusted(req.client[0]):
        hook(req)
    return req


class TestTrustedProxies:
    @pytest.mark.parametrize(
        "allow, host, expected",
        [
            ("127.0.0.1", "127.0.0.1", True),
            ("127.0.0.1", "127.0.0.2", False),
            ("10.0.0.0/8, 192.168.1.1", "10.200.3.4", True),
            ("10.0.0.0/8, 192.168.1.1", "192.168.1.1", True),
            ("10.0.0.0/8, 192.168.1.1", "192.168.1.2", False),
            ("::1", "::1", True),
            ("2001:db8::/32", "2001:db8::42", True),
            ("10.0.0.0/8", "::ffff:10.1.2.3", True),  # IPv4-mapped peer on a dual-stack socket
            ("fe80::/10", "fe80::1%eth0", True),
            ("*", "203.0.113.9", True),
            ("*", "unix", True),
            ("unix", "unix", True),
            ("127.0.0.1", "unix", False),
            ("127.0.0.1", "not-an-ip", False),
            ("", "127.0.0.1", False),
        ],
    )
    def test_membership(self, allow: str, host: str, expected: bool) -> None:
        assert TrustedProxies(allow)(host) is expected

    def test_bad_entry_is_refused_with_its_name(self) -> None:
        with pytest.raises(ValueError, match="nonsense"):
            TrustedProxies("127.0.0.1, nonsense")


class TestXForwarded:
    def test_trusted_peer_sets_client_and_scheme(self) -> None:
        req = apply(
            "10.0.0.1", request(("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"))
        )
        assert req.client == ("203.0.113.7", 0)
        assert req.scheme == "https"

    def test_untrusted_peer_is_ignored(self) -> None:
        req = apply(
            "10.9.9.9", request(("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"))
        )
        assert req.client == ("10.0.0.1", 5000)
        assert req.scheme == "http"

    def test_rightmost_untrusted_address_is_the_client(self) -> None:
        # the client forged the first entry; our trusted proxies appended the rest
        req = apply("10.0.0.0/8", request(("X-Forwarded-For", "1.2.3.4, 198.51.100.2, 10.0.0.5")))
        assert req.client == ("198.51.100.2", 0)

    def test_all_trusted_gives_the_leftmost(self) -> None:
        req = apply("*", request(("X-Forwarded-For", "198.51.100.2, 10.0.0.5")))
        assert req.client == ("198.51.100.2", 0)

    def test_repeated_header_lines_are_one_list(self) -> None:
        req = apply(
            "10.0.0.0/8",
            request(("X-Forwarded-For", "198.51.100.2"), ("X-Forwarded-For", "10.0.0.7")),
        )
        assert req.client == ("198.51.100.2", 0)

    def test_ipv6_client(self) -> None:
        req = apply("10.0.0.1", request(("X-Forwarded-For", "2001:db8::7")))
        assert req.client == ("2001:db8::7", 0)

    def test_garbage_address_keeps_the_peer(self) -> None:
        req = apply("10.0.0.1", request(("X-Forwarded-For", "<script>")))
        assert req.client == ("10.0.0.1", 5000)

    def test_unknown_proto_is_ignored(self) -> None:
        req = apply("10.0.0.1", request(("X-Forwarded-Proto", "gopher")))
        assert req.scheme == "http"

    def test_proto_case_and_ws(self) -> None:
        assert apply("10.0.0.1", request(("X-Forwarded-Proto", "HTTPS"))).scheme == "https"
        assert apply("10.0.0.1", request(("X-Forwarded-Proto", "wss"))).scheme == "https"

    def test_proto_of_different_length_is_the_right_most(self) -> None:
        # the client wrote the first X-Forwarded-Proto, the proxy appended the second
        req = apply(
            "10.0.0.1",
            request(
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "http"),
            ),
        )
        assert (req.client, req.scheme) == (("203.0.113.7", 0), "http")

    @pytest.mark.parametrize(
        "value, expected",
        [
            ("203.0.113.7:5678", ("203.0.113.7", 5678)),
            ("[2001:db8::7]:80", ("2001:db8::7", 80)),
            ("[2001:db8::7]", ("2001:db8::7", 0)),
        ],
    )
    def test_entries_with_ports(self, value: str, expected: tuple[str, int]) -> None:
        assert apply("10.0.0.1", request(("X-Forwarded-For", value))).client == expected

    def test_trust_is_judged_without_the_port(self) -> None:
        req = apply("10.0.0.0/8", request(("X-Forwarded-For", "198.51.100.2:1234, 10.0.0.5:80")))
        assert req.client == ("198.51.100.2", 1234)

    def test_proto_list_lines_up_with_the_chosen_hop(self) -> None:
        req = apply(
            "10.0.0.0/8",
            request(
                ("X-Forwarded-For", "198.51.100.2, 10.0.0.5"),
                ("X-Forwarded-Proto", "https, http"),
            ),
        )
        assert (req.client, req.scheme) == (("198.51.100.2", 0), "https")


class TestForwarded:
    def test_rfc7239_element(self) -> None:
        req = apply(
            "10.0.0.1", request(("Forwarded", 'for="203.0.113.43:4711";proto=https;by=10.0.0.1'))
        )
        assert req.client == ("203.0.113.43", 4711)
        assert req.scheme == "https"

    def test_ipv6_node_with_port(self) -> None:
        req = apply("10.0.0.1", request(("Forwarded", 'For="[2001:db8:cafe::17]:4711"')))
        assert req.client == ("2001:db8:cafe::17", 4711)

    def test_chain_picks_rightmost_untrusted(self) -> None:
        req = apply(
            "10.0.0.0/8",
            request(
                ("Forwarded", "for=192.0.2.60;proto=http, for=198.51.100.17;proto=https"),
                ("Forwarded", "for=10.0.0.3"),
            ),
        )
        assert (req.client, req.scheme) == (("198.51.100.17", 0), "https")

    def test_x_forwarded_wins_over_it(self) -> None:
        # a proxy setting X-Forwarded-* passes the client's own Forwarded through
        req = apply(
            "10.0.0.1",
            request(
                ("Forwarded", "for=2.2.2.2;proto=https"),
                ("X-Forwarded-For", "1.1.1.1"),
                ("X-Forwarded-Proto", "http"),
            ),
        )
        assert (req.client, req.scheme) == (("1.1.1.1", 0), "http")

    def test_x_forwarded_proto_alone_also_wins(self) -> None:
        req = apply(
            "10.0.0.1",
            request(("Forwarded", "for=2.2.2.2;proto=https"), ("X-Forwarded-Proto", "http")),
        )
        assert (req.client, req.scheme) == (("10.0.0.1", 5000), "http")

    @pytest.mark.parametrize(
        "value",
        [
            'for=6.6.6.6;x=", for=203.0.113.7;proto=http',  # unterminated quote
            "for=6.6.6.6;for, for=203.0.113.7",  # pair without "="
            "for=6.6.6.6;for=7.7.7.7, for=203.0.113.7",  # a parameter twice
            'for="6.6.6.6"x, for=203.0.113.7',  # text after a quoted value
        ],
    )
    def test_malformed_header_is_ignored_as_a_whole(self, value: str) -> None:
        req = apply("10.0.0.1", request(("Forwarded", value)))
        assert (req.client, req.scheme) == (("10.0.0.1", 5000), "http")

    def test_obfuscated_and_unknown_nodes_keep_the_peer(self) -> None:
        assert apply("10.0.0.1", request(("Forwarded", "for=_hidden"))).client == ("10.0.0.1", 5000)
        assert apply("10.0.0.1", request(("Forwarded", "for=unknown"))).client == ("10.0.0.1", 5000)

    def test_proto_without_for(self) -> None:
        assert apply("10.0.0.1", request(("Forwarded", "proto=https"))).scheme == "https"

    def test_untrusted_ignored(self) -> None:
        req = apply("10.0.0.2", request(("Forwarded", "for=2.2.2.2;proto=https")))
        assert (req.client, req.scheme) == (("10.0.0.1", 5000), "http")

    def test_parse_quoted_separators(self) -> None:
        assert parse_forwarded(['for="a,b;c";proto=https, for=x']) == [
            {"for": "a,b;c", "proto": "https"},
            {"for": "x"},
        ]

    def test_parse_escapes_and_empty_elements(self) -> None:
        assert parse_forwarded([r'for="a\"b" ; proto=https,, for=x', "for=[::1]"]) == [
            {"for": 'a"b', "proto": "https"},
            {"for": "x"},
            {"for": "[::1]"},
        ]

    @pytest.mark.parametrize("value", ["for, =x; proto=https", 'for="x', "=x", "for=", "for=a b"])
    def test_parse_refuses_malformed(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_forwarded([value])

    @pytest.mark.parametrize(
        "node, expected",
        [
            ("192.0.2.43:47011", ("192.0.2.43", 47011)),
            ("192.0.2.43", ("192.0.2.43", 0)),
            ("[2001:db8::1]:80", ("2001:db8::1", 80)),
            ("[2001:db8::1]", ("2001:db8::1", 0)),
            ("2001:db8::1", ("2001:db8::1", 0)),
            ("192.0.2.43:_port", ("192.0.2.43", 0)),
        ],
    )
    def test_split_node(self, node: str, expected: tuple[str, int]) -> None:
        assert split_node(node) == expected


class TestFamily:
    """``forwarded_headers``: which family of headers a trusted proxy's request is read from."""

    BOTH = (
        ("X-Forwarded-For", "198.51.100.1"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=203.0.113.2;proto=http"),
    )

    @pytest.mark.parametrize(
        "family, headers, client, scheme",
        [
            # auto: X-Forwarded-* when present, else Forwarded
            ("auto", BOTH, ("198.51.100.1", 0), "https"),
            ("auto", BOTH[2:], ("203.0.113.2", 0), "http"),
            # pinned to one family: the other is ignored even when it is the only one sent
            ("forwarded", BOTH, ("203.0.113.2", 0), "http"),
            ("forwarded", BOTH[:2], ("10.0.0.1", 5000), "http"),
            ("x-forwarded", BOTH, ("198.51.100.1", 0), "https"),
            ("x-forwarded", BOTH[2:], ("10.0.0.1", 5000), "http"),
        ],
    )
    def test_family(
        self,
        family: str,
        headers: tuple[tuple[str, str], ...],
        client: tuple[str, int],
        scheme: str,
    ) -> None:
        req = apply("10.0.0.1", request(*headers), family)
        assert (req.client, req.scheme) == (client, scheme)

    def test_unknown_family_is_refused(self) -> None:
        with pytest.raises(ValueError, match="forwarded_headers"):
            make_proxy_hooks("10.0.0.1", "x-real-ip")


def _raw_request(host: str, port: int, headers: list[tuple[str, str]]) -> dict:
    """One request with exactly these header lines (repeated names kept); the Echo app's JSON."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n\r\n".encode())
        status, _, body = read_response(sock)
    assert status == 200
    return json.loads(body)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """``tests.apps:Echo`` trusting the loopback proxy (stateless: the tests share it)."""
    with ServerProcess("tests.apps:Echo", "--forwarded-allow-ips", "127.0.0.1") as proc:
        yield proc


def test_client_forwarded_header_passed_through_by_an_x_forwarded_proxy(
    server: ServerProcess,
) -> None:
    # what nginx sends upstream with the docs' config: the client's headers, plus its own XFF/XFP
    data = _raw_request(
        server.host,
        server.port,
        [
            ("Forwarded", "for=6.6.6.6;proto=https"),  # written by the client
            ("X-Forwarded-For", "203.0.113.7"),  # $proxy_add_x_forwarded_for
            ("X-Forwarded-Proto", "http"),  # $scheme
        ],
    )
    assert (data["client"][0], data["scheme"]) == ("203.0.113.7", "http")


def test_unterminated_quote_cannot_swallow_the_proxys_forwarded_element(
    server: ServerProcess,
) -> None:
    # client sent `Forwarded: for=6.6.6.6;x="`; the proxy appended `, for=203.0.113.7;proto=http`
    data = _raw_request(
        server.host,
        server.port,
        [
            ("Forwarded", 'for=6.6.6.6;x=", for=203.0.113.7;proto=http'),
        ],
    )
    assert data["client"][0] != "6.6.6.6"


def test_x_forwarded_proto_uses_the_value_the_proxy_appended(server: ServerProcess) -> None:
    data = _raw_request(
        server.host,
        server.port,
        [
            ("X-Forwarded-Proto", "https"),  # written by the client
            ("X-Forwarded-For", "203.0.113.7"),  # appended by the proxy
            ("X-Forwarded-Proto", "http"),  # appended by the proxy
        ],
    )
    assert (data["client"][0], data["scheme"]) == ("203.0.113.7", "http")


def test_bad_forwarded_allow_ips_is_refused_before_serving() -> None:
    proc = run_peregrine(
        "run",
        PID_APP,
        "--port",
        "0",
        "--workers",
        "1",
        "--forwarded-allow-ips",
        "10.0.0.0/8, localhost",
        timeout=30,
    )
    assert proc.returncode != 0
    assert "localhost" in proc.stderr
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stderr, proc.stderr
