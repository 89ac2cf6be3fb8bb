"""The ``peregrine`` command: ``peregrine run MODULE:ATTR [options]``.

Every :class:`Config` field is a flag of the same name (``max_body_size`` -> ``--max-body-size``),
generated from the dataclass so the two can never disagree. Every flag can also come from the
environment as ``PEREGRINE_<FLAG>`` (``PEREGRINE_MAX_BODY_SIZE=10MB``), ``WEB_CONCURRENCY`` sets
the worker count as on the platforms that define it, and a flag on the command line wins over
both. ``--env-file FILE`` loads variables first (for the application, and for those settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import ssl
import sys
import traceback
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from ._build import describe as describe_build
from ._version import __version__
from .config import SIZE_FIELDS, Config
from .server import Server, StartupError

_GROUP_TITLES = {
    "listen": "listening",
    "process": "processes",
    "timeouts": "timeouts (seconds)",
    "limits": "limits (sizes in bytes, or with a unit: 64KiB, 10MB)",
    "tls": "TLS",
    "proxy": "proxies",
    "websocket": "WebSocket",
    "deploy": "deployment: health checks, draining, metrics",
    "http2": "HTTP/2",
    "logging": "responses and logging",
    "server": "server",
}
ENV_PREFIX = "PEREGRINE_"
#: set in the environment of the server process a ``--reload`` watcher starts
RELOADER_CHILD = "PEREGRINE_RELOADER_CHILD"
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line: ``error: --workers: expected an integer, got 'two'``."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_int(text: str) -> int:
    try:
        return int(text, 0)  # 0o660 for permissions, 0x.. and plain decimal too
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parse_size(text: str) -> int:
    """``"10MB"`` -> 10,000,000; ``"512KiB"`` -> 524,288; a plain integer is bytes.

    KB/MB/GB are powers of 1000 and KiB/MiB/GiB (and the bare K/M/G) powers of 1024; the case of
    the unit does not matter.
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 65536, 64KiB or 10MB, got {text!r}"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _parse_choice_lower(text: str) -> str:
    return text.lower()


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
            group.add_argument(
                "--no-" + flag[2:],
                dest=field.name,
                action="store_const",
                const=False,
                default=argparse.SUPPRESS,
                help=f"same as {flag} false",
            )
            continue
        if field.name in SIZE_FIELDS:
            parse: Any = parse_size
        elif field.name == "log_level":
            parse = _parse_choice_lower
        else:
            parse = {int: _parse_int, float: _parse_float, str: str}[base]
        group.add_argument(
            flag,
            dest=field.name,
            type=parse,
            default=argparse.SUPPRESS,
            metavar="SIZE" if field.name in SIZE_FIELDS else field.name.upper(),
            help=help_text,
        )


def _add_loading_options(parser: argparse.ArgumentParser, app: bool) -> None:
    """Options about loading the application: env file, import path, and the reloader."""
    group = parser.add_argument_group("application")
    group.add_argument(
        "--env-file",
        metavar="FILE",
        help="load KEY=VALUE lines into the environment first (variables already set win)",
    )
    if not app:
        return
    group.add_argument(
        "--app-dir",
        metavar="DIR",
        default=".",
        help="directory MODULE is imported from, put first on sys.path (default: '.')",
    )
    reload = parser.add_argument_group("development")
    reload.add_argument(
        "--reload",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="restart the server when a watched file changes (uses watchfiles when installed, "
        "else polls) (default: False)",
    )
    reload.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="directory to watch, repeatable (default: the current directory)",
    )
    reload.add_argument(
        "--reload-include",
        action="append",
        metavar="GLOB",
        help="file names to watch, repeatable (default: '*.py')",
    )
    reload.add_argument(
        "--reload-exclude",
        action="append",
        metavar="GLOB",
        help="file or directory names to ignore, repeatable (default: '.*', '__pycache__', "
        "'*.pyc', '*~', 'node_modules')",
    )


