"""Every request gets ``counter=N``, N counting up from 0 across the whole server.

The count is shared by all the worker processes, so no number is ever given out twice whatever
``--workers`` says: the counter lives in shared memory made at import time, before the workers
fork (see ``peregrine.util.shared``).

Run it:  python examples/counter.py [--port N] [--workers N]
    or   peregrine run examples.counter:Handler [--workers N]
"""

import peregrine
from peregrine.util.shared import SharedCounter

# Module level on purpose: made once in the main process and inherited by every worker.
# `named` hands the same counter back when a rolling restart (SIGHUP) re-imports this module.
COUNTER = SharedCounter.named("examples.counter")


class Handler:
    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(f"counter={COUNTER.next()}\n")


if __name__ == "__main__":
    from peregrine.cli import run_example

    run_example(Handler)
