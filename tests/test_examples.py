"""The examples run as the README says: as scripts, and with ``peregrine run``.

(dirserver, fileserver, counter and websocket have deeper tests next to the features they show.)
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .helpers import ROOT, ServerProcess


def assert_readme_gives(spec: str) -> None:
    """README.md shows ``peregrine run SPEC`` (the examples below run exactly that)."""
    readme = (ROOT / "README.md").read_text()
    assert f"`peregrine run {spec}`" in readme or f"peregrine run {spec}`" in readme


@pytest.mark.parametrize("how", ["script", "peregrine run"])
def test_basic_answers_kawww(how: str) -> None:
    if how == "script":
        server = ServerProcess(script=["examples/basic.py"])
    else:
        assert_readme_gives("examples.basic:Handler")
        server = ServerProcess("examples.basic:Handler")
    with server:
        response = httpx.get(server.url + "/anything?x=1")
        assert response.status_code == 200
        assert response.text == "Kawww\n"
        assert response.headers["content-type"] == "text/plain"


def test_counter_counts_up_from_zero() -> None:
    assert_readme_gives("examples.counter:Handler")
    with (
        ServerProcess("examples.counter:Handler") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert [client.get("/").text for _ in range(3)] == [
            "counter=0\n",
            "counter=1\n",
            "counter=2\n",
        ]


# basic, counter and wsgi_flask run with their README spec in their own tests (above and below)
@pytest.mark.parametrize(
    "spec, path, expected",
    [
        ("examples.websocket.app:Handler", "/", "<"),
        ("examples.dirserver.app:Handler", "/api/hello", '{"hello": "world"'),
        ("examples.fileserver:Handler", "/any/path", '"""Serve one file'),
    ],
)
def test_every_example_runs_with_the_spec_the_readme_gives(
    spec: str, path: str, expected: str
) -> None:
    assert_readme_gives(spec)
    with ServerProcess(spec) as server:
        response = httpx.get(server.url + path)
    assert response.status_code == 200
    assert response.text.startswith(expected)


def test_fileserver_serves_the_file_named_in_the_environment(tmp_path: Path) -> None:
    served = tmp_path / "hello.txt"
    served.write_text("from the environment\n")
    env = {"FILESERVER_PATH": str(served)}
    with ServerProcess("examples.fileserver:Handler", env=env) as server:
        response = httpx.get(server.url + "/whatever")
    assert response.text == "from the environment\n"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("how", ["script", "peregrine run"])
def test_wsgi_flask_example(how: str) -> None:
    if how == "script":
        server = ServerProcess(script=["examples/wsgi_flask.py"])
    else:
        assert_readme_gives("examples.wsgi_flask:app")
        server = ServerProcess("examples.wsgi_flask:app", "--threads", "2")
    with server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text == "Kawww from Flask\n"
        assert client.get("/hello/ada").json() == {"hello": "ada"}
        assert client.post("/echo", json=[1, 2]).json() == {"you_sent": [1, 2]}
        assert client.get("/stream").text == "".join(f"line {i}\n" for i in range(5))


def test_asgi_fastapi_example_serves_json_validates_and_echoes() -> None:
    pytest.importorskip("fastapi")  # in the test extra; not a runtime dependency
    from websockets.sync.client import connect

    with (
        ServerProcess("examples.asgi_fastapi:app") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/").json() == {"message": "Kawww"}
        created = client.post("/items", json={"name": "kite", "price": 2.5, "quantity": 4})
        assert created.json() == {"name": "kite", "total": 10.0}
        invalid = client.post("/items", json={"name": "kite"})
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["body", "price"]
        assert client.get("/items/7?q=x").json() == {"item_id": 7, "q": "x"}
        with connect(server.url.replace("http", "ws", 1) + "/ws") as ws:
            ws.send("hi")
            assert ws.recv() == "hi"
