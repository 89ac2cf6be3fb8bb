"""Utilities built on the public handler API: static files and state shared by workers.

- :class:`DirServer` serves a directory tree, :class:`FileServer` a single file;
  both fill in a response from any handler (see ``docs/static.md``).
- :func:`make_static_handler` turns a directory into a handler class
  (what ``peregrine static DIR`` runs).
- :class:`SharedCounter` is a counter all worker processes share (see ``docs/production.md``).
"""

from .shared import SharedCounter
from .static import DirServer, FileServer, make_static_handler

__all__ = ["DirServer", "FileServer", "SharedCounter", "make_static_handler"]
