"""The response object the server hands to native handlers: ``peregrine.Response``.

It is :class:`peregrine.http.response.Response` plus a ``__dict__`` and weak references, so a
handler or middleware may set attributes of its own on ``resp`` (``resp.started = ...``) and
keep weak references to it, in both builds. In the compiled build the base is a mypyc native
class whose fields live in a C struct (the connection reads them without dictionary lookups);
a class written in Python on top of it gets the ``__dict__`` a native class cannot have. So this
module is never compiled (it is not in ``_build.COMPILED_MODULES``).
"""

from __future__ import annotations

from . import response


class Response(response.Response):
    """What the handler answers (see :class:`peregrine.http.response.Response` for its API).

    A handler or middleware may set attributes of its own on it, keep a weak reference to it, or
    subclass it.
    """
