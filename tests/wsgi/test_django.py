"""Django (WSGI) on Peregrine, in both modes: query parameters, a form POST and its redirect."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ..helpers import ServerProcess

APP = "tests.wsgi.django_app:application"


@pytest.fixture(scope="module", params=["4", "0"], ids=["pool", "loop"])
def django_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--threads", request.param) as proc:
        yield proc


def test_query_parameters(django_server: ServerProcess) -> None:
    response = httpx.get(
        f"{django_server.url}/search/", params=[("q", "café au lait"), ("tag", "a"), ("tag", "b")]
    )
    assert response.status_code == 200
    assert response.json() == {
        "q": "café au lait",
        "tags": ["a", "b"],
        "path": "/search/",
        "script_name": "",
    }


def test_common_middleware_redirects_to_the_slash(django_server: ServerProcess) -> None:
    response = httpx.get(f"{django_server.url}/search?q=x")
    assert response.status_code == 301
    assert response.headers["location"] == "/search/?q=x"


def test_form_post_and_redirect(django_server: ServerProcess) -> None:
    response = httpx.post(f"{django_server.url}/form/", data={"name": "Zoë"})
    assert response.status_code == 302
    assert response.headers["location"] == "/hello/?name=Zo%C3%AB"  # Django's IRI to URI
    followed = httpx.post(f"{django_server.url}/form/", data={"name": "Ada"}, follow_redirects=True)
    assert followed.status_code == 200
    assert followed.text == "hello Ada"


def test_unknown_host_is_refused_by_django() -> None:
    with ServerProcess(APP) as server:
        response = httpx.get(f"{server.url}/search/", headers={"Host": "evil.example"})
    assert response.status_code == 400