def _options(namespace: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(Config)}
    return {k: v for k, v in vars(namespace).items() if k in names}


# --- the environment ------------------------------------------------------------------------------


def load_env_file(path: str) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines from ``path`` into ``os.environ`` (set variables win); return them.

    Blank lines and ``#`` comments are skipped, ``export`` before a name is allowed, and a value
    in single or double quotes loses them. Raises ``OSError``/``ValueError`` naming the line.
    """
    loaded: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read --env-file {path!r}: {exc.strerror}") from None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise ValueError(f"--env-file {path!r}, line {number}: expected NAME=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        loaded[name] = value
        os.environ.setdefault(name, value)
    return loaded


def _from_environment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill the options not given on the command line from ``PEREGRINE_<FLAG>`` variables.

    ``WEB_CONCURRENCY`` stands for ``PEREGRINE_WORKERS`` when that is not set.
    """
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        if isinstance(action, argparse._StoreConstAction):
            continue  # a --no-FLAG: the FLAG's own action reads the variable
        if action.dest in args._given:
            continue  # the command line wins
        name = ENV_PREFIX + action.dest.upper()
        text = os.environ.get(name)
        if text is None and action.dest == "workers":
            name, text = "WEB_CONCURRENCY", os.environ.get("WEB_CONCURRENCY")
        if text is None:
            continue
        convert: Any = action.type or str
        try:
            if isinstance(action, argparse._AppendAction):
                separator = os.pathsep if action.dest == "reload_dir" else ","
                value: Any = [convert(part) for part in text.split(separator) if part]
            else:
                value = convert(text)
        except argparse.ArgumentTypeError as exc:
            parser.exit(2, f"error: {name}: {exc}\n")
        setattr(args, action.dest, value)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, then apply ``--env-file`` and the environment under the flags."""
    args = parser.parse_args(argv)
    command = _command_parser(parser, args)
    # what the command line itself set: options whose value differs from the default, and the
    # Config flags (suppressed unless given)
    given = {
        a.dest
        for a in command._actions
        if a.option_strings
        and a.dest in vars(args)
        and (a.default is argparse.SUPPRESS or getattr(args, a.dest) != a.default)
    }
    args._given = given
    env_file = getattr(args, "env_file", None) or os.environ.get(ENV_PREFIX + "ENV_FILE")
    if env_file:
        try:
            load_env_file(env_file)
        except (OSError, ValueError) as exc:
            parser.exit(2, f"error: {exc}\n")
    _from_environment(command, args)
    return args


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    command = getattr(args, "command", None)
    if command is None:
        return parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    return parser


# --- loading the application --------------------------------------------------------------------


def load_handler(spec: str, app_dir: str = ".") -> Any:
    """Import ``MODULE:ATTR``, with ``app_dir`` (the current directory) first on ``sys.path``.

    Exits with one line saying what is wrong (and a hint when it can guess the fix); an
    exception raised by the application's own code while importing is shown with its line
    first, then its traceback without the import machinery's frames.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"error: expected MODULE:ATTR, got {spec!r}{_hint(module_name, attr)}")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if module_name.endswith(".py"):
        raise SystemExit(
            f"error: {module_name!r} is a file name, not a module{_hint(module_name, attr)}"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise SystemExit(
                f"error: cannot import module {module_name!r}: {exc}{_hint(module_name, attr)}"
            ) from None
        _import_failed(module_name, exc)
    except Exception as exc:
        _import_failed(module_name, exc)
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(f"error: module {module_name!r} has no attribute {attr!r}") from None
    return target


def _hint(module_name: str, attr: str) -> str:
    """``; did you mean 'app:Handler'?`` for a file path given where a module name belongs."""
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        dotted = module_name.removesuffix(".py").replace(os.sep, ".").replace("/", ".")
        dotted = dotted.lstrip(".")
        return f"; did you mean '{dotted}:{attr or 'Handler'}'?"
    return ""


def _import_failed(module_name: str, exc: BaseException) -> NoReturn:
    """Report an exception raised while importing the application, then exit with status 1."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}, line {exc.lineno})"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if not _machinery(f.filename)]
        if own:
            where = f" ({own[-1].filename}, line {own[-1].lineno})"
    summary = f"error: importing {module_name!r} failed: {type(exc).__name__}: {exc}{where}"
    tb = traceback.TracebackException.from_exception(exc)
    tb.stack = traceback.StackSummary.from_list([f for f in tb.stack if not _machinery(f.filename)])
    sys.stderr.write(summary + "\n" + "".join(tb.format()))
    sys.stderr.flush()
    raise SystemExit(1)


def _machinery(filename: str) -> bool:
    """Frames of the import system and of this module: not the application's business."""
    return (
        "importlib" in filename and ("_bootstrap" in filename or filename.endswith("__init__.py"))
    ) or filename == __file__


# --- the command ----------------------------------------------------------------------------------


class _VersionLine(argparse.Action):
    """``--version``: one line, never wrapped (argparse's own version action wraps long text,
    and the build's description may be long: it can carry the reason a compile failed)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"peregrine {__version__} ({describe_build()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="peregrine",
        description="A simple, reliable, high-performance HTTP/1.1 and WebSocket server.",
        epilog="Every option also reads PEREGRINE_<OPTION> from the environment "
        "(PEREGRINE_PORT=8000); WEB_CONCURRENCY sets --workers; command-line flags win.",
    )
    parser.add_argument(
        "--version",
        action=_VersionLine,
        nargs=0,
        help="print the version and which build runs (compiled or pure Python, and why), then exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="serve a handler: peregrine run MODULE:ATTR [options]")
    run.add_argument(
        "handler", metavar="MODULE:ATTR", help="the handler class (or function) to serve"
    )
    _add_loading_options(run, app=True)
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
    _add_loading_options(static, app=False)
    add_config_options(static)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``peregrine`` command and of ``python -m peregrine``."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()
        raise SystemExit(2)
    options = _options(args)
    if args.command == "run" and args.reload and not os.environ.get(RELOADER_CHILD):
        from .reloader import Reloader

        watcher = Reloader(
            list(sys.argv[1:] if argv is None else argv),
            dirs=args.reload_dir or [os.getcwd()],
            include=args.reload_include,
            exclude=args.reload_exclude,
        )
        raise SystemExit(watcher.run())
    if os.environ.get(RELOADER_CHILD):
        options.setdefault("workers", 1)  # a development server: one process unless asked
    try:
        if args.command == "run":
            server = Server(load_handler(args.handler, args.app_dir), **options)
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
            server = Server(handler, **options)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    start(server)


def start(server: Server) -> None:
    """``server.start()``, turning a failure to start into one line and exit status 1."""
    try:
        server.start()
    except OSError as exc:
        _fail(exc.strerror if exc.strerror and exc.errno is not None else str(exc))
    except (ValueError, StartupError) as exc:
        _fail(str(exc))
    except ssl.SSLError as exc:
        _fail(f"TLS: {exc}")
    except RuntimeError as exc:  # the supervisor outside the main thread, and the like
        _fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(1) from None


def _fail(message: str) -> NoReturn:
    import logging

    logging.getLogger("peregrine").error("%s", message)
    raise SystemExit(1)


def run_example(handler: Any, argv: Sequence[str] | None = None, **defaults: Any) -> None:
    """Serve ``handler`` with the command line's options (``--port`` and every other flag).

    Used by the examples: ``python examples/basic.py --port 8080``.
    """
    parser = _Parser(description=(handler.__doc__ or "").strip().split("\n")[0] or None)
    add_config_options(parser)
    options = {**defaults, **_options(_parse(parser, argv))}
    try:
        server = Server(handler, **options)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    start(server)
