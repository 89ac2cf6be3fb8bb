"""The examples run as the README says: as scripts, and with ``peregrine run``.

(dirserver, fileserver, counter and websocket have deeper tests next to the features they show.)
"""

from __future__ import annotations

import httpx
import pytest

from .helpers import ServerProcess


@pytest.mark.parametrize("how", ["script", "peregrine run"])
def test_basic_answers_kawww(how: str) -> None:
    if how == "script":
        server = ServerProcess(script=["examples/basic.py"])
    else:
        server = ServerProcess("examples.basic:Handler")
    with server:
        response = httpx.get(server.url + "/anything?x=1")
        assert response.status_code == 200
        assert response.text == "Kawww\n"
        assert response.headers["content-type"] == "text/plain"


def test_counter_counts_up_from_zero() -> None:
    with (
        ServerProcess("examples.counter:Handler") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert [client.get("/").text for _ in range(3)] == [
            "counter=0\n",
            "counter=1\n",
            "counter=2\n",
        ]
