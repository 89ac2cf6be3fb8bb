"""Run the ``peregrine`` command with a low open-file limit: ``python lowfd.py LIMIT ARGS...``."""

import resource
import sys

limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

from peregrine.cli import main  # noqa: E402

main(sys.argv[1:])
