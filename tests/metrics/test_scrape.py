"""Metrics of a real multi-worker server, scraped with httpx from the supervisor's listener."""

from __future__ import annotations

import re
import signal
import socket

import httpx
import pytest

from ..helpers import read_response
from ..process.support import children, wait_until
from .test_text import sample

APP = "tests.process.drain_apps:Lifecycle"
GET_2XX = 'peregrine_requests_total{method="GET",status="2xx"}'


def metrics_url(server: object) -> str:
    line = server.wait_for_line(r"metrics on http://", 10)  # type: ignore[attr-defined]
    assert line is not None, server.output  # type: ignore[attr-defined]
    match = re.search(r"(http://\S+/metrics)", line)
    assert match is not None
    return match.group(1)


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def settled(url: str, series: str, value: float) -> str:
    """Scrape until ``series`` reaches ``value`` (workers publish a few times a second).

    A series that is not on the page yet (a labelled count before its first event) is waited
    for like one below ``value``.
    """
    pages: list[str] = []

    def reached() -> bool:
        pages.append(scrape(url))
        try:
            return sample(pages[-1], series) >= value
        except AssertionError:  # not on the page yet
            return False

    wait_until(reached, timeout=5)
    return pages[-1]


def send_raw(server: object, data: bytes) -> int:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:  # type: ignore[attr-defined]
        sock.sendall(data)
        return read_response(sock)[0]


@pytest.fixture
def server(start_server):  # type: ignore[no-untyped-def]
    return start_server(
        APP,
        "--metrics-port",
        "0",
        "--max-request-line",
        "200",
        "--health-path",
        "/healthz",
        workers=2,
    )


def test_requests_refusals_and_bytes_are_counted_exactly_across_workers(server) -> None:  # type: ignore[no-untyped-def]
    url = metrics_url(server)
    assert url.startswith("http://127.0.0.1:")  # loopback unless --metrics-host says otherwise
    with httpx.Client(
        base_url=server.url, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        for _ in range(5):
            assert client.get("/").status_code == 200
        for _ in range(2):
            assert client.post("/", content=b"abcd").status_code == 200
        assert client.head("/").status_code == 200
        assert client.get("/healthz").status_code == 200  # answered by the server: not counted
    assert send_raw(server, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n") == 400
    assert send_raw(server, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 414
    page = settled(url, "peregrine_request_duration_seconds_count", 8)
    assert sample(page, GET_2XX) == 5
    assert sample(page, 'peregrine_requests_total{method="POST",status="2xx"}') == 2
    assert sample(page, 'peregrine_requests_total{method="HEAD",status="2xx"}') == 1
    assert sample(page, "peregrine_request_duration_seconds_count") == 8
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="+Inf"}') == 8
    assert sample(page, "peregrine_request_body_bytes_total") == 8
    settled(url, 'peregrine_refused_requests_total{status="414"}', 1)
    # the 400 may have been another worker's, published on its own schedule
    page = settled(url, 'peregrine_refused_requests_total{status="400"}', 1)
    assert sample(page, 'peregrine_refused_requests_total{status="400"}') == 1
    assert sample(page, 'peregrine_refused_requests_total{status="414"}') == 1
    assert sample(page, 'peregrine_refused_requests_total{status="431"}') == 0
    assert sample(page, "peregrine_workers") == 2
    wait_until(lambda: sample(scrape(url), 'peregrine_open_connections{protocol="http"}') == 0)
    assert sample(scrape(url), 'peregrine_open_connections{protocol="http"}') == 0
    # a scrape is not a request of the application, and other paths of the listener are 404
    assert sample(scrape(url), GET_2XX) == 5
    assert httpx.get(url.replace("/metrics", "/other"), timeout=5).status_code == 404


def test_open_connections_gauge_counts_a_held_keep_alive_connection(server) -> None:  # type: ignore[no-untyped-def]
    url = metrics_url(server)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        settled(url, 'peregrine_open_connections{protocol="http"}', 1)
        assert sample(scrape(url), 'peregrine_open_connections{protocol="http"}') == 1


def test_counts_survive_a_killed_worker_and_a_reload(server) -> None:  # type: ignore[no-untyped-def]
    url = metrics_url(server)
    with httpx.Client(
        base_url=server.url, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        for _ in range(6):
            assert client.get("/").status_code == 200
    settled(url, GET_2XX, 6)
    victim = children(server.proc.pid)[0]
    import os

    os.kill(victim, signal.SIGKILL)
    page = settled(url, 'peregrine_worker_restarts_total{cause="killed"}', 1)
    assert sample(page, 'peregrine_worker_restarts_total{cause="killed"}') == 1
    assert sample(page, GET_2XX) == 6  # the dead worker's published counts are kept
    assert wait_until(lambda: len(children(server.proc.pid)) == 2)
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_line("reload complete", 15, start=mark), server.output
    page = scrape(url)
    assert sample(page, "peregrine_reloads_total") == 1
    assert sample(page, GET_2XX) == 6
    assert 'cause="reload"' not in page  # a reload is counted as such, not as restarts


def test_one_worker_with_metrics_runs_under_the_supervisor(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(APP, "--metrics-port", "0", workers=1)
    assert "supervisor pid" in server.output
    url = metrics_url(server)
    assert httpx.get(server.url + "/", timeout=5).status_code == 200
    assert sample(settled(url, GET_2XX, 1), GET_2XX) == 1


def test_asgi_responses_are_counted_by_method_and_status(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server("tests.process.drain_apps:asgi", "--metrics-port", "0", workers=2)
    url = metrics_url(server)
    with httpx.Client(
        base_url=server.url, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        for _ in range(3):
            assert client.get("/").text == "asgi draining=False"
        assert client.delete("/").status_code == 200
    page = settled(url, "peregrine_request_duration_seconds_count", 4)
    assert sample(page, GET_2XX) == 3
    assert sample(page, 'peregrine_requests_total{method="DELETE",status="2xx"}') == 1
    assert sample(page, "peregrine_request_duration_seconds_count") == 4


def test_http2_responses_and_refusals_are_counted(server) -> None:  # type: ignore[no-untyped-def]
    from ..aio.h2client import H2Client

    url = metrics_url(server)
    with httpx.Client(http1=False, http2=True, base_url=server.url) as client:
        for _ in range(3):
            response = client.get("/")
            assert response.http_version == "HTTP/2" and response.status_code == 200
        assert client.post("/", content=b"abcdef").status_code == 200
    with H2Client(server.host, server.port) as h2:
        assert h2.get("/" + "a" * 300).status == 414  # --max-request-line 200
    page = settled(url, 'peregrine_refused_requests_total{status="414"}', 1)
    page = settled(url, "peregrine_request_duration_seconds_count", 4)
    assert sample(page, GET_2XX) == 3
    assert sample(page, 'peregrine_requests_total{method="POST",status="2xx"}') == 1
    assert sample(page, "peregrine_request_body_bytes_total") == 6
    assert sample(page, 'peregrine_refused_requests_total{status="414"}') == 1
