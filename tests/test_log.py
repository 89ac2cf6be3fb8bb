"""Logging set-up: --log-config files of every kind, colours on a terminal only."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from peregrine.log import ColourFormatter, configure_logging, load_log_config, wants_colour

from .helpers import ServerProcess


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("", "peregrine", "peregrine.access", "myapp")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def dict_config(log_file: Path) -> dict[str, object]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "plain",
            }
        },
        "loggers": {"myapp": {"handlers": ["file"], "level": "INFO"}},
    }


def toml_text(log_file: Path) -> str:
    return f"""version = 1
[formatters.plain]
format = "%(name)s|%(levelname)s|%(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = "{log_file}"
formatter = "plain"
[loggers.myapp]
handlers = ["file"]
level = "INFO"
"""


INI = """[loggers]
keys=root,myapp
[handlers]
keys=file
[formatters]
keys=plain
[logger_root]
handlers=
[logger_myapp]
qualname=myapp
handlers=file
level=INFO
[handler_file]
class=FileHandler
args=({filename!r},)
formatter=plain
[formatter_plain]
format=%(name)s|%(levelname)s|%(message)s
"""


@pytest.mark.parametrize("kind", ["json", "toml", "yaml", "ini"])
def test_log_config_files(tmp_path: Path, kind: str) -> None:
    log_file = tmp_path / "app.log"
    path = tmp_path / f"logging.{kind}"
    if kind == "json":
        path.write_text(json.dumps(dict_config(log_file)))
    elif kind == "toml":
        path.write_text(toml_text(log_file))
    elif kind == "yaml":
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(dict_config(log_file)))
    else:
        path.write_text(INI.format(filename=str(log_file)))
    configure_logging("info", str(path))
    logging.getLogger("myapp").info("configured by %s", kind)
    for handler in logging.getLogger("myapp").handlers:
        handler.flush()
    assert log_file.read_text() == f"myapp|INFO|configured by {kind}\n"


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("missing.json", None, "no such file"),
        ("bad.json", "{not json", "bad.json"),
        ("list.json", "[1, 2]", "expected a mapping"),
        ("bad.toml", "= nope", "bad.toml"),
        ("conf.xml", "<x/>", "unknown kind of file"),
        ("broken.json", '{"version": 1, "handlers": {"h": {"class": "no.such.Class"}}}', "broken"),
    ],
)
def test_bad_log_config_says_what(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_log_config(str(path))


def test_log_config_from_the_command_line(tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "plain",
            },
            "err": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
        "loggers": {
            "peregrine": {"handlers": ["err"], "level": "INFO", "propagate": False},
            "peregrine.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    with ServerProcess(
        "tests.apps:Hello", "--log-config", str(path), "--access-log-format", "{method} {status}"
    ) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while sock.recv(4096):
                pass
        assert "peregrine serving on" not in server.output  # our own format: "peregrine ..."
        assert server.wait_for_line(r"^peregrine peregrine \S+ serving on", 1)
    assert log_file.read_text() == "peregrine.access GET 200\n"


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not wants_colour(io.StringIO())
    primary, secondary = os.openpty()
    try:
        with open(secondary, "w", closefd=False) as terminal:
            assert wants_colour(terminal)
            monkeypatch.setenv("NO_COLOR", "1")
            assert not wants_colour(terminal)
    finally:
        os.close(primary)
        os.close(secondary)
    read, write = os.pipe()
    try:
        with open(write, "w", closefd=False) as pipe:
            assert not wants_colour(pipe)
    finally:
        os.close(read)
        os.close(write)


def test_colour_formatter_colours_the_level_only() -> None:
    record = logging.LogRecord("peregrine", logging.WARNING, __file__, 1, "careful", None, None)
    line = ColourFormatter("%(levelname)s %(message)s").format(record)
    assert line == "\x1b[33mWARNING\x1b[0m careful"
    assert record.levelname == "WARNING"  # other handlers see it plain


def test_server_output_to_a_pipe_has_no_colour() -> None:
    with ServerProcess("tests.apps:Hello") as server:
        assert "\x1b[" not in server.output
