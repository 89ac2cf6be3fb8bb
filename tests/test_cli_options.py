"""Options from the command line, the environment and an env file; sizes; one-line errors."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from peregrine import cli
from peregrine.config import Config

from .helpers import ROOT, ServerProcess, run_peregrine


def options(argv: list[str], command: str = "run") -> dict[str, Any]:
    target = ["tests.apps:Hello"] if command == "run" else [str(ROOT)]
    args = cli._parse(cli.build_parser(), [command, *target, *argv])
    return cli._options(args)


def parse(argv: list[str]) -> argparse.Namespace:
    return cli._parse(cli.build_parser(), ["run", "tests.apps:Hello", *argv])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PEREGRINE_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_peregrine(*args, env=env)


class TestEnvironment:
    def test_every_option_reads_its_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PEREGRINE_PORT", "8123")
        monkeypatch.setenv("PEREGRINE_WORKERS", "4")
        monkeypatch.setenv("PEREGRINE_ACCESS_LOG", "true")
        monkeypatch.setenv("PEREGRINE_KEEP_ALIVE_TIMEOUT", "2.5")
        monkeypatch.setenv("PEREGRINE_MAX_BODY_SIZE", "2MiB")
        assert options([]) == {
            "port": 8123,
            "workers": 4,
            "access_log": True,
            "keep_alive_timeout": 2.5,
            "max_body_size": 2 * 1024 * 1024,
        }

    def test_the_command_line_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PEREGRINE_PORT", "8123")
        assert options(["--port", "9000"])["port"] == 9000

    def test_web_concurrency_sets_the_workers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WEB_CONCURRENCY", "3")
        assert options([])["workers"] == 3
        monkeypatch.setenv("PEREGRINE_WORKERS", "5")
        assert options([])["workers"] == 5
        assert options(["--workers", "1"])["workers"] == 1

    def test_options_of_static_and_of_loading_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PEREGRINE_INDEX", "home.html")
        monkeypatch.setenv("PEREGRINE_PORT", "8124")
        args = cli._parse(cli.build_parser(), ["static", str(ROOT)])
        assert args.index == "home.html" and args.port == 8124
        monkeypatch.setenv("PEREGRINE_APP_DIR", "src")
        monkeypatch.setenv("PEREGRINE_RELOAD_DIR", os.pathsep.join(["a", "b"]))
        args = parse([])
        assert args.app_dir == "src" and args.reload_dir == ["a", "b"]

    def test_bad_variable_is_one_line(self) -> None:
        result = run_cli("run", "tests.apps:Hello", env={"PEREGRINE_WORKERS": "two"})
        assert result.returncode == 2
        assert result.stderr == "error: PEREGRINE_WORKERS: expected an integer, got 'two'\n"


class TestEnvFile:
    def test_loads_variables_for_the_app_and_the_options(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env_file = tmp_path / ".env"
        env_file.write_text(
            "# settings\n"
            "export DATABASE_URL='postgres://db/app'\n"
            'GREETING="hello there"\n'
            "\n"
            "PEREGRINE_PORT=8125\n"
            "ALREADY_SET=from-file\n"
        )
        monkeypatch.setenv("ALREADY_SET", "from-environment")
        for name in ("DATABASE_URL", "GREETING"):
            monkeypatch.delenv(name, raising=False)
        try:
            assert options(["--env-file", str(env_file)]) == {"port": 8125}
            assert os.environ["DATABASE_URL"] == "postgres://db/app"
            assert os.environ["GREETING"] == "hello there"
            assert os.environ["ALREADY_SET"] == "from-environment"
        finally:
            for name in ("DATABASE_URL", "GREETING"):
                os.environ.pop(name, None)

    def test_bad_line_is_named(self, tmp_path: Path) -> None:
        env_file = tmp_path / ".env"
        env_file.write_text("GOOD=1\nthis line is wrong\n")
        result = run_cli("run", "tests.apps:Hello", "--env-file", str(env_file))
        assert result.returncode == 2
        assert (
            result.stderr == f"error: --env-file {str(env_file)!r}, line 2: expected NAME=VALUE\n"
        )

    def test_missing_file_is_named(self, tmp_path: Path) -> None:
        result = run_cli("run", "tests.apps:Hello", "--env-file", str(tmp_path / "nope.env"))
        assert result.returncode == 2
        assert "cannot read --env-file" in result.stderr and "nope.env" in result.stderr


class TestValues:
    def test_bad_integer_is_one_line(self) -> None:
        result = run_cli("run", "tests.apps:Hello", "--workers", "two")
        assert result.returncode == 2
        assert result.stderr == (
            "error: --workers: expected an integer, got 'two' (see peregrine run --help)\n"
        )

    def test_bad_number_is_one_line(self) -> None:
        result = run_cli("run", "tests.apps:Hello", "--keep-alive-timeout", "soon")
        assert result.stderr.splitlines() == [
            "error: --keep-alive-timeout: expected a number, got 'soon' (see peregrine run --help)"
        ]

    @pytest.mark.parametrize(
        "text, size",
        [
            ("65536", 65536),
            ("10MB", 10_000_000),
            ("10mb", 10_000_000),
            ("512KiB", 512 * 1024),
            ("1.5MiB", 1536 * 1024),
            ("64k", 64 * 1024),
            ("2GB", 2_000_000_000),
            ("1GiB", 1024**3),
            ("100B", 100),
        ],
    )
    def test_sizes(self, text: str, size: int) -> None:
        assert cli.parse_size(text) == size
        assert options(["--max-body-size", text])["max_body_size"] == size

    @pytest.mark.parametrize("text", ["ten", "10XB", "-1MB", "MB", ""])
    def test_bad_sizes(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a size"):
            cli.parse_size(text)

    def test_log_level_in_any_case(self) -> None:
        assert options(["--log-level", "DEBUG"])["log_level"] == "debug"
        assert options(["--log-level", "Warning"])["log_level"] == "warning"

    def test_access_log_format_implies_the_access_log(self) -> None:
        config = Config(**options(["--access-log-format", "{status} {path}"]))
        assert config.access_log is True
        assert Config(access_log_json=True).access_log is True

    def test_unknown_access_log_field_is_named(self) -> None:
        with pytest.raises(ValueError, match=r"unknown field \{colour\}"):
            Config(access_log_format="{status} {colour}")


def test_app_dir_is_where_the_app_is_imported_from(tmp_path: Path) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "appdirapp.py").write_text(
        "def handler(req, resp):\n    resp.set_body(b'from app-dir')\n"
    )
    with ServerProcess("appdirapp:handler", "--app-dir", "service", cwd=str(tmp_path)) as server:
        assert httpx.get(server.url + "/").text == "from app-dir"


@pytest.mark.parametrize("workers", [1, 2])
def test_pid_file_holds_the_server_pid_while_it_runs(tmp_path: Path, workers: int) -> None:
    pid_file = tmp_path / "server.pid"
    server = ServerProcess("tests.apps:Hello", "--pid-file", str(pid_file), workers=workers)
    try:
        assert pid_file.read_text() == f"{server.proc.pid}\n"
    finally:
        assert server.stop() == 0
    assert not pid_file.exists()
