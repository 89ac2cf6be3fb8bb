"""HTTP/1.1 without I/O: the request parser, requests, responses and their bytes.

Nothing in this package imports asyncio or socket (tests/test_layers.py checks it); the asyncio
side is ``peregrine.aio``.
"""
