"""Utilities built on the public handler API: static files.

- :class:`DirServer` serves a directory tree, :class:`FileServer` a single file;
  both fill in a response from any handler (see ``docs/static.md``).
- :func:`make_static_handler` turns a directory into a handler class
  (what ``peregrine static DIR`` runs).
"""

from .static import DirServer, FileServer, make_static_handler

__all__ = ["DirServer", "FileServer", "make_static_handler"]
