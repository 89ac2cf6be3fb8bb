"""Start Peregrine on a socket made here, as a process manager would (used by test_listeners).

``python fdwrap.py fd TARGET ARGS...``: bind 127.0.0.1:0, then exec ``peregrine run TARGET --fd N``.
``python fdwrap.py systemd TARGET ARGS...``: put the socket at fd 3 and set ``LISTEN_FDS=1`` and
``LISTEN_PID`` (the pid stays the same across exec), like systemd socket activation.
"""

import os
import socket
import sys

mode, target, *rest = sys.argv[1:]
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
# the test checks that the server serves on this socket, not on one it bound itself
print(f"fdwrap listens on port {sock.getsockname()[1]}", flush=True)
if mode == "fd":
    fd = sock.detach()
    os.set_inheritable(fd, True)
    args = ["--fd", str(fd)]
else:
    if sock.fileno() == 3:
        os.set_inheritable(sock.detach(), True)
    else:
        os.dup2(sock.fileno(), 3)  # the copy is inheritable
        sock.close()
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    args = []
os.execv(sys.executable, [sys.executable, "-m", "peregrine", "run", target, *args, *rest])
