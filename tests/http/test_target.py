"""Absolute-form request targets (RFC 9112 §3.2.2): one reading for the parser and static files."""

from __future__ import annotations

import pytest

from peregrine.http.errors import ProtocolError
from peregrine.http.parser import RequestParser
from peregrine.http.target import split_absolute_form
from peregrine.util.paths import BadPath, split_target_tuple

# (target, path, query)
ABSOLUTE = [
    (b"http://example.com/a/b", b"/a/b", b""),
    (b"http://example.com", b"/", b""),
    (b"HTTPS://example.com:8443/x?q=1&r", b"/x", b"q=1&r"),
    (b"http://example.com?q=1", b"/", b"q=1"),
    (b"http://[::1]:80/%2e%2e/a", b"/%2e%2e/a", b""),
    (b"http://u@example.com/p", b"/p", b""),
]
NOT_ABSOLUTE = [b"ftp://example.com/a", b"example.com/a", b"http:/a", b"", b"*", b"//a/b"]


@pytest.mark.parametrize("target, path, query", ABSOLUTE)
def test_path_and_query_of_an_http_uri(target: bytes, path: bytes, query: bytes) -> None:
    assert split_absolute_form(target) == (path, query)


@pytest.mark.parametrize("target", NOT_ABSOLUTE)
def test_anything_else_is_400(target: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        split_absolute_form(target)
    assert info.value.status == 400


@pytest.mark.parametrize("target, path, query", ABSOLUTE)
def test_parser_and_static_paths_read_a_target_alike(
    target: bytes, path: bytes, query: bytes
) -> None:
    parser = RequestParser()
    parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (request,) = parser.requests
    assert (request.raw_path, request.query_bytes) == (path, query)
    try:
        from_static = split_target_tuple(target)
    except BadPath as exc:
        with pytest.raises(BadPath) as info:
            split_target_tuple(path)
        assert info.value.status == exc.status
    else:
        assert from_static == split_target_tuple(path)


@pytest.mark.parametrize("target", [t for t in NOT_ABSOLUTE if t[:1] != b"/"])
def test_static_paths_refuse_what_is_not_a_path_or_an_http_uri(target: bytes) -> None:
    with pytest.raises(BadPath) as info:
        split_target_tuple(target)
    assert info.value.status == 400
