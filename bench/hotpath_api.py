"""The ladder's `api` rung (bench/apps/ladder.py) driven in-process, for instruction counts.

The same request and handler as bench/hotpath.py, through llhttp with two callbacks and
Peregrine's Request/Response/serialize_head only: what a server offering Peregrine's handler API
cannot avoid. Count it with `SCRIPT=bench/hotpath_api.py bash bench/hotpath.sh`.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "apps"))
from ladder import ApiRung  # noqa: E402

from hotpath import REQUEST, CountingTransport, Handler  # noqa: E402


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    transport = CountingTransport()
    rung = ApiRung(Handler().handle_request)
    rung.connection_made(transport)
    feed = rung.data_received
    for _ in range(count):
        feed(REQUEST)
    assert transport.writes == count, transport.writes


if __name__ == "__main__":
    main()
