"""What the server does when answering with the application's response fails.

One rule for both ways of running the application (the thread pool and ``--threads 0``), by
the kind of error, never by its message:

- the client is gone (a ``ConnectionError`` with the connection closed): the connection is
  dropped, nothing is logged (nothing went wrong on the server's side); the application's own
  ``ConnectionError`` (its database refused it) while the client is there is its error;
- the streamed body went past the Content-Length the application declared
  (``ContentLengthExceeded``, raised by the exchange before sending the extra bytes): one error
  line, and the connection is cut, as the head is out;
- anything else (the application raised, its response was invalid, or a body held whole
  disagrees with its declared Content-Length): the traceback is logged, and the answer is a 500
  when nothing was sent yet, a cut connection once the head is out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..aio.exchange import ContentLengthExceeded

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange

log = logging.getLogger("peregrine.error")


def response_failed(exchange: AnyExchange, error: BaseException, declared: int | None) -> None:
    """Answer ``error``, met while answering ``exchange`` (see the module docstring).

    Call it inside the ``except`` block that caught ``error``: the log takes the traceback
    from there. ``declared`` is the Content-Length the application gave, for the log.
    """
    if isinstance(error, ConnectionError) and exchange.client_gone:
        exchange.abort()
    elif isinstance(error, ContentLengthExceeded):
        log.error(
            "%s %s: the application sent more than its Content-Length (%s): connection cut",
            exchange.request.method,
            exchange.request.url,
            declared,
        )
        exchange.abort()
    else:
        exchange.conn._handler_failed(exchange.request)
