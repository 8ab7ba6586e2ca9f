"""Every printer's next deadline, for the loop: the earliest in O(log n), not by asking each machine.

A machine's deadline can only change when it is fed an input, so the loop tells this table
after each one (``set``). A heap orders the deadlines; an entry made out of date by a later
``set`` stays in it until it reaches the top and is skipped, and the heap is rebuilt when such
entries outnumber the live ones, so it stays within a few times the number of printers.
"""

from __future__ import annotations

import heapq


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[str, float] = {}  # printer -> its machine's next deadline
        self._heap: list[tuple[float, str]] = []

    def set(self, printer: str, deadline: float | None) -> None:
        if deadline is None:
            self._due.pop(printer, None)
        elif self._due.get(printer) != deadline:
            self._due[printer] = deadline
            heapq.heappush(self._heap, (deadline, printer))
        if len(self._heap) > 4 * len(self._due) + 64:
            self._heap = sorted((d, name) for name, d in self._due.items())

    def earliest(self) -> float | None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[str]:
        """The printers whose deadline has come, each once; forgotten until ``set`` again."""
        due: list[str] = []
        while (first := self.earliest()) is not None and first <= now:
            name = heapq.heappop(self._heap)[1]
            del self._due[name]
            due.append(name)
        return due

    def __len__(self) -> int:
        return len(self._due)
