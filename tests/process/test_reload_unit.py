"""Where a handler is imported from again on SIGHUP (peregrine.process.reload), sans processes."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from peregrine.process import reload
from peregrine.process.reload import ReloadTarget, find_reload_target, load_fresh

from . import apps


class Nested:
    class Handler:
        def handle_request(self, req: object, resp: object) -> None:
            pass


def function_handler(req: object, resp: object) -> None:
    pass


INSTANCE = apps.Pid()


def test_class_function_and_nested_class_by_qualname() -> None:
    assert find_reload_target(apps.Pid) == ReloadTarget("tests.process.apps", ("Pid",))
    assert find_reload_target(function_handler) == ReloadTarget(__name__, ("function_handler",))
    assert find_reload_target(Nested.Handler) == ReloadTarget(__name__, ("Nested", "Handler"))


def test_instance_by_the_name_it_is_bound_to() -> None:
    # its class lives in another module: the binding is found among the application's modules
    assert find_reload_target(INSTANCE) == ReloadTarget(__name__, ("INSTANCE",))


def test_local_objects_are_not_reloadable() -> None:
    assert find_reload_target(lambda req, resp: None) is None
    assert find_reload_target(apps.Pid()) is None  # bound nowhere at module level


def test_load_fresh_reads_the_file_again(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "freshapp.py").write_text(
        "class Handler:\n    VERSION = 1\n\nhandler = Handler()\n"
    )
    # (not monkeypatch.syspath_prepend: it trips over the pkg_resources stand-in that kosoku,
    # the Autobahn runner, leaves in sys.modules when tests/ws runs first)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    importlib.invalidate_caches()
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    # purging every application module would purge the tests' own here: forget just this one
    monkeypatch.setattr(
        reload, "purge_application_modules", lambda: sys.modules.pop("freshapp", None)
    )
    import freshapp  # type: ignore[import-not-found]

    target = find_reload_target(freshapp.handler)
    assert target == ReloadTarget("freshapp", ("handler",))
    (tmp_path / "freshapp.py").write_text(
        "class Handler:\n    VERSION = 2\n\nhandler = Handler()\n"
    )
    try:
        assert load_fresh(target).VERSION == 2
    finally:
        sys.modules.pop("freshapp", None)


def test_module_without_the_attribute_any_more_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reload, "purge_application_modules", lambda: None)
    module = types.ModuleType("peregrine_gone_app")
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(AttributeError):
            load_fresh(ReloadTarget("peregrine_gone_app", ("Handler",)))
    finally:
        sys.modules.pop(module.__name__, None)
