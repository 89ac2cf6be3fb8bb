"""The smallest Peregrine server: every request gets ``Kawww``.

Run it:  python examples/basic.py [--port N]   or   peregrine run examples.basic:Handler
"""

import peregrine


class Handler:
    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(b"Kawww\n")


if __name__ == "__main__":
    from peregrine.cli import run_example

    run_example(Handler)
