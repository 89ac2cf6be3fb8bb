"""Failures to start say what went wrong and what to do, in one line, with exit status 1."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest

import peregrine
from peregrine import cli
from peregrine.config import Config
from peregrine.process.listeners import bind_error, bind_tcp, bind_unix
from peregrine.process.tls import make_ssl_context

from .helpers import ROOT, run_peregrine

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def peregrine_run(*args: str, cwd: Path | str = ROOT) -> subprocess.CompletedProcess[str]:
    return run_peregrine("run", *args, cwd=cwd, base_env=ENV)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("error:")]


class TestBinding:
    def test_port_in_use_names_the_address(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(OSError) as info:
                bind_tcp("127.0.0.1", port, 16)
        assert info.value.errno == errno.EADDRINUSE
        assert (
            f"cannot bind 127.0.0.1:{port}: address already in use (is another server running?)"
            in str(info.value)
        )

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_port_in_use_is_one_line_and_status_1(self, workers: str) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = peregrine_run("tests.apps:Hello", "--port", str(port), "--workers", workers)
        assert proc.returncode == 1
        assert error_lines(proc.stderr) == [proc.stderr.strip()], proc.stderr
        assert proc.stderr.strip().endswith(
            f"ERROR cannot bind 127.0.0.1:{port}: address already in use "
            "(is another server running?)"
        )
        assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr

    def test_privileged_port_says_why(self) -> None:
        # root may bind port 80 on this machine: the message is checked on the error itself
        message = str(bind_error(OSError(errno.EACCES, "Permission denied"), "0.0.0.0", 80))
        assert (
            "permission denied binding port 80 (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE)" in message
        )

    def test_unresolvable_host_is_named(self) -> None:
        proc = peregrine_run("tests.apps:Hello", "--host", "no-such-host.invalid", "--workers", "1")
        assert proc.returncode == 1
        assert "cannot resolve host 'no-such-host.invalid'" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_uds_in_missing_directory_names_the_path(self, tmp_path: Path) -> None:
        path = str(tmp_path / "nowhere" / "app.sock")
        with pytest.raises(OSError) as info:
            bind_unix(path, 16)
        assert f"cannot bind --uds {path!r}: the directory" in str(info.value)

    def test_uds_group_sets_the_socket_group(self, tmp_path: Path) -> None:
        import grp

        path = str(tmp_path / "app.sock")
        # a group other than the one the file would get anyway (root may pick any)
        mine = os.getgroups() if os.geteuid() else [g.gr_gid for g in grp.getgrall()]
        others = [gid for gid in mine if gid != os.getegid()]
        if not others:
            pytest.skip("this user belongs to one group only: no other group to give the socket")
        group = others[0]
        with bind_unix(path, 16, 0o660, grp.getgrgid(group).gr_name):
            info = os.stat(path)
            assert info.st_gid == group
            assert info.st_mode & 0o777 == 0o660

    def test_unknown_uds_group_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="no group named 'no-such-group-xyz'"):
            bind_unix(str(tmp_path / "app.sock"), 16, None, "no-such-group-xyz")


class TestTls:
    def test_missing_certfile(self, tmp_path: Path) -> None:
        config = Config(ssl_certfile=str(tmp_path / "nope.pem"))
        with pytest.raises(OSError, match=r"cannot read --ssl-certfile '.*nope.pem': no such file"):
            make_ssl_context(config)

    def test_certificate_without_key(self, tmp_path: Path) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost")
        certfile = tmp_path / "cert.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        with pytest.raises(ValueError) as info:
            make_ssl_context(Config(ssl_certfile=str(certfile)))
        assert str(info.value) == f"--ssl-keyfile missing for --ssl-certfile {str(certfile)!r}"

    def test_cli_says_it_in_one_line(self) -> None:
        proc = peregrine_run("tests.apps:Hello", "--ssl-certfile", "nope.pem", "--workers", "1")
        assert proc.returncode == 1
        assert proc.stderr.strip().endswith("cannot read --ssl-certfile 'nope.pem': no such file")


class TestTheApplication:
    def test_file_name_instead_of_module_gets_a_hint(self) -> None:
        with pytest.raises(SystemExit) as info:
            cli.load_handler("app.py:Handler")
        assert "did you mean 'app:Handler'?" in str(info.value.code)

    def test_path_instead_of_module_gets_a_hint(self) -> None:
        with pytest.raises(SystemExit) as info:
            cli.load_handler("examples/basic.py:Handler")
        assert "did you mean 'examples.basic:Handler'?" in str(info.value.code)

    def test_error_inside_the_app_is_shown_first_then_its_traceback(self, tmp_path: Path) -> None:
        (tmp_path / "brokenapp.py").write_text("import os\nvalue = undefined_name + 1\n")
        proc = peregrine_run("brokenapp:Handler", cwd=tmp_path)
        assert proc.returncode == 1
        lines = proc.stderr.splitlines()
        assert lines[0].startswith(
            "error: importing 'brokenapp' failed: NameError: name 'undefined_name' is not defined"
        )
        assert "brokenapp.py, line 2)" in lines[0]
        assert lines[1] == "Traceback (most recent call last):"
        assert "importlib" not in proc.stderr and "<frozen" not in proc.stderr
        assert 'brokenapp.py", line 2, in <module>' in proc.stderr

    def test_syntax_error_names_file_and_line(self, tmp_path: Path) -> None:
        (tmp_path / "syntaxapp.py").write_text("x = 1\ndef f(:\n")
        proc = peregrine_run("syntaxapp:Handler", cwd=tmp_path)
        assert proc.returncode == 1
        first = proc.stderr.splitlines()[0]
        assert first.startswith("error: importing 'syntaxapp' failed: SyntaxError")
        assert "syntaxapp.py, line 2)" in first

    def test_missing_dependency_of_the_app_is_an_import_failure(self, tmp_path: Path) -> None:
        (tmp_path / "depapp.py").write_text("import no_such_dependency_xyz\n")
        proc = peregrine_run("depapp:Handler", cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.startswith(
            "error: importing 'depapp' failed: ModuleNotFoundError: "
            "No module named 'no_such_dependency_xyz'"
        )

    def test_class_without_handle_request_is_refused(self) -> None:
        class NotAHandler:
            pass

        with pytest.raises(ValueError, match="NotAHandler has no handle_request"):
            peregrine.Server(NotAHandler)  # peregrine.app.AppError, a ValueError

    def test_cli_refuses_it_in_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "nohandle.py").write_text("class Handler:\n    pass\n")
        proc = peregrine_run("nohandle:Handler", cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr == (
            "error: class nohandle.Handler has no handle_request(req, resp) method, "
            "and is no ASGI or WSGI application either\n"
        )

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_init_raising_gives_the_same_summary_either_way(
        self, tmp_path: Path, workers: str
    ) -> None:
        (tmp_path / "initapp.py").write_text(
            "class Handler:\n"
            "    def __init__(self):\n"
            "        raise ValueError('no database')\n"
            "    def handle_request(self, req, resp):\n"
            "        pass\n"
        )
        proc = peregrine_run("initapp:Handler", "--port", "0", "--workers", workers, cwd=tmp_path)
        assert proc.returncode == 1
        assert (
            proc.stderr.strip()
            .splitlines()[-1]
            .endswith("ERROR no worker could start: ValueError: no database")
        )
        assert proc.stderr.count("no worker could start") == 1
        assert "serving on" not in proc.stderr


@pytest.mark.parametrize("value", [42, 4.2, None, ["a"], object()])
def test_set_body_refuses_what_is_not_bytes_or_text(value: object) -> None:
    response = peregrine.Response()
    with pytest.raises(TypeError, match=type(value).__name__):
        response.set_body(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body, sent",
    [(b"ab", b"ab"), (bytearray(b"ab"), b"ab"), (memoryview(b"ab"), b"ab"), ("é", "é".encode())],
)
def test_set_body_takes_bytes_like_and_text(body: object, sent: bytes) -> None:
    response = peregrine.Response()
    response.set_body(body)  # type: ignore[arg-type]
    assert response.body == sent
