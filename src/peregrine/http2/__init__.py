"""Sans-IO HTTP/2 (RFC 9113): framing, HPACK (RFC 7541) and the server connection state machine.

Nothing here does I/O or imports asyncio: bytes go in, events and bytes come out
(``peregrine.aio.h2connection`` is the asyncio side).
"""
