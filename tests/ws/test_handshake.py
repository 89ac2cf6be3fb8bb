"""The opening handshake (RFC 6455 section 4, extension syntax of section 9.1) and upgrade()."""

from __future__ import annotations

import pytest

import peregrine.ws
from peregrine.http.headers import Headers
from peregrine.http.request import Request
from peregrine.http.response import Response
from peregrine.ws.handshake import (
    HandshakeError,
    accept_key,
    check_request,
    parse_extensions,
    select_subprotocol,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GOOD = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def headers(drop: tuple[str, ...] = (), **replace: str) -> list[tuple[str, str]]:
    """GOOD without `drop`, with `replace` (keyword names use _ for -) substituted or added."""
    repl = {k.replace("_", "-").lower(): v for k, v in replace.items()}
    out = [
        (k, repl.pop(k.lower(), v)) for k, v in GOOD if k.lower() not in {d.lower() for d in drop}
    ]
    return out + [(k, v) for k, v in repl.items()]


class TestRFC6455Section1_3_Accept:
    def test_sample_from_the_rfc(self) -> None:
        assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class TestRFC6455Section4_2_1_ClientRequest:
    def test_valid(self) -> None:
        result = check_request("GET", "1.1", GOOD)
        assert result.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert ("Connection", "Upgrade") in result.headers()
        assert ("Upgrade", "websocket") in result.headers()

    @pytest.mark.parametrize(
        "hdrs",
        [
            headers(Upgrade="WebSocket"),
            headers(Upgrade="foo, websocket"),
            headers(Connection="keep-alive, Upgrade"),
            headers(Connection="UPGRADE"),
            headers(Sec_WebSocket_Key=f"  {KEY} "),
            headers(Sec_WebSocket_Version=" 13"),
            [(k.encode(), v.encode()) for k, v in GOOD],  # bytes pairs work too
        ],
    )
    def test_accepted_variants(self, hdrs: list) -> None:
        check_request("GET", "1.1", hdrs)

    @pytest.mark.parametrize(
        "method, version, hdrs, status",
        [
            ("POST", "1.1", GOOD, 400),
            ("HEAD", "1.1", GOOD, 400),
            ("GET", "1.0", GOOD, 400),
            ("GET", "1.1", headers(drop=("Upgrade",)), 400),
            ("GET", "1.1", headers(Upgrade="h2c"), 400),
            ("GET", "1.1", headers(drop=("Connection",)), 400),
            ("GET", "1.1", headers(Connection="keep-alive"), 400),
            ("GET", "1.1", headers(Connection="upgraded"), 400),
            ("GET", "1.1", headers(drop=("Sec-WebSocket-Key",)), 400),
            ("GET", "1.1", headers(Sec_WebSocket_Key="not base64!"), 400),
            (
                "GET",
                "1.1",
                headers(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAAAAAA" + "AAAA"),
                400,
            ),  # 21 bytes
            ("GET", "1.1", headers(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAA"), 400),  # 15 bytes
            ("GET", "1.1", GOOD + [("Sec-WebSocket-Key", KEY)], 400),  # two keys
            ("GET", "1.1", headers(drop=("Sec-WebSocket-Version",)), 426),
            ("GET", "1.1", headers(Sec_WebSocket_Version="8"), 426),
            ("GET", "1.1", headers(Sec_WebSocket_Version="13, 8"), 426),
            ("GET", "1.1", GOOD + [("Sec-WebSocket-Version", "13")], 426),
        ],
    )
    def test_refused(self, method: str, version: str, hdrs: list, status: int) -> None:
        with pytest.raises(HandshakeError) as info:
            check_request(method, version, hdrs)
        assert info.value.status == status
        if status == 426:
            assert ("Sec-WebSocket-Version", "13") in info.value.headers


class TestRFC6455Section4_2_2_Subprotocol:
    @pytest.mark.parametrize(
        "offered, supported, expected",
        [
            ([], ["chat"], None),
            (["chat"], None, None),
            (["chat"], [], None),
            (["chat"], ["chat"], "chat"),
            (["superchat, chat"], ["chat", "superchat"], "chat"),  # the server's preference wins
            (["a", "b , c"], ["c"], "c"),  # several header lines
            (["CHAT"], ["chat"], None),  # tokens are compared exactly
        ],
    )
    def test_select(self, offered: list, supported: list | None, expected: str | None) -> None:
        assert select_subprotocol(offered, supported) == expected

    def test_in_response(self) -> None:
        result = check_request(
            "GET", "1.1", GOOD + [("Sec-WebSocket-Protocol", "v2, v1")], subprotocols=["v1"]
        )
        assert result.subprotocol == "v1"
        assert ("Sec-WebSocket-Protocol", "v1") in result.headers()


class TestRFC6455Section9_1_ExtensionSyntax:
    @pytest.mark.parametrize(
        "values, expected",
        [
            ([""], []),
            (["permessage-deflate"], [("permessage-deflate", [])]),
            (
                ["permessage-deflate; client_max_window_bits"],
                [("permessage-deflate", [("client_max_window_bits", None)])],
            ),
            (
                ["permessage-deflate;server_max_window_bits=10 ; client_no_context_takeover"],
                [
                    (
                        "permessage-deflate",
                        [("server_max_window_bits", "10"), ("client_no_context_takeover", None)],
                    )
                ],
            ),
            (
                ['permessage-deflate; server_max_window_bits="10"'],
                [("permessage-deflate", [("server_max_window_bits", "10")])],
            ),
            (["a, b; x=1", "c"], [("a", []), ("b", [("x", "1")]), ("c", [])]),
            ([" , a ,, "], [("a", [])]),
        ],
    )
    def test_parse(self, values: list, expected: list) -> None:
        assert parse_extensions(values) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; a=",
            "a b",
            'permessage-deflate; x="a b"',
            'permessage-deflate; x="unterminated',
            "a; b=1 c",
        ],
    )
    def test_malformed(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_extensions([value])

    def test_malformed_header_only_disables_compression(self) -> None:
        result = check_request(
            "GET", "1.1", GOOD + [("Sec-WebSocket-Extensions", "permessage-deflate;;")]
        )
        assert result.deflate is None


def make_request(hdrs: list[tuple[str, str]], method: str = "GET", version: str = "1.1") -> Request:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs]
    return Request(method, b"/ws", b"", version, Headers(raw))


class TestUpgrade:
    """peregrine.ws.upgrade() on a Request/Response pair, without a server."""

    def test_success(self) -> None:
        resp = Response()
        ok = peregrine.ws.upgrade(
            make_request(
                GOOD
                + [
                    ("Sec-WebSocket-Protocol", "chat"),
                    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
                ]
            ),
            resp,
            subprotocols=["chat"],
        )
        assert ok is True
        assert resp.status == 101
        assert resp.get_header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert resp.get_header("Upgrade") == "websocket"
        assert resp.get_header("Connection") == "Upgrade"
        assert resp.get_header("Sec-WebSocket-Protocol") == "chat"
        assert (
            resp.get_header("Sec-WebSocket-Extensions")
            == "permessage-deflate; client_max_window_bits=12"
        )
        assert callable(resp.upgrade_factory)

    def test_compression_off(self) -> None:
        resp = Response()
        req = make_request(GOOD + [("Sec-WebSocket-Extensions", "permessage-deflate")])
        assert peregrine.ws.upgrade(req, resp, compression=False)
        assert resp.get_header("Sec-WebSocket-Extensions") is None

    @pytest.mark.parametrize(
        "hdrs, status",
        [
            (headers(drop=("Upgrade",)), 400),
            (headers(Sec_WebSocket_Version="12"), 426),
        ],
    )
    def test_refusal(self, hdrs: list, status: int) -> None:
        resp = Response()
        assert peregrine.ws.upgrade(make_request(hdrs), resp) is False
        assert resp.status == status
        assert resp.upgrade_factory is None
        assert resp.body
        if status == 426:
            assert resp.get_header("Sec-WebSocket-Version") == "13"
