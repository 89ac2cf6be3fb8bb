"""socketify's ASGI server (uWebSockets underneath) serving one of the benchmark's ASGI apps.

Usage: python socketify_asgi.py PORT MODULE:ATTR
"""

import importlib
import sys

from socketify import ASGI, AppListenOptions


def main() -> None:
    port = int(sys.argv[1])
    module, attr = sys.argv[2].split(":")
    app = getattr(importlib.import_module(module), attr)
    # lifespan=False: the raw app answers the lifespan scope, but none of the apps needs it.
    server = ASGI(app, lifespan=False)
    # (its ASGI listen() reads .port/.host: a dict, as the native App takes, fails there)
    server.listen(AppListenOptions(port=port, host="127.0.0.1"), lambda config: None)
    server.run()


if __name__ == "__main__":
    main()
