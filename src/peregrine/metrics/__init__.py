"""Prometheus metrics of all the workers, aggregated by the supervisor (``--metrics-port``).

How it fits together (see ``docs/production.md`` for the metric names):

* :mod:`.layout`: which counter lives at which index of a worker's block of integers;
* :mod:`.recorder`: the worker side. Counts go into a plain Python list (one integer add per
  event on the hot path, nothing shared), copied into the worker's block of shared memory a few
  times a second and when the worker stops;
* :mod:`.shared`: the shared memory, made by the supervisor before it forks: one block per
  running worker process, handed out at fork and folded into the totals when the worker exits;
* :mod:`.text`: the Prometheus text exposition format;
* :mod:`.endpoint`: the supervisor's small non-blocking HTTP listener that serves it.
"""
