"""Every snippet of README.md and docs/*.md runs as written.

- ``python`` blocks run (in a fresh interpreter, or a fork of the test process made to look like
  one, tests/forked.py; in a directory with a small ``public/``): as a module, not as ``__main__``, so a block that starts a server must guard it with
  ``if __name__ == "__main__":`` (else the run times out); a ``Handler`` it defines then answers
  ``GET /`` through ``peregrine.testing.Client`` without a 5xx.
- ``sh`` blocks: every ``peregrine`` command in them is parsed by the real command line (its
  option values validated by ``Config``), and its ``MODULE:ATTR`` imported unless the module is
  the reader's own (``app``); every ``python FILE`` names a file that exists.
- A block not meant to run says so on the line before its fence: ``<!-- not run: why -->``.
  Blocks of configuration or output (``ini``, ``nginx``, no language) are never run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from peregrine import cli
from peregrine.config import Config

from . import forked
from .helpers import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not run:.+-->")
NEVER_RUN_KINDS = {"ini", "nginx", ""}
#: module names that stand for the reader's own application in examples
READERS_MODULES = {"app", "cluster_app", "mysite.wsgi", "main"}  # the reader's own modules


@dataclass
class Snippet:
    path: Path
    line: int
    kind: str
    text: str
    marked_not_run: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for path in DOCUMENTS:
        lines = path.read_text().splitlines()
        index = 0
        while index < len(lines):
            fence = re.match(r"^```(\w*)\s*$", lines[index])
            if fence is None:
                index += 1
                continue
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            marked = index > 0 and bool(NOT_RUN.search(lines[index - 1]))
            text = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Snippet(path, index + 1, fence.group(1), text, marked))
            index = end + 1
    return found


ALL = snippets()
PYTHON = [s for s in ALL if s.kind == "python" and not s.marked_not_run]
SHELL = [s for s in ALL if s.kind == "sh" and not s.marked_not_run]

#: ``python driver.py SNIPPET [PATH...]``: the PATHs go where PYTHONPATH would put them
DRIVER = """
import runpy, sys
sys.path[1:1] = sys.argv[2:]
namespace = runpy.run_path(sys.argv[1], run_name="snippet")
handler = namespace.get("Handler")
if handler is not None:
    from peregrine.testing import Client
    with Client(handler) as client:
        response = client.get("/")
        assert response.status < 500, (response.status, response.text)
        print("GET / ->", response.status)
print("ran")
"""


def test_every_block_is_run_or_says_why_not() -> None:
    for snippet in ALL:
        assert snippet.kind in {"python", "sh"} | NEVER_RUN_KINDS or snippet.marked_not_run, (
            f"{snippet}: a ```{snippet.kind} block is neither run nor marked <!-- not run: ... -->"
        )
    assert len(PYTHON) >= 6 and len(SHELL) >= 8  # the collector finds the blocks


def run_python(snippet_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    (directory / "public").mkdir(exist_ok=True)
    (directory / "public" / "index.html").write_text("<h1>index</h1>\n")
    (directory / "public" / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (directory / "snippet.py").write_text(snippet_text)
    (directory / "driver.py").write_text(DRIVER)
    args = [str(directory / "snippet.py"), str(ROOT / "src"), str(ROOT)]
    if forked.forking_enabled():
        # a fork of this process: a new interpreter importing Peregrine cost ~0.2 s of CPU per
        # snippet, the fork ~0.03 s
        return forked.run(args, cwd=str(directory), env=os.environ, timeout=30, script="driver.py")
    return subprocess.run(
        [sys.executable, "driver.py", *args],
        cwd=str(directory),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("snippet", PYTHON, ids=str)
def test_python_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    try:
        result = run_python(snippet.text, tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{snippet} did not finish: does it start a server when imported?")
    assert result.returncode == 0, f"{snippet}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.endswith("ran\n")


def commands(text: str) -> list[list[str]]:
    """The commands of a shell block, one per line (continuations joined, comments dropped)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        for part in re.split(r"&&|;|(?<![&])&(?!&)", line):
            words = shlex.split(part, comments=True)
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words.pop(0)  # VAR=value before the command
            if words:
                found.append(words)
    return found


@pytest.mark.parametrize("snippet", SHELL, ids=str)
def test_shell_snippet_commands_are_valid(snippet: Snippet) -> None:
    for words in commands(snippet.text):
        program = os.path.basename(words[0])
        if program == "peregrine":
            check_peregrine_command(snippet, words[1:])
        elif program.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), f"{snippet}: no file {words[1]}"


def check_peregrine_command(snippet: Snippet, argv: list[str]) -> None:
    try:
        args = cli._parse(cli.build_parser(), argv)
    except SystemExit as exc:
        if exc.code == 0 and argv in (["--version"], ["--help"]):
            return  # argparse printed the answer and exits 0
        pytest.fail(f"{snippet}: `peregrine {' '.join(argv)}` does not parse ({exc.code})")
    if getattr(args, "command", None) is None:
        return  # --version, --help
    Config(**cli._options(args))  # the values are valid
    if args.command == "run" and args.handler.partition(":")[0] not in READERS_MODULES:
        assert cli.load_handler(args.handler) is not None


def test_static_snippet_shows_the_redirect_it_describes(tmp_path: Path) -> None:
    [snippet] = [s for s in PYTHON if 'prefix="/static/"' in s.text]
    check = """
from peregrine.testing import Client
with Client(Handler) as client:
    r = client.get("/static")
    assert (r.status, r.headers["location"]) == (301, "/static/"), r.status
    assert client.get("/static/").text == "<h1>index</h1>\\n"
    assert client.get("/favicon.ico").content == b"\\x00\\x00\\x01\\x00"
    assert client.get("/elsewhere").text == "dynamic page"
"""
    result = run_python(snippet.text + check, tmp_path)
    assert result.returncode == 0, result.stderr


def test_api_in_one_screen_does_not_start_a_second_server(tmp_path: Path) -> None:
    [snippet] = [s for s in PYTHON if s.path.name == "README.md" and "greeting" in s.text]
    (tmp_path / "oneScreen.py").write_text(snippet.text)
    args = cli._parse(cli.build_parser(), ["run", "oneScreen:Handler"])
    sys.path.insert(0, str(tmp_path))
    try:
        handler = cli.load_handler(args.handler, str(tmp_path))  # would block if unguarded
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("oneScreen", None)
    assert hasattr(handler, "handle_request")
