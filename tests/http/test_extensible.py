"""What handlers may do with ``req`` and ``resp`` beyond the documented fields (docs/api.md).

The same on both builds (the whole suite runs on each): in the compiled one ``Request`` and
``Headers`` are mypyc native classes and ``peregrine.Response`` a class written in Python on top
of a native one, and these tests pin down that handlers see no difference.
"""

from __future__ import annotations

import weakref

import httpx
import pytest

from peregrine import Headers, Request, Response

from ..helpers import ServerProcess


def make_request() -> Request:
    return Request("GET", b"/a", b"x=1", "1.1", [(b"Host", b"t")])


class TestResponseTakesAnything:
    def test_a_handler_may_set_and_read_its_own_attribute(self) -> None:
        resp = Response()
        resp.started = 1.5  # type: ignore[attr-defined]  # e.g. a middleware's timer
        assert resp.started == 1.5  # type: ignore[attr-defined]
        assert vars(resp)["started"] == 1.5
        assert (resp.status, resp.body) == (200, b"")

    def test_an_attribute_never_set_is_an_attribute_error(self) -> None:
        with pytest.raises(AttributeError):
            _ = Response().started  # type: ignore[attr-defined]

    def test_weak_references_work_and_die_with_the_response(self) -> None:
        resp = Response()
        ref = weakref.ref(resp)
        assert ref() is resp
        del resp  # freed at once (no cycle): no collector pass needed, none run
        assert ref() is None


class TestRequestTakesOnlyItsFields:
    def test_its_own_fields_may_be_replaced(self) -> None:
        req = make_request()
        req.body = b"changed"
        req.client = ("10.0.0.1", 1)
        assert (req.body, req.client) == (b"changed", ("10.0.0.1", 1))

    def test_another_attribute_is_refused(self) -> None:
        with pytest.raises(AttributeError):
            make_request().user = "alice"  # type: ignore[attr-defined]

    def test_no_weak_references(self) -> None:
        with pytest.raises(TypeError):
            weakref.ref(make_request())


class TestSubclasses:
    def test_a_request_subclass_keeps_its_fields_and_overrides(self) -> None:
        class Tagged(Request):
            tag = "default"

            @property
            def path(self) -> str:
                return "/tagged" + super().path

        req = Tagged("GET", b"/a", b"", "1.1", [])
        req.tag = "set"
        req.user = "alice"  # type: ignore[attr-defined]  # a subclass has a __dict__
        ref = weakref.ref(req)  # and weak references
        assert (req.tag, req.user, req.path, req.method, ref() is req) == (  # type: ignore[attr-defined]
            "set",
            "alice",
            "/tagged/a",
            "GET",
            True,
        )
        del req  # freed at once, without a collector pass
        assert ref() is None

    def test_a_response_subclass_overrides_a_method(self) -> None:
        class Lower(Response):
            def set_header(self, name: str | bytes, value: str | bytes | int) -> None:
                super().set_header(name, str(value).lower())

        resp = Lower()
        resp.set_header("X-A", "LOUD")
        resp.add_header("X-B", "Kept")
        assert resp.headers == [(b"X-A", b"loud"), (b"X-B", b"Kept")]

    def test_a_response_subclass_with_its_own_init(self) -> None:
        class Json(Response):
            def __init__(self, text: str) -> None:
                super().__init__()
                self.set_header("Content-Type", "application/json")
                self.body = text.encode()
                self.kind = "json"

        resp = Json('{"a": 1}')
        assert (resp.status, resp.body, resp.kind) == (200, b'{"a": 1}', "json")
        assert resp.headers == [(b"Content-Type", b"application/json")]

    def test_a_headers_subclass_works(self) -> None:
        class Counting(Headers):
            def get(self, name: str, default: str | None = None) -> str | None:
                self.reads = getattr(self, "reads", 0) + 1
                return super().get(name, default)

        headers = Counting([(b"Host", b"t")])
        assert (headers.get("host"), headers.get("host"), headers.reads) == ("t", "t", 2)


def test_a_served_response_takes_the_handlers_attributes() -> None:
    with ServerProcess("tests.apps:StashingHandler") as server:
        answer = httpx.get(server.url + "/", timeout=10)
    assert (answer.status_code, answer.text) == (200, "middleware True")
