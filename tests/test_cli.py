"""The ``peregrine`` command: ``--help``, ``--version``, and options that map 1:1 to Config."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import peregrine
from peregrine import cli
from peregrine.config import Config

from .helpers import ServerProcess, read_response, run_peregrine

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return run_peregrine(*args, base_env=ENV, timeout=timeout)


def config_from(argv: list[str]) -> Config:
    args = cli.build_parser().parse_args(["run", "tests.apps:Hello", *argv])
    return Config(**cli._options(args))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class TestParsing:
    def test_every_config_field_has_a_flag(self) -> None:
        parser = cli.build_parser()
        subparsers = next(a for a in parser._actions if a.choices and "run" in a.choices)  # type: ignore[operator]
        text = subparsers.choices["run"].format_help()  # type: ignore[index]
        for field in dataclasses.fields(Config):
            assert flag(field.name) in text, field.name

    def test_no_flag_means_the_default(self) -> None:
        assert config_from([]) == Config()

    def test_options_map_to_config(self) -> None:
        config = config_from(
            [
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                "--workers",
                "1",
                "--keep-alive-timeout",
                "0.5",
                "--header-timeout",
                "2",
                "--body-timeout",
                "3",
                "--send-timeout",
                "4",
                "--max-body-size",
                "1000",
                "--max-request-line",
                "100",
                "--max-header-size",
                "2000",
                "--max-header-count",
                "10",
                "--max-connections",
                "7",
                "--access-log",
                "--log-level",
                "debug",
                "--server-header",
                "false",
                "--uds-permissions",
                "0o660",
            ]
        )
        assert config == Config(
            host="0.0.0.0",
            port=8080,
            workers=1,
            keep_alive_timeout=0.5,
            header_timeout=2.0,
            body_timeout=3.0,
            send_timeout=4.0,
            max_body_size=1000,
            max_request_line=100,
            max_header_size=2000,
            max_header_count=10,
            max_connections=7,
            access_log=True,
            log_level="debug",
            server_header=False,
            uds_permissions=0o660,
        )

    @pytest.mark.parametrize(
        "text, value",
        [
            ("true", True),
            ("1", True),
            ("yes", True),
            ("on", True),
            ("false", False),
            ("0", False),
            ("no", False),
            ("OFF", False),
        ],
    )
    def test_booleans(self, text: str, value: bool) -> None:
        assert config_from(["--access-log", text]).access_log is value

    def test_no_flag_turns_a_boolean_off(self) -> None:
        assert config_from(["--no-http2"]).http2 is False
        assert config_from([]).http2 is True
        assert config_from(["--http2", "false"]).http2 is False

    def test_bad_boolean(self) -> None:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["run", "x:y", "--access-log", "maybe"])

    def test_bad_number(self) -> None:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["run", "x:y", "--port", "eighty"])


class TestCommand:
    def test_version(self) -> None:
        result = run("--version")
        assert result.returncode == 0
        assert peregrine.__version__ in result.stdout

    def test_help(self) -> None:
        result = run("--help")
        assert result.returncode == 0
        assert "run" in result.stdout and "usage" in result.stdout.lower()

    def test_no_command_prints_help(self) -> None:
        result = run()
        assert result.returncode != 0
        assert "usage" in (result.stdout + result.stderr).lower()

    def test_invalid_value_names_the_field(self) -> None:
        result = run("run", "tests.apps:Hello", "--port", "70000")
        assert result.returncode != 0
        assert "Config.port" in result.stderr

    def test_invalid_value_in_process(self) -> None:
        with pytest.raises(SystemExit) as info:
            cli.main(["run", "tests.apps:Hello", "--keep-alive-timeout", "0"])
        assert "Config.keep_alive_timeout" in str(info.value.code)

    @pytest.mark.parametrize(
        "target, message",
        [
            ("nocolon", "MODULE:ATTR"),
            ("no_such_module_xyz:App", "no_such_module_xyz"),
            ("tests.apps:NoSuchHandler", "NoSuchHandler"),
        ],
    )
    def test_bad_target(self, target: str, message: str) -> None:
        with pytest.raises(SystemExit) as info:
            cli.load_handler(target)
        assert message in str(info.value.code)

    def test_bad_target_exits_non_zero(self) -> None:
        result = run("run", "no_such_module_xyz:App", "--port", "0")
        assert result.returncode != 0
        assert "no_such_module_xyz" in result.stderr

    def test_console_script_exists(self) -> None:
        script = Path(sys.executable).parent / "peregrine"
        assert script.exists()
        result = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0 and peregrine.__version__ in result.stdout

    def test_python_m_peregrine_run_serves(self) -> None:
        # ServerProcess starts servers exactly as ``python -m peregrine run MODULE:ATTR ...``
        with ServerProcess("tests.apps:Hello", real_process=True) as server:
            assert "uvloop" in server.output or "asyncio" in server.output
            assert "1 worker" in server.output
            with server.connect() as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body = read_response(sock)
            assert (status, body) == (200, b"Kawww\n")

    def test_module_importable_from_the_current_directory(self, tmp_path: Path) -> None:
        (tmp_path / "myapp_cli_test.py").write_text(
            "def app(req, resp):\n    resp.set_body(b'from cwd')\n"
        )
        with ServerProcess("myapp_cli_test:app", cwd=str(tmp_path), real_process=True) as server:
            with server.connect() as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock)[2] == b"from cwd"
