"""Logging set-up: Python ``logging`` throughout, one readable line per event.

By default ``peregrine.*`` loggers write to stderr, with the level name in colour when stderr is
a terminal (and ``NO_COLOR`` is not set). ``log_config`` hands the whole set-up to a file instead:
a ``logging.config.dictConfig`` mapping in JSON, TOML or YAML (YAML when PyYAML is installed),
or a ``logging.config.fileConfig`` ``.ini`` file.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(message)s"


class ColourFormatter(logging.Formatter):
    """The default line format, with the level name coloured."""

    def format(self, record: logging.LogRecord) -> str:
        plain = record.levelname
        record.levelname = f"{_COLOURS.get(plain, '')}{plain}{_RESET}"
        try:
            return super().format(record)
        finally:
            record.levelname = plain


def wants_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def configure_logging(level: str, log_config: str | None = None) -> None:
    """Send ``peregrine.*`` loggers to stderr at ``level`` unless the application set up logging.

    With ``log_config`` the file configures logging instead (see the module docstring), and
    ``level`` is left to it.
    """
    if log_config is not None:
        load_log_config(log_config)
        return
    logger = logging.getLogger("peregrine")
    logger.setLevel(level.upper())
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = ColourFormatter(_FORMAT) if wants_colour(sys.stderr) else logging.Formatter(_FORMAT)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False


def load_log_config(path: str) -> None:
    """Configure logging from ``path`` (by its extension); ``ValueError`` says what is wrong."""
    import logging.config  # only with --log-config: a plain server start need not load it

    extension = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise ValueError(f"cannot read --log-config {path!r}: no such file")
    if extension in (".ini", ".cfg", ".conf"):
        try:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        except Exception as exc:  # configparser and logging raise many kinds
            raise ValueError(f"--log-config {path!r}: {type(exc).__name__}: {exc}") from None
        return
    config = _read_mapping(path, extension)
    if not isinstance(config, dict):
        raise ValueError(f"--log-config {path!r}: expected a mapping for logging.config.dictConfig")
    config.setdefault("version", 1)
    config.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ValueError(f"--log-config {path!r}: {exc}") from None


def _read_mapping(path: str, extension: str) -> Any:
    with open(path, "rb") as file:
        data = file.read()
    try:
        if extension == ".json":
            import json

            return json.loads(data)
        if extension == ".toml":
            return _toml().loads(data.decode("utf-8"))
        if extension in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                raise ValueError(
                    f"--log-config {path!r}: YAML needs PyYAML (pip install pyyaml); "
                    "JSON, TOML and .ini need nothing"
                ) from None
            try:
                return yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise ValueError(f"--log-config {path!r}: {exc}") from None
    except ValueError as exc:  # json, tomllib and the message above
        if str(exc).startswith("--log-config"):
            raise
        raise ValueError(f"--log-config {path!r}: {exc}") from None
    raise ValueError(
        f"--log-config {path!r}: unknown kind of file (expected .json, .toml, .yaml or .ini)"
    )


def _toml() -> Any:
    # a version check rather than try/except ImportError: mypy (python_version 3.10) follows it
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError("--log-config: TOML needs Python 3.11+ or tomli") from None
    return tomli
