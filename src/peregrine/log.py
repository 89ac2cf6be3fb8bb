"""Logging set-up: Python ``logging`` throughout, one readable line per event."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Send ``peregrine.*`` loggers to stderr at ``level`` unless the application set up logging."""
    logger = logging.getLogger("peregrine")
    logger.setLevel(level.upper())
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
