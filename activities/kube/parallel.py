"""Cluster reads that do not depend on each other, made at once.

Every apiserver call is a blocking round trip; an incident's context needs about a dozen of them,
most independent. Made one after another they are most of the time from an alert to its rollback;
made at once (threads over the client's connection pool) they cost about the slowest of them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

# Threads kept for the reads of every at_once in the process: starting a thread per read (and
# waiting for it to be scheduled) costs more CPU than most reads' own work on a loaded machine.
# Reads are I/O-bound, so the pool is wider than the cores; when every thread is busy a read runs
# in its caller's thread instead of queueing (see at_once).
READ_THREADS = 64
_readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="backout-read")


@overload
def at_once(a: Callable[[], A], b: Callable[[], B], /) -> tuple[A, B]: ...
@overload
def at_once(a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], /) -> tuple[A, B, C]: ...
@overload
def at_once(
    a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], d: Callable[[], D], /
) -> tuple[A, B, C, D]: ...
def at_once(*calls: Callable[[], Any]) -> tuple[Any, ...]:
    """Run the calls at the same time (the first in this thread, the others on the shared reader
    threads) and return their results in order; the first error, in the calls' order, is raised
    once all have ended."""
    first, *rest = calls
    submitted = [_readers.submit(call) for call in rest]
    outcomes = [_ran_here(first)]
    for call, future in zip(rest, submitted, strict=True):
        # Not started: every reader thread is busy, some maybe waiting in an at_once of their own.
        # Waiting for a free one could wait forever; running it here always ends.
        outcomes.append(_ran_here(call) if future.cancel() else future)
    errors = [error for outcome in outcomes if (error := outcome.exception()) is not None]  # waits for each
    if errors:
        raise errors[0]
    return tuple(outcome.result() for outcome in outcomes)


def _ran_here(call: Callable[[], Any]) -> Future[Any]:
    """`call` run in this thread, its result or error kept as a finished future."""
    done: Future[Any] = Future()
    try:
        done.set_result(call())
    except Exception as exc:
        done.set_exception(exc)
    return done
