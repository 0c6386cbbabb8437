"""Cluster reads that do not depend on each other, made at once.

Every apiserver call is a blocking round trip; an incident's context needs about a dozen of them,
most independent. Made one after another they are most of the time from an alert to its rollback;
made at once (threads over the client's connection pool) they cost about the slowest of them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")


@overload
def at_once(a: Callable[[], A], b: Callable[[], B], /) -> tuple[A, B]: ...
@overload
def at_once(a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], /) -> tuple[A, B, C]: ...
@overload
def at_once(
    a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], d: Callable[[], D], /
) -> tuple[A, B, C, D]: ...
def at_once(*calls: Callable[[], Any]) -> tuple[Any, ...]:
    """Run the calls at the same time (the first in this thread) and return their results in
    order; an error of any call is raised once all have ended."""
    first, *rest = calls
    with ThreadPoolExecutor(max_workers=len(rest), thread_name_prefix="backout-read") as pool:
        futures = [pool.submit(call) for call in rest]
        head = first()
        return (head, *(future.result() for future in futures))
