"""The ``peregrine`` command: ``peregrine run MODULE:ATTR [options]``.

Every :class:`Config` field is a flag of the same name (``max_body_size`` -> ``--max-body-size``),
generated from the dataclass so the two can never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any

from . import __version__
from .config import Config
from .server import Server

_GROUP_TITLES = {
    "listen": "listening",
    "process": "processes",
    "timeouts": "timeouts (seconds)",
    "limits": "limits",
    "tls": "TLS",
    "proxy": "proxies",
    "websocket": "WebSocket",
    "logging": "responses and logging",
    "server": "server",
}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_int(text: str) -> int:
    return int(text, 0)  # 0o660 for permissions, 0x.. and plain decimal too


def add_config_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one ``--flag`` per :class:`Config` field, grouped as in the dataclass."""
    hints = typing.get_type_hints(Config)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(Config):
        if field.name in skip:
            continue
        group_name = field.metadata.get("group", "server")
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = parser.add_argument_group(
                _GROUP_TITLES.get(group_name, group_name)
            )
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        help_text = f"{field.metadata.get('help', '')} (default: {field.default!r})"
        if base is bool:
            group.add_argument(
                flag,
                dest=field.name,
                type=_parse_bool,
                nargs="?",
                const=True,
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=help_text,
            )
            continue
        parse = {int: _parse_int, float: float, str: str}[base]
        group.add_argument(
            flag,
            dest=field.name,
            type=parse,
            default=argparse.SUPPRESS,
            metavar=field.name.upper(),
            help=help_text,
        )


def _options(namespace: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(Config)}
    return {k: v for k, v in vars(namespace).items() if k in names}


def load_handler(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (the current directory is importable, as with ``python -m``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"error: expected MODULE:ATTR, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(f"error: module {module_name!r} has no attribute {attr!r}") from None
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peregrine",
        description="A simple, reliable, high-performance HTTP/1.1 and WebSocket server.",
    )
    parser.add_argument("--version", action="version", version=f"peregrine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="serve a handler: peregrine run MODULE:ATTR [options]")
    run.add_argument(
        "handler", metavar="MODULE:ATTR", help="the handler class (or function) to serve"
    )
    add_config_options(run)
    _add_static_command(commands)
    return parser


def _add_static_command(commands: Any) -> None:
    static = commands.add_parser("static", help="serve a directory: peregrine static DIR [options]")
    static.add_argument("directory", metavar="DIR", help="the directory to serve")
    files = static.add_argument_group("static files")
    files.add_argument(
        "--index",
        default="index.html",
        metavar="NAME",
        help="file served for a directory ('' = none) (default: 'index.html')",
    )
    files.add_argument(
        "--cache-control",
        default="no-cache",
        metavar="VALUE",
        help="Cache-Control of every file ('' = none) (default: 'no-cache')",
    )
    files.add_argument(
        "--show-hidden",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="serve dotfiles (default: False)",
    )
    files.add_argument(
        "--precompressed",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="serve NAME.br/NAME.gz to clients that accept them (default: True)",
    )
    add_config_options(static)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``peregrine`` command and of ``python -m peregrine``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        raise SystemExit(2)
    try:
        if args.command == "run":
            server = Server(load_handler(args.handler), **_options(args))
        else:
            from .util.static import make_static_handler

            if not os.path.isdir(args.directory):
                raise SystemExit(f"error: {args.directory!r} is not a directory")
            handler = make_static_handler(
                args.directory,
                index=args.index or None,
                cache_control=args.cache_control or None,
                show_hidden=args.show_hidden,
                precompressed=args.precompressed,
            )
            server = Server(handler, **_options(args))
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    server.start()


def run_example(handler: Any, argv: Sequence[str] | None = None, **defaults: Any) -> None:
    """Serve ``handler`` with the command line's options (``--port`` and every other flag).

    Used by the examples: ``python examples/basic.py --port 8080``.
    """
    parser = argparse.ArgumentParser(
        description=(handler.__doc__ or "").strip().split("\n")[0] or None
    )
    add_config_options(parser)
    options = {**defaults, **_options(parser.parse_args(argv))}
    try:
        server = Server(handler, **options)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    server.start()
