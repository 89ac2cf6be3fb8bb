"""Building the environ from a request, in-process and table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from peregrine.http.request import Request
from peregrine.wsgi.environ import (
    EnvironBuilder,
    base_environ,
    build_environ,
    environ_key,
    path_info,
    server_address,
)

BASE = base_environ("/api", True, "errors", "wrapper")


def environ_of(
    headers: list[tuple[bytes, bytes]],
    raw_path: bytes = b"/p",
    query: bytes = b"",
    version: str = "1.1",
    client: tuple[str, int] | None = ("10.0.0.1", 5555),
    scheme: str = "http",
    sockname: Any = None,
) -> dict[str, Any]:
    request = request_of(headers, raw_path, query, version, client, scheme)
    return build_environ(BASE, request, "input", sockname)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/plain", "/plain"),
        (b"/a%20b", "/a b"),
        (b"/%C3%A9", "/\xc3\xa9"),  # UTF-8 bytes, each as one latin-1 character
        (b"/a%2Fb", "/a/b"),
        (b"/%ff", "/\xff"),
        (b"/100%", "/100%"),  # a lone % stays
        (b"/\xe9", "/\xe9"),  # a raw byte (obs-text) as sent
    ],
)
def test_path_info_is_decoded_to_latin1(raw: bytes, expected: str) -> None:
    assert path_info(raw) == expected
    assert environ_of([(b"Host", b"h")], raw_path=raw)["PATH_INFO"] == expected


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (b"Host", "HTTP_HOST"),
        (b"x-custom-thing", "HTTP_X_CUSTOM_THING"),
        (b"Content-Type", "CONTENT_TYPE"),
        (b"content-length", "CONTENT_LENGTH"),
        (b"CONTENT-TYPE", "CONTENT_TYPE"),
        (b"X_Underscore", None),
        (b"x-forwarded_for", None),
    ],
)
def test_header_names_map_to_environ_keys(name: bytes, key: str | None) -> None:
    assert environ_key(name) == key


@pytest.mark.parametrize(
    ("host", "scheme", "sockname", "expected"),
    [
        ("example.com", "http", None, ("example.com", "80")),
        ("example.com", "https", None, ("example.com", "443")),
        ("example.com:8080", "http", None, ("example.com", "8080")),
        ("[::1]:9000", "http", None, ("[::1]", "9000")),
        ("[::1]", "https", None, ("[::1]", "443")),
        (None, "http", ("127.0.0.1", 3000), ("127.0.0.1", "3000")),
        (None, "http", ("::1", 3000, 0, 0), ("::1", "3000")),
        (None, "http", "/tmp/sock", ("localhost", "80")),
    ],
)
def test_server_name_and_port(
    host: str | None, scheme: str, sockname: Any, expected: tuple[str, str]
) -> None:
    assert server_address(host, scheme, sockname) == expected


def test_request_keys() -> None:
    environ = environ_of(
        [
            (b"Host", b"example.com"),
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"12"),
            (b"Accept", b"a"),
            (b"accept", b"b"),
            (b"Cookie", b"x=1"),
            (b"Cookie", b"y=2"),
            (b"X-Latin", b"caf\xe9"),
        ],
        query=b"q=%20&r",
        scheme="https",
    )
    expected = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/p",
        "QUERY_STRING": "q=%20&r",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "12",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "5555",
        "HTTP_HOST": "example.com",
        "HTTP_ACCEPT": "a, b",
        "HTTP_COOKIE": "x=1; y=2",
        "HTTP_X_LATIN": "caf\xe9",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": "input",
        "wsgi.errors": "errors",
        "wsgi.file_wrapper": "wrapper",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    assert environ == expected


def test_no_client_address_no_remote_keys_and_base_untouched() -> None:
    environ = environ_of([], version="1.0", client=None, sockname=("127.0.0.1", 80))
    assert "REMOTE_ADDR" not in environ and "REMOTE_PORT" not in environ
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "CONTENT_LENGTH" not in environ
    # each request gets a copy: the worker's base is as it was made
    assert BASE == base_environ("/api", True, "errors", "wrapper")
    assert BASE["PATH_INFO"] == "" and "REMOTE_ADDR" in BASE


def request_of(
    headers: list[tuple[bytes, bytes]],
    raw_path: bytes = b"/p",
    query: bytes = b"",
    version: str = "1.1",
    client: tuple[str, int] | None = ("10.0.0.1", 5555),
    scheme: str = "http",
    method: str = "GET",
) -> Request:
    return Request(method, raw_path, query, version, headers, client=client, scheme=scheme)


HOST = [(b"Host", b"example.com:8080")]

# Requests of one client in turn, each differing from the one before in one respect: a builder
# that reuses what it kept must give each the environ a fresh build_environ gives.
SEQUENCE: list[tuple[Request, Any]] = [
    (request_of(HOST), None),
    (request_of(HOST, raw_path=b"/other%20path", query=b"a=1", method="POST"), None),
    (request_of(HOST, raw_path=b"/other%20path", query=b"a=2", method="POST"), None),
    (request_of(HOST, raw_path=b"/other%20path", query=b"a=2", method="PUT"), None),
    (request_of(HOST, raw_path=b"/p", query=b"a=2", method="PUT"), None),
    (request_of([(b"Host", b"example.com:9090")]), None),
    (request_of([*HOST, (b"Accept", b"x")]), None),
    (request_of([*HOST, (b"Accept", b"y")]), None),
    (request_of([*HOST, (b"accept", b"y")]), None),
    (request_of(HOST, scheme="https"), None),
    (request_of(HOST, version="1.0"), None),
    (request_of([], version="1.0"), ("127.0.0.1", 3000)),
    (request_of([], version="1.0"), ("127.0.0.1", 3001)),
    (request_of(HOST, client=("10.0.0.1", 5556)), None),
    (request_of(HOST, client=("10.0.0.2", 5555)), None),
    (request_of(HOST, client=None), None),
    (request_of(HOST, client=None), None),
    (request_of(HOST), None),
]


def test_builder_gives_what_build_environ_gives_whatever_came_before() -> None:
    builder = EnvironBuilder(BASE)
    for request, sockname in SEQUENCE:
        for _ in range(2):  # the second time, from what the first kept
            built = builder.build(request, "input", sockname)
            assert built == build_environ(BASE, request, "input", sockname)
    assert BASE == base_environ("/api", True, "errors", "wrapper")


def test_builder_reuses_a_clients_keys_for_its_next_request_with_equal_fields() -> None:
    builder = EnvironBuilder(BASE)
    first = builder.build(request_of(list(HOST)), "one")
    first["HTTP_HOST"] = "changed by the application"
    second = builder.build(request_of(list(HOST), raw_path=b"/two", method="PUT"), "two")
    assert len(builder) == 1
    assert second["HTTP_HOST"] == "example.com:8080"
    assert (second["REQUEST_METHOD"], second["PATH_INFO"], second["wsgi.input"]) == (
        "PUT",
        "/two",
        "two",
    )
    assert second is not first


def test_builder_gives_a_repeated_url_a_fresh_environ_with_its_own_input() -> None:
    builder = EnvironBuilder(BASE)
    first = builder.build(request_of(list(HOST), query=b"q=1"), "one")
    first["PATH_INFO"] = "/changed"
    first["QUERY_STRING"] = "changed"
    second = builder.build(request_of(list(HOST), query=b"q=1"), "two")
    assert (second["PATH_INFO"], second["QUERY_STRING"], second["wsgi.input"]) == (
        "/p",
        "q=1",
        "two",
    )
    assert second == build_environ(BASE, request_of(list(HOST), query=b"q=1"), "two")


def test_builder_keeps_one_entry_per_client_and_starts_again_when_full() -> None:
    builder = EnvironBuilder(BASE, max_entries=2)
    for port in (1, 2):
        builder.build(request_of(HOST, client=("10.0.0.1", port)), "input")
    assert len(builder) == 2
    builder.build(request_of(HOST, client=("10.0.0.1", 1)), "input")
    assert len(builder) == 2
    environ = builder.build(request_of(HOST, client=("10.0.0.1", 3)), "input")
    assert len(builder) == 1
    assert environ["REMOTE_PORT"] == "3"


def test_builder_does_not_keep_requests_with_large_header_fields() -> None:
    builder = EnvironBuilder(BASE, max_field_bytes=64)
    fields = [*HOST, (b"Cookie", b"c" * 64)]
    for _ in range(2):
        environ = builder.build(request_of(fields), "input")
        assert environ["HTTP_COOKIE"] == "c" * 64
    assert len(builder) == 0
    builder.build(request_of(HOST), "input")
    assert len(builder) == 1


def test_builder_counts_the_path_and_query_in_what_it_keeps() -> None:
    builder = EnvironBuilder(BASE, max_field_bytes=64)
    request = request_of(HOST, raw_path=b"/" + b"p" * 40, query=b"q" * 20)
    for _ in range(2):
        assert builder.build(request, "input") == build_environ(BASE, request, "input")
    assert len(builder) == 0
