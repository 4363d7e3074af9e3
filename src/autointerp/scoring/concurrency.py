"""Scoring several units at once without changing a result.

- :func:`metered`: what one unit spends through the client, apart from what other units spend
  on the same client at the same time (the client's per-call meter).
- :func:`score_in_order`: units run in a bounded thread pool, their results written in the
  order of the sequential run, each exactly once; the first error cancels the units not
  started and is raised once the running ones end (an
  :class:`~autointerp.errors.AutointerpError` from the client stops the stage).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ..llm.base import Usage


@contextlib.contextmanager
def metered(client) -> Iterator[Usage]:
    """What the block spends through ``client``: its per-call meter when it has one, else the
    difference of two usage snapshots (right while nothing else uses the client: the sequential
    run); zeros without a client."""
    if client is None:
        yield Usage()
    elif hasattr(client, "metered"):
        with client.metered() as u:
            yield u
    else:
        u0, u = client.usage, Usage()
        yield u
        u.__dict__.update((client.usage - u0).__dict__)


def score_in_order(units: list, workers: int, make_task, write) -> None:
    """Score ``units`` in ``workers`` threads, at most ``2 * workers`` ahead of the first one not
    yet written, and ``write`` each result in the order of ``units``. ``make_task(unit)`` gives
    (scorer, callable); the callable is prepared in this thread (example selection) and run in a
    worker. An error cancels the units not started; once the running ones end, the first error
    in ``units`` order is raised (the same one whatever the timing); finished units before it
    are written."""
    pending: deque = deque()  # (scorer, future), in units order
    it = iter(units)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autointerp-score")
    try:
        while True:
            for unit in it:
                sc, task = make_task(unit)
                pending.append((sc, pool.submit(task)))
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            if not pending[0][1].done():  # wait for any unit (not only the first: an error ends the wait)
                wait([f for _, f in pending if not f.done()], return_when=FIRST_COMPLETED)
            while pending and pending[0][1].done() and pending[0][1].exception() is None:
                sc, f = pending.popleft()
                write(sc, f.result())
            if any(f.done() and f.exception() is not None for _, f in pending):
                break
    finally:
        for _, f in pending:
            f.cancel()
        pool.shutdown(wait=True)
    # the first error in units order (the running units have ended), whatever finished first
    raise next(f.exception() for _, f in pending if not f.cancelled() and f.exception() is not None)
