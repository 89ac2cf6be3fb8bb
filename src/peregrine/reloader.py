"""``--reload``: restart the server whenever a watched source file changes.

The ``peregrine`` process becomes a watcher: it runs the server as a child process (the same
command line, in a fresh interpreter, so every module is imported anew) and watches the
directories. On a change it stops the child gracefully (SIGTERM) and starts a new one. A child
that cannot start (a syntax error just saved) has printed why and exited; the watcher goes on
watching, and the next change starts it again.

Watching uses the ``watchfiles`` package when it is installed (``pip install
'peregrine[reload]'``: the kernel tells it about changes, no scanning), else a poll of
modification times in the standard library (every 0.5 s; plenty for a source tree, costly for a
huge one).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

log = logging.getLogger("peregrine")

DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE = (".*", "__pycache__", "*.pyc", "*~", "node_modules")
POLL_INTERVAL = 0.5
# how long a stopping child gets before it is killed (it serves a development client or two)
_STOP_TIMEOUT = 10.0


class FileFilter:
    """Which paths count: a name matching an include glob, and no part matching an exclude glob.

    Globs match a file's name, or its path relative to a watched directory (``src/*.py``).
    """

    def __init__(
        self,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        self.include = tuple(include or DEFAULT_INCLUDE)
        self.exclude = tuple(exclude or DEFAULT_EXCLUDE)

    def excluded_dir(self, name: str) -> bool:
        """True for a directory not to descend into (``.git``, ``__pycache__``...)."""
        return any(fnmatch.fnmatch(name, glob) for glob in self.exclude)

    def matches(self, path: str, root: str) -> bool:
        relative = os.path.relpath(path, root)
        parts = relative.split(os.sep)
        if any(fnmatch.fnmatch(part, glob) for part in parts for glob in self.exclude):
            return False
        if any(fnmatch.fnmatch(relative, glob) for glob in self.exclude):
            return False
        name = parts[-1]
        return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(relative, g) for g in self.include)


class PollingWatcher:
    """Finds changes by comparing modification times (the standard-library fallback)."""

    def __init__(
        self, dirs: Iterable[str], file_filter: FileFilter, interval: float = POLL_INTERVAL
    ) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        self.filter = file_filter
        self.interval = interval
        self.snapshot = self.scan()

    def scan(self) -> dict[str, float]:
        """``path -> mtime`` of every matching file under the watched directories."""
        found: dict[str, float] = {}
        for root in self.dirs:
            for directory, subdirs, files in os.walk(root):
                subdirs[:] = [d for d in subdirs if not self.filter.excluded_dir(d)]
                for name in files:
                    path = os.path.join(directory, name)
                    if not self.filter.matches(path, root):
                        continue
                    try:
                        found[path] = os.stat(path).st_mtime_ns / 1e9
                    except OSError:
                        pass  # removed between the listing and the stat
        return found

    def wait(self, stop: threading.Event) -> list[str]:
        """Block until something changes (return the paths) or ``stop`` is set (return [])."""
        while not stop.wait(self.interval):
            current = self.scan()
            if current != self.snapshot:
                changed = sorted(
                    path
                    for path in current.keys() | self.snapshot.keys()
                    if current.get(path) != self.snapshot.get(path)
                )
                self.snapshot = current
                return changed
        return []


class WatchfilesWatcher:
    """Finds changes with the ``watchfiles`` package (inotify, FSEvents...)."""

    def __init__(self, dirs: Iterable[str], file_filter: FileFilter) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        self.filter = file_filter
        self._changes: Iterator[set[tuple[Any, str]]] | None = None

    def _accepts(self, change: object, path: str) -> bool:
        return any(
            path.startswith(root + os.sep) and self.filter.matches(path, root) for root in self.dirs
        )

    def wait(self, stop: threading.Event) -> list[str]:
        """Block until something changes (return the paths) or ``stop`` is set (return [])."""
        import watchfiles

        changes = self._changes
        if changes is None:
            changes = self._changes = watchfiles.watch(
                *self.dirs,
                watch_filter=self._accepts,
                stop_event=stop,
                yield_on_timeout=False,
                raise_interrupt=False,
            )
        for batch in changes:
            return sorted({path for _, path in batch})
        return []


def make_watcher(
    dirs: Iterable[str], file_filter: FileFilter, use_watchfiles: bool | None = None
) -> PollingWatcher | WatchfilesWatcher:
    """A :class:`WatchfilesWatcher` when ``watchfiles`` imports (unless told not to), else polling."""
    if use_watchfiles is None:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            use_watchfiles = False
        else:
            use_watchfiles = True
    if use_watchfiles:
        return WatchfilesWatcher(dirs, file_filter)
    return PollingWatcher(dirs, file_filter)


class Reloader:
    """Runs ``peregrine ARGV`` as a child and restarts it on changes (see the module docstring)."""

    def __init__(
        self,
        argv: Sequence[str],
        dirs: Sequence[str],
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        spawn: Callable[[], subprocess.Popen[bytes]] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.dirs = [os.path.abspath(d) for d in dirs]
        for directory in self.dirs:
            if not os.path.isdir(directory):
                raise SystemExit(f"error: --reload-dir {directory!r} is not a directory")
        self.filter = FileFilter(include, exclude)
        self.spawn = spawn or self._spawn
        self.stop_event = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        from .cli import RELOADER_CHILD

        env = {**os.environ, RELOADER_CHILD: "1"}
        return subprocess.Popen([sys.executable, "-m", "peregrine", *self.argv], env=env)

    def run(self) -> int:
        """Watch and restart until SIGINT/SIGTERM; returns the exit status (0)."""
        from .log import configure_logging

        configure_logging("info")
        watcher = make_watcher(self.dirs, self.filter)
        kind = "watchfiles" if isinstance(watcher, WatchfilesWatcher) else "polling"
        log.info(
            "reloader (pid %d, %s) watching %s for %s",
            os.getpid(),
            kind,
            ", ".join(self.dirs),
            ", ".join(self.filter.include),
        )
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.child = self.spawn()
            while not self.stop_event.is_set():
                changed = watcher.wait(self.stop_event)
                if not changed or self.stop_event.is_set():
                    continue
                shown = ", ".join(os.path.relpath(p) for p in changed[:3])
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                log.info("changed: %s%s; restarting the server", shown, more)
                self._stop_child()
                self.child = self.spawn()
        finally:
            self._stop_child()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, number: int, frame: object) -> None:
        self.stop_event.set()

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return  # never started, or exited by itself (it failed to start: said why)
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("the server did not stop within %.0fs: killing it", _STOP_TIMEOUT)
            child.kill()
            child.wait()
