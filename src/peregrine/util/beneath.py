"""Opening files beneath a root directory without following a symlink out of it, races included.

Checking a path and then opening it leaves a window: anyone who can write in
the tree can swap the checked file, or a directory on the way to it, for a
symlink to ``/etc`` in between. So nothing here checks a path and then opens
it. Where the platform allows (POSIX: ``dir_fd`` and ``O_NOFOLLOW``), a path is
walked one name at a time, each name opened relative to the directory opened
before it and with ``O_NOFOLLOW``, so every descriptor is exactly what the walk
looked at and the last one lies beneath the root. nginx's ``disable_symlinks``
works the same way.

Symlinks that stay inside the root still work. When the walk meets one, the
path up to it is resolved with ``os.path.realpath``, checked to lie inside the
root (:func:`.paths.is_within`), and walked again from the root under the same
rules. The resolved path is only a hint: if the tree changes meanwhile, the new
walk meets a symlink again, and after :data:`MAX_LINKS` of those it gives up.

Where there is no ``dir_fd`` (Windows) a path is resolved, checked and then
opened: that check is not race-free.

What cannot be detected: a hard link to a file outside the root (it is a file
in the tree; nginx cannot tell either), and a directory moved out of the root
while a request is walking through it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from .paths import is_within

__all__ = ["FILE_FLAGS", "MAX_LINKS", "RACE_FREE", "Dir", "Entry", "Tree"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

#: True where paths are walked descriptor by descriptor (POSIX), False where a
#: path is checked and then opened (Windows).
RACE_FREE = bool(_NOFOLLOW and _DIRECTORY) and {os.open, os.stat} <= os.supports_dir_fd

# os.access(name, dir_fd=..., follow_symlinks=False) is faccessat(AT_SYMLINK_NOFOLLOW): it tells
# whether a name exists, without following it and without raising. effective_ids (AT_EACCESS):
# checked with the same identity as open() (and the kernel need not switch credentials).
_ACCESS_AT = os.access in os.supports_dir_fd and os.access in os.supports_follow_symlinks
_ACCESS_EFFECTIVE = os.access in os.supports_effective_ids

#: Flags to open a file to serve. O_NONBLOCK: if a FIFO takes the place of a
#: file, open() must not block the event loop waiting for a writer (fstat then
#: rejects it); it has no effect on reads of regular files. O_NOCTTY: a
#: terminal must never become our controlling terminal.
FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | _DIRECTORY

#: Symlinks one lookup may resolve before it gives up (Linux allows 40 in one path).
MAX_LINKS = 16

Segments = tuple[str, ...]


class _Link:
    """Returned by :func:`_open_at` for a name that is a symlink."""


_LINK = _Link()


def _open_at(dir_fd: int, name: str, flags: int) -> int | _Link | None:
    """Open ``name`` in the directory ``dir_fd`` without following a symlink.

    Returns the descriptor, :data:`_LINK` if ``name`` is a symlink, or None if
    it cannot be opened (missing, not a directory when one is wanted, ...).
    """
    try:
        return os.open(name, flags | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None  # the common failure; a symlink never gives ENOENT under O_NOFOLLOW
    # A symlink fails with ELOOP, EMLINK (FreeBSD), or ENOTDIR with O_DIRECTORY
    # (Linux): rather than trust errno, look at what the name is.
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None
    return _LINK if is_link else None


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~3,000 more instructions to build
class Dir:
    """A directory beneath the root, opened: names are looked up in it with :meth:`Tree.open`.

    ``segments`` is its path below the root, free of symlinks. ``fd`` is its
    descriptor (None where paths are used instead); :meth:`close` it. Read-only by convention.
    """

    fd: int | None
    segments: Segments

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~3,000 more instructions to build
class Entry:
    """Something opened beneath the root: a descriptor, its ``fstat`` and its path below the root.

    ``fd`` is None only for a directory where paths are used instead of descriptors.
    Read-only by convention.
    """

    fd: int | None
    st: os.stat_result
    segments: Segments

    def as_dir(self) -> Dir:
        """This entry, a directory, as a :class:`Dir` (which then owns the descriptor)."""
        return Dir(self.fd, self.segments)


class Tree:
    """The files beneath ``root`` (an absolute path free of symlinks, such as ``realpath`` returns)."""

    def __init__(self, root: str, race_free: bool | None = None) -> None:
        self.root = root
        #: walk descriptor by descriptor (default: :data:`RACE_FREE`, where the platform can)
        self.race_free = RACE_FREE if race_free is None else race_free
        # Whether faccessat answers here; checked on first use (see may_exist).
        self._access_works: bool | None = None if _ACCESS_AT else False

    def may_exist(self, parent: Dir, name: str) -> bool:
        """False if ``name`` is certainly missing from ``parent`` now; True if it may be there.

        A hint that costs no exception, for names that are usually missing
        (precompressed siblings): a failed ``os.open`` raises, which costs
        several times the system call itself. Nothing is opened on its word:
        when True the caller opens the name with :meth:`open` as usual, and a
        name that appears just after a False was simply created a moment too
        late. Symlinks are not followed (a link is "there", whatever it points
        to). Where the check cannot run, or does not answer sensibly (a
        sandbox refusing ``faccessat2``), the answer is always True.
        """
        fd = parent.fd
        if fd is None:
            return True
        works = self._access_works
        if works is None:
            # The directory itself must be found; if not, the call is refused here.
            works = self._access_works = os.access(
                ".", os.F_OK, dir_fd=fd, follow_symlinks=False, effective_ids=_ACCESS_EFFECTIVE
            )
        return not works or os.access(
            name, os.F_OK, dir_fd=fd, follow_symlinks=False, effective_ids=_ACCESS_EFFECTIVE
        )

    def open_dir(self, segments: Segments) -> Dir | None:
        """Open the directory ``root/segments``; None if it is not one or lies outside the root."""
        if not self.race_free:
            real = self._resolve(segments)
            if real is None or not os.path.isdir(os.path.join(self.root, *real)):
                return None
            return Dir(None, real)
        for _ in range(MAX_LINKS):
            try:
                fd = os.open(self.root, _DIR_FLAGS)
            except OSError:
                return None
            for i, name in enumerate(segments):
                try:
                    found = _open_at(fd, name, _DIR_FLAGS)
                finally:
                    os.close(fd)
                if isinstance(found, int):
                    fd = found
                    continue
                if found is None:
                    return None
                # A symlink: resolve the path up to it and walk again from the root.
                resolved = self._resolve(segments[: i + 1])
                if resolved is None:
                    return None
                segments = resolved + segments[i + 1 :]
                break
            else:
                return Dir(fd, segments)
        return None

    def open(self, parent: Dir, name: str, flags: int = FILE_FLAGS) -> Entry | None:
        """Open ``name`` in ``parent``: whatever it is (the caller checks ``st_mode``), or None.

        A symlink is followed if, and only if, it resolves inside the root.
        """
        segments = parent.segments + (name,)
        if parent.fd is None:
            return self._open_path(segments, flags)
        found = _open_at(parent.fd, name, flags)
        if found is _LINK:
            real = self._resolve(segments)
            if real is None:
                return None
            if not real:  # a link to the root itself
                root = self.open_dir(())
                return None if root is None else self._fstat(root.fd, ())
            directory = self.open_dir(real[:-1])
            if directory is None:
                return None
            try:
                # A symlink again means the tree is changing under us: give up.
                found = _open_at(directory.fd, real[-1], flags)  # type: ignore[arg-type]
            finally:
                directory.close()
            segments = real
        return self._fstat(found if isinstance(found, int) else None, segments)

    def _open_path(self, segments: Segments, flags: int) -> Entry | None:
        """Without ``dir_fd``: resolve, check, then open (a directory is not opened: fd None)."""
        real = self._resolve(segments)
        if real is None:
            return None
        path = os.path.join(self.root, *real)
        try:
            if os.path.isdir(path):
                return Entry(None, os.stat(path), real)
            fd = os.open(path, flags)
        except (OSError, ValueError):
            return None
        return self._fstat(fd, real)

    @staticmethod
    def _fstat(fd: int | None, segments: Segments) -> Entry | None:
        if fd is None:
            return None
        try:
            return Entry(fd, os.fstat(fd), segments)
        except BaseException:
            os.close(fd)
            raise

    def _resolve(self, segments: Segments) -> Segments | None:
        """``root/segments`` with symlinks resolved, as segments below the root; None if outside.

        Not a security check on its own: the caller walks the answer again.
        """
        try:
            real = os.path.realpath(os.path.join(self.root, *segments))
        except (OSError, ValueError):
            # A link replaced while being resolved, a loop, ...: nothing to serve.
            return None
        if not is_within(real, self.root):
            return None
        return tuple(s for s in real[len(self.root) :].split(os.sep) if s)
