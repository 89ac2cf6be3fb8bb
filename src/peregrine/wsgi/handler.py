"""The WSGI adapter a worker serves: :class:`WsgiHandler`."""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Any, Final

from ..aio.exchange import Exchange
from ..config import Config
from .environ import EnvironBuilder, base_environ
from .errors import ErrorStream
from .files import FileWrapper
from .inline import serve_inline, serve_inline_http1, sockname_if_needed
from .input import StreamedInput, whole_input
from .pool import LoopInbox, ThreadPool
from .threaded import ThreadedCall

if TYPE_CHECKING:
    import asyncio

    from ..aio.body import RequestBody
    from ..aio.exchange import AnyExchange
    from ..http.request import Request

log = logging.getLogger("peregrine.error")


# what the pool's threads run for each request: the method from the class, called with the
# call object, makes no bound method per request (each call runs in a context of its own:
# what the application sets in context variables does not leak into the next request, see
# ThreadPool)
_RUN: Final = ThreadedCall.run


class WsgiHandler:
    """Serves a WSGI application (PEP 3333) on the connections of one worker.

    With ``config.threads`` N > 0 the application runs in a pool of N threads (``threaded.py``);
    with 0 on the event loop, one request at a time, once the request is whole (``inline.py``).
    The connection calls :meth:`serve_exchange` for each request, in order; the worker calls
    :meth:`close` at shutdown.
    """

    def __init__(self, app: Any, config: Config) -> None:
        self.app = app
        self.config = config
        #: builds each request's environ from the keys every request shares
        self.environ = EnvironBuilder(
            base_environ(config.root_path, config.workers != 1, ErrorStream(), FileWrapper)
        )
        self.pool = ThreadPool(config.threads, _RUN) if config.threads else None
        #: the context the next request run on the loop (``--threads 0``) runs in: a new one,
        #: or the last request's, when it ended with it empty (``inline.call_app``)
        self.context = contextvars.Context()
        #: calls from the application threads to the loop (which it learns at the first request)
        self.inbox = LoopInbox(None)

    def serve_exchange(self, exchange: AnyExchange) -> None:
        """Run the application on ``exchange`` (called on the loop by the connection)."""
        pool = self.pool
        if type(exchange) is Exchange:
            # HTTP/1, the common case: narrowed to its class, so that compiled, what is read
            # from it here (and called on it inline) is reached directly, not looked up by name
            if pool is None:
                serve_inline_http1(self, exchange)
            else:
                self._submit(pool, exchange, exchange.body, exchange.conn.loop, exchange.request)
        elif pool is None:
            serve_inline(self, exchange)
        else:
            self._submit(pool, exchange, exchange.body, exchange.conn.loop, exchange.request)

    def _submit(
        self,
        pool: ThreadPool,
        exchange: AnyExchange,
        body: RequestBody | None,
        loop: asyncio.AbstractEventLoop,
        request: Request,
    ) -> None:
        # (``body``, ``loop`` and ``request`` are ``exchange``'s, read by the caller)
        if body is None or body.complete:
            # the whole body is here (no body at all, most often): no bridge to the loop needed
            wsgi_input: Any = whole_input(body.take() if body is not None else b"")
        else:
            wsgi_input = StreamedInput(body, loop)
        if self.inbox.loop is None:
            self.inbox.loop = loop
        sockname = sockname_if_needed(exchange, request)
        pool.submit_soon(ThreadedCall(self, exchange, request, wsgi_input, sockname), loop)

    def close(self) -> None:
        """Stop the thread pool, letting running requests finish within ``graceful_timeout``."""
        if self.pool is not None and not self.pool.shutdown(self.config.graceful_timeout):
            log.warning(
                "WSGI: application threads still running after graceful_timeout (%ss); "
                "leaving them behind",
                self.config.graceful_timeout,
            )
