"""activities.kube.parallel: independent reads made at once, their results in the callers' order."""

from __future__ import annotations

import threading

import pytest

from activities.kube import parallel
from activities.kube.parallel import at_once


def test_at_once_runs_the_calls_together_and_keeps_their_order() -> None:
    # Each call waits for the others: made one after another they would never get past the barrier.
    barrier = threading.Barrier(3, timeout=10)

    def call(value: str) -> str:
        barrier.wait()
        return value

    assert at_once(lambda: call("a"), lambda: call("b"), lambda: call("c")) == ("a", "b", "c")


def test_at_once_raises_an_error_once_every_call_has_ended() -> None:
    ended: list[str] = []
    release = threading.Event()

    def slow() -> str:
        release.wait(timeout=10)
        ended.append("slow")
        return "slow"

    def failing() -> str:
        release.set()
        raise ValueError("apiserver said no")

    with pytest.raises(ValueError, match="apiserver said no"):
        at_once(failing, slow)
    assert ended == ["slow"]


def test_at_once_nested_deeper_than_the_reader_threads_still_ends() -> None:
    # Each level waits on the next one's at_once: with more levels than reader threads, the
    # deepest calls find every thread busy waiting and must run in their callers' threads.
    def nested(depth: int) -> int:
        if depth == 0:
            return 0
        _, below = at_once(lambda: depth, lambda: nested(depth - 1))
        return below + 1

    levels = parallel.READ_THREADS + 8
    answer: list[int] = []
    runner = threading.Thread(target=lambda: answer.append(nested(levels)), daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert answer == [levels]  # a deadlock leaves it empty
