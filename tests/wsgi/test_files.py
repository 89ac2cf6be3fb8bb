"""``wsgi.file_wrapper``: real files go out through sendfile, other file-likes in blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..helpers import ServerProcess, read_response
from .test_handler import closed_flag, request_bytes

DATA = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(DATA)
    return path


def fetch(
    server: ServerProcess, target: str, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    with server.connect() as sock:
        sock.sendall(request_bytes(method, target))
        return read_response(sock, timeout=20)


def test_real_file_is_sent_with_sendfile(server: ServerProcess, data_file: Path) -> None:
    # the file object's read() raises: only sendfile (no read() call) can deliver it
    status, headers, body = fetch(server, f"/file?path={data_file}&no_read=1")
    assert status == 200
    assert headers["content-length"] == str(len(DATA))
    assert body == DATA
    assert closed_flag(server, "no_read_file")


def test_file_from_its_position_for_the_declared_length(
    server: ServerProcess, data_file: Path
) -> None:
    status, headers, body = fetch(server, f"/file?path={data_file}&seek=1000&length=5000")
    assert status == 200 and headers["content-length"] == "5000"
    assert body == DATA[1000:6000]


def test_head_of_a_file_has_its_length_and_no_body(server: ServerProcess, data_file: Path) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("HEAD", f"/file?path={data_file}&no_read=1"))
        sock.sendall(request_bytes("GET", "/closed?tag=none"))
        sock.settimeout(10)
        data = b""
        while not data.endswith(b"\r\n\r\nno"):
            data += sock.recv(65536)
    first, _, second = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(DATA)}".encode() in first
    assert second.startswith(b"HTTP/1.1 200 ")  # no body bytes in between


def test_file_like_without_fileno_is_read_in_blocks(server: ServerProcess, data_file: Path) -> None:
    status, _, body = fetch(server, f"/file?path={data_file}&kind=bytesio&block=70000&tag=blocks")
    assert status == 200 and body == DATA
    assert closed_flag(server, "blocks")
