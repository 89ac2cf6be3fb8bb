"""``Response``: header validation (no response splitting) and serialisation of the head."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from peregrine.http.response import Response, serialize_head
from peregrine.http.status import STATUS_LINES, has_no_body, reason

DATE = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
SERVER = b"Server: peregrine\r\n"


def head(
    resp: Response,
    content_length: object = 0,
    keep_alive: bool = True,
    http10: bool = False,
    server: bytes = SERVER,
    chunked: bool = False,
) -> bytes:
    return serialize_head(
        resp,
        content_length,  # type: ignore[arg-type]
        keep_alive=keep_alive,
        http10=http10,
        date_line=DATE,
        server_line=server,
        chunked=chunked,
    )


def parse_head(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    assert data.endswith(b"\r\n\r\n")
    lines = data[:-4].split(b"\r\n")
    return lines[0], [tuple(line.split(b": ", 1)) for line in lines[1:]]  # type: ignore[misc]


def names(data: bytes) -> list[bytes]:
    return [n.lower() for n, _ in parse_head(data)[1]]


class TestHeaderValidation:
    """A name or value with CR, LF or NUL raises ValueError: no response splitting."""

    BAD_VALUES = [
        "a\r\nSet-Cookie: x=1",
        "a\rb",
        "a\nb",
        "a\x00b",
        "\r\n",
        b"a\r\nb",
        b"a\nb",
        b"a\x00",
    ]
    BAD_NAMES = ["X-A\r\nX-B", "X\rA", "X\nA", "X\x00A", "", "X A", "X:A", b"X\r\n", "X-é"]

    @pytest.mark.parametrize("value", BAD_VALUES)
    @pytest.mark.parametrize("method", ["set_header", "add_header"])
    def test_bad_value(self, method: str, value: object) -> None:
        resp = Response()
        with pytest.raises(ValueError):
            getattr(resp, method)("X-Test", value)
        assert resp.headers == []

    @pytest.mark.parametrize("name", BAD_NAMES)
    @pytest.mark.parametrize("method", ["set_header", "add_header"])
    def test_bad_name(self, method: str, name: object) -> None:
        resp = Response()
        with pytest.raises(ValueError):
            getattr(resp, method)(name, "v")
        assert resp.headers == []

    def test_value_outside_latin1(self) -> None:
        with pytest.raises(ValueError):
            Response().set_header("X-Test", "snow \u2603")

    def test_latin1_value_is_accepted(self) -> None:
        resp = Response()
        resp.set_header("X-Test", "caf\xe9")
        assert resp.headers == [(b"X-Test", b"caf\xe9")]

    def test_int_value(self) -> None:
        resp = Response()
        resp.set_header("X-Count", 42)
        assert resp.headers == [(b"X-Count", b"42")]

    def test_surrounding_whitespace_is_trimmed(self) -> None:
        resp = Response()
        resp.set_header("X-A", " \tv v\t ")
        assert resp.headers == [(b"X-A", b"v v")]

    @pytest.mark.parametrize(
        "name", ["Content-Length", "content-length", "Transfer-Encoding", "TRANSFER-ENCODING"]
    )
    def test_framing_headers_are_refused(self, name: str) -> None:
        with pytest.raises(ValueError):
            Response().set_header(name, "5")
        with pytest.raises(ValueError):
            Response().add_header(name, "chunked")


class TestHeaders:
    def test_set_replaces_any_case(self) -> None:
        resp = Response()
        resp.add_header("X-A", "1")
        resp.add_header("x-a", "2")
        resp.add_header("X-B", "3")
        resp.set_header("X-a", "4")
        assert resp.headers == [(b"X-B", b"3"), (b"X-a", b"4")]

    def test_add_appends(self) -> None:
        resp = Response()
        resp.add_header("Set-Cookie", "a=1")
        resp.add_header("Set-Cookie", "b=2")
        assert resp.headers == [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]
        assert resp.get_header("set-cookie") == "a=1"
        assert resp.get_header("X-None") is None

    def test_connection_close_is_noted(self) -> None:
        resp = Response()
        assert not resp.close_connection
        resp.set_header("Connection", "Close")
        assert resp.close_connection


class TestBody:
    def test_defaults(self) -> None:
        resp = Response()
        assert resp.status == 200 and resp.body == b"" and resp.headers == []

    def test_str_is_utf8(self) -> None:
        resp = Response()
        resp.set_body("café ☃")
        assert resp.body == "café ☃".encode()

    @pytest.mark.parametrize("body", [bytearray(b"abc"), memoryview(b"abc"), b"abc"])
    def test_bytes_like(self, body: object) -> None:
        resp = Response()
        resp.set_body(body)  # type: ignore[arg-type]
        assert resp.body == b"abc" and type(resp.body) is bytes

    def test_write_needs_a_connection(self) -> None:
        import asyncio

        with pytest.raises(RuntimeError):
            asyncio.run(Response().write(b"x"))

    def test_send_file_refuses_negative_ranges(self, tmp_path: object) -> None:
        import pathlib

        path = pathlib.Path(str(tmp_path)) / "f"
        path.write_bytes(b"0123456789")
        with pytest.raises(ValueError):
            Response().send_file(path, offset=-1)
        resp = Response()
        resp.send_file(path, offset=2)
        assert resp.file is not None and resp.file[1:] == (2, 8)
        resp.file[0].close()


class TestSerialisation:
    def test_status_line_and_order(self) -> None:
        resp = Response()
        resp.set_header("Content-Type", "text/plain")
        data = head(resp, 5)
        line, fields = parse_head(data)
        assert line == b"HTTP/1.1 200 OK"
        assert fields == [
            (b"Date", DATE[6:-2]),
            (b"Server", b"peregrine"),
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"5"),
        ]

    @pytest.mark.parametrize(
        "status, phrase",
        [
            (201, b"Created"),
            (204, b"No Content"),
            (304, b"Not Modified"),
            (404, b"Not Found"),
            (418, b"I'm a Teapot"),
            (431, b"Request Header Fields Too Large"),
            (500, b"Internal Server Error"),
            (505, b"HTTP Version Not Supported"),
        ],
    )
    def test_reason_phrase_from_the_table(self, status: int, phrase: bytes) -> None:
        resp = Response()
        resp.status = status
        assert parse_head(head(resp))[0] == b"HTTP/1.1 %d %s" % (status, phrase)

    def test_unknown_code_has_empty_reason(self) -> None:
        resp = Response()
        resp.status = 599
        assert parse_head(head(resp))[0] == b"HTTP/1.1 599 "
        assert reason(599) == ""

    @pytest.mark.parametrize("status", [0, 99, 600, 1000, -200])
    def test_invalid_status(self, status: int) -> None:
        resp = Response()
        resp.status = status
        with pytest.raises(ValueError):
            head(resp)

    def test_empty_body_has_content_length_zero(self) -> None:
        assert (b"Content-Length", b"0") in parse_head(head(Response(), 0))[1]

    @pytest.mark.parametrize("status", [100, 101, 103, 204, 304])
    def test_no_content_length_on_bodiless_statuses(self, status: int) -> None:
        resp = Response()
        resp.status = status
        assert b"content-length" not in names(head(resp, 10))
        assert has_no_body(status)

    @pytest.mark.parametrize("status", [200, 201, 205, 301, 400, 404, 500])
    def test_content_length_on_other_statuses(self, status: int) -> None:
        resp = Response()
        resp.status = status
        assert (b"Content-Length", b"10") in parse_head(head(resp, 10))[1]
        assert not has_no_body(status)

    def test_streamed_has_no_content_length_but_chunked(self) -> None:
        data = head(Response(), None, chunked=True)
        assert b"content-length" not in names(data)
        assert (b"Transfer-Encoding", b"chunked") in parse_head(data)[1]

    def test_persistence(self) -> None:
        assert b"connection" not in names(head(Response(), 0, keep_alive=True))
        assert (b"Connection", b"close") in parse_head(head(Response(), 0, keep_alive=False))[1]
        assert (b"Connection", b"keep-alive") in parse_head(
            head(Response(), 0, keep_alive=True, http10=True)
        )[1]
        assert (b"Connection", b"close") in parse_head(
            head(Response(), 0, keep_alive=False, http10=True)
        )[1]

    def test_server_header_can_be_left_out(self) -> None:
        assert b"server" not in names(head(Response(), 0, server=b""))

    def test_handler_date_and_server_win(self) -> None:
        resp = Response()
        resp.set_header("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
        resp.set_header("Server", "custom")
        fields = parse_head(head(resp))[1]
        assert [v for n, v in fields if n.lower() == b"date"] == [b"Mon, 01 Jan 2001 00:00:00 GMT"]
        assert [v for n, v in fields if n.lower() == b"server"] == [b"custom"]

    def test_repeated_fields_are_kept(self) -> None:
        resp = Response()
        resp.add_header("Set-Cookie", "a=1")
        resp.add_header("Set-Cookie", "b=2")
        fields = parse_head(head(resp))[1]
        assert [v for n, v in fields if n == b"Set-Cookie"] == [b"a=1", b"b=2"]

    def test_every_status_line_is_precomputed(self) -> None:
        for code in range(100, 600):
            line = STATUS_LINES[code]
            assert line.startswith(b"HTTP/1.1 %d " % code) and line.endswith(b"\r\n")


class TestThroughTheConnection:
    """What a handler does with its Response, seen on the wire (in memory: peregrine.testing)."""

    def test_headers_and_body_arrive(self) -> None:
        from peregrine.testing import Client

        def handler(req: object, resp: Response) -> None:
            resp.status = 201
            resp.set_header("X-One", "1")
            resp.add_header("Set-Cookie", "a=1")
            resp.add_header("Set-Cookie", "b=2")
            resp.set_body("créé")

        with Client(handler) as client:
            response = client.get("/")
        assert response.status == 201 and response.reason == "Created"
        assert response.headers.getall("set-cookie") == ["a=1", "b=2"]
        assert response.headers["content-length"] == str(len("créé".encode()))
        assert response.text == "créé"

    @pytest.mark.parametrize("body", [42, None, 1.5])
    def test_set_body_with_a_number_is_a_500_not_nul_bytes(self, body: object) -> None:
        from peregrine.testing import Client

        def handler(req: object, resp: Response) -> None:
            resp.set_body(body)  # type: ignore[arg-type]

        with Client(handler) as client:
            response = client.get("/")
        assert response.status == 500
        assert b"\x00" not in response.content

    def test_framing_header_from_a_handler_is_a_500(self) -> None:
        from peregrine.testing import Client

        def handler(req: object, resp: Response) -> None:
            resp.set_header("Content-Length", "5")

        with Client(handler) as client:
            assert client.get("/").status == 500


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_send_file_path_to_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def call() -> None:
        try:
            Response().send_file(str(fifo))
            outcome.append("returned")
        except Exception as exc:  # refusing a non-regular file is fine
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(2)
    blocked = thread.is_alive()
    if blocked:  # release the thread: a writer lets open() return
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        thread.join(5)
        os.close(fd)
    assert not blocked
