"""``python -m peregrine`` is the ``peregrine`` command."""

from .cli import main

main()
