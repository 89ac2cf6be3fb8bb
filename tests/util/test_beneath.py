"""Opening files beneath a root (``peregrine.util.beneath``): symlinks inside work, nothing outside, races included.

The races are played deterministically: an attacker's move (swap a file or a directory for
a symlink to a secret outside the root) is made just before the n-th file-system call of a
lookup, for every n the lookup makes, so every window between two calls is tried.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from peregrine.util import beneath
from peregrine.util.beneath import Entry, Tree

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")

SECRET = b"TOP SECRET\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """``tmp/root`` (the tree) next to ``tmp/outside`` (secrets). Returns the root."""
    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "sub" / "page.txt").write_bytes(b"page\n")
    (root / "sub" / "deep" / "leaf.txt").write_bytes(b"leaf\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hello.txt").write_bytes(SECRET)
    (outside / "page.txt").write_bytes(SECRET)
    (outside / "leaf.txt").write_bytes(SECRET)
    (outside / "deep").mkdir()
    (outside / "deep" / "leaf.txt").write_bytes(SECRET)
    # symlinks that stay inside
    os.symlink("hello.txt", root / "rel-link.txt")
    os.symlink(root / "hello.txt", root / "abs-link.txt")
    os.symlink("rel-link.txt", root / "chain.txt")
    os.symlink("sub", root / "sub-link")
    os.symlink("../hello.txt", root / "sub" / "up.txt")
    os.symlink(".", root / "self")
    os.symlink("..", root / "sub" / "root")
    # symlinks that lead out, or nowhere
    os.symlink(outside / "hello.txt", root / "out.txt")
    os.symlink("../outside", root / "out-dir")
    os.symlink("nowhere.txt", root / "dangling.txt")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    return root


def _read(tree: Tree, path: str) -> bytes | None:
    """The bytes of ``path`` (``a/b.txt``) opened beneath the tree; None if it cannot be."""
    *dirs, name = path.split("/")
    parent = tree.open_dir(tuple(dirs))
    if parent is None:
        return None
    try:
        entry = tree.open(parent, name)
    finally:
        parent.close()
    return _content(entry)


def _content(entry: Entry | None) -> bytes | None:
    if entry is None:
        return None
    try:
        if stat.S_ISDIR(entry.st.st_mode):
            return b"<dir>"
        assert entry.fd is not None
        return os.pread(entry.fd, 1000, 0)
    finally:
        if entry.fd is not None:
            os.close(entry.fd)


@pytest.fixture(params=["race-free", "paths"] if beneath.RACE_FREE else ["paths"])
def tree(request: pytest.FixtureRequest, site: Path) -> Tree:
    """The tree, walked descriptor by descriptor, and the way Windows does it (paths)."""
    return Tree(os.path.realpath(site), race_free=request.param == "race-free")


@pytest.mark.parametrize(
    "path, expected",
    [
        ("hello.txt", b"hello\n"),
        ("sub/page.txt", b"page\n"),
        ("sub/deep/leaf.txt", b"leaf\n"),
        ("sub", b"<dir>"),
        ("missing.txt", None),
        ("sub/missing/leaf.txt", None),
        ("hello.txt/more", None),  # a file is no directory
        # symlinks that stay inside are followed
        ("rel-link.txt", b"hello\n"),
        ("abs-link.txt", b"hello\n"),
        ("chain.txt", b"hello\n"),
        ("sub-link/page.txt", b"page\n"),
        ("sub-link/deep/leaf.txt", b"leaf\n"),
        ("sub-link", b"<dir>"),
        ("sub/up.txt", b"hello\n"),
        ("self/self/sub/page.txt", b"page\n"),
        ("self", b"<dir>"),
        ("sub/root", b"<dir>"),
        # and nothing else
        ("out.txt", None),
        ("out-dir/hello.txt", None),
        ("out-dir", None),
        ("dangling.txt", None),
        ("loop-a", None),
        ("loop-a/x", None),
    ],
)
def test_lookup(tree: Tree, path: str, expected: bytes | None) -> None:
    assert _read(tree, path) == expected


def test_entry_segments_are_free_of_links(site: Path) -> None:
    tree = Tree(os.path.realpath(site))
    parent = tree.open_dir(("sub-link",))
    assert parent is not None and parent.segments == ("sub",)
    entry = tree.open(parent, "up.txt")
    parent.close()
    assert entry is not None and entry.segments == ("hello.txt",)
    assert entry.fd is not None
    os.close(entry.fd)


# --------------------------------------------------------------------------------------------
# races: the attacker moves just before the n-th call


def _attack_at(monkeypatch: pytest.MonkeyPatch, n: int, move: Callable[[], None]) -> list[int]:
    """Make ``move()`` happen just before the n-th call of os.open / os.stat / realpath."""
    calls = [0]

    def wrap(real: Callable[..., object]) -> Callable[..., object]:
        def racing(*args: object, **kwargs: object) -> object:
            calls[0] += 1
            if calls[0] == n:
                move()
            return real(*args, **kwargs)

        return racing

    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(os, "stat", wrap(os.stat))
    monkeypatch.setattr(os.path, "realpath", wrap(os.path.realpath))
    return calls


def _swap_file(site: Path, name: str) -> Callable[[], None]:
    def move() -> None:
        os.replace(site / name, site.parent / f"moved-{name.replace('/', '-')}")
        os.symlink(site.parent / "outside" / os.path.basename(name), site / name)

    return move


def _swap_dir(site: Path, name: str) -> Callable[[], None]:
    def move() -> None:
        os.replace(site / name, site.parent / "moved-dir")
        os.symlink(site.parent / "outside", site / name)

    return move


def _retarget_link(site: Path, name: str) -> Callable[[], None]:
    def move() -> None:  # an inside link made to point out
        os.remove(site / name)
        os.symlink(site.parent / "outside" / "hello.txt", site / name)

    return move


RACES = [
    ("hello.txt", _swap_file, "hello.txt"),
    ("sub/page.txt", _swap_file, "sub/page.txt"),
    ("sub/page.txt", _swap_dir, "sub"),
    ("sub/deep/leaf.txt", _swap_dir, "sub"),
    ("sub/deep/leaf.txt", _swap_dir, "sub/deep"),
    ("rel-link.txt", _retarget_link, "rel-link.txt"),
    ("chain.txt", _retarget_link, "rel-link.txt"),
    ("sub-link/page.txt", _swap_dir, "sub"),
]


@pytest.mark.skipif(not beneath.RACE_FREE, reason="the path-based fallback is not race-free")
@pytest.mark.parametrize(
    "path, attack, victim", RACES, ids=[f"{p}:{a.__name__}:{v}" for p, a, v in RACES]
)
def test_no_race_leads_out(
    site: Path, monkeypatch: pytest.MonkeyPatch, path: str, attack, victim: str
) -> None:  # type: ignore[no-untyped-def]
    # How many calls does the lookup make undisturbed? Then attack before each of them.
    calls = _attack_at(monkeypatch, 0, lambda: None)
    tree = Tree(os.path.realpath(site))
    assert _read(tree, path) not in (None, SECRET)
    total = calls[0]
    monkeypatch.undo()
    assert total >= 2
    for n in range(1, total + 2):
        backup = site.parent / "backup"
        shutil.copytree(site, backup, symlinks=True)
        try:
            _attack_at(monkeypatch, n, attack(site, victim))
            got = _read(tree, path)
            monkeypatch.undo()
            assert got != SECRET, f"the secret was served when the attacker moved before call {n}"
        finally:
            monkeypatch.undo()
            shutil.rmtree(site)
            os.rename(backup, site)
            for moved in site.parent.glob("moved-*"):
                shutil.rmtree(
                    moved
                ) if moved.is_dir() and not moved.is_symlink() else moved.unlink()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_no_descriptor_leaks(site: Path) -> None:
    tree = Tree(os.path.realpath(site))
    paths = [
        "hello.txt",
        "sub/deep/leaf.txt",
        "sub-link",
        "out-dir/hello.txt",
        "loop-a/x",
        "missing",
        "chain.txt",
    ]
    for path in paths:  # warm up (imports, caches)
        _read(tree, path)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        for path in paths:
            _read(tree, path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_race_free_where_the_platform_allows() -> None:
    if sys.platform.startswith(("linux", "darwin", "freebsd")):
        assert beneath.RACE_FREE
