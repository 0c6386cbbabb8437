"""Several local processes started in order and stopped in reverse, as one unit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from devstack.process import ManagedProcess, ProcessStartError


class ProcessGroup(ABC):
    """A reconciler's processes; `start` launches them, a failed start stops those already up."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    @abstractmethod
    def _launch(self, timeout_s: float) -> None:
        """Start every process (appending each to `self.processes`) and wait until it serves."""

    def start(self, timeout_s: float = 90.0) -> Self:
        try:
            self._launch(timeout_s)
        except ProcessStartError:
            self.stop()
            raise
        return self

    def running(self) -> bool:
        return bool(self.processes) and all(process.running() for process in self.processes)

    def log_tail(self, max_chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(max_chars)}" for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
