# A small image serving the counter example (examples/counter.py) with Peregrine.
#   docker build -t peregrine .
#   docker run --rm -p 8000:8000 peregrine            # curl localhost:8000 -> counter=0
# Any other application: mount or COPY it into /app and override CMD (peregrine run MODULE:ATTR).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package from this source tree (uvloop and httptools come as wheels: no compiler needed).
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && rm -rf src \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin peregrine

COPY examples ./examples

# Never root: the server needs no privilege to listen on 8000.
USER peregrine
EXPOSE 8000

# The server answers /healthz itself (--health-path): 200 while serving, 503 while draining.
# The slim image has no curl; Python's urllib does the check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# Exec form: the server is PID 1 and gets `docker stop`'s SIGTERM itself (a shell form would
# put /bin/sh in between, which does not pass signals on). The server handles SIGTERM: it drains
# for --drain-delay seconds, lets requests finish within --graceful-timeout, and exits 0. Keep
# drain delay + graceful timeout below the engine's stop timeout (docker stop -t, default 10 s).
STOPSIGNAL SIGTERM
CMD ["peregrine", "run", "examples.counter:Handler", "--host", "0.0.0.0", "--port", "8000", \
     "--health-path", "/healthz", "--drain-delay", "0", "--graceful-timeout", "8"]
